"""Which hand edits an API key accepts. Auto-provisioned keys follow the directory."""

from __future__ import annotations

from keystead.errors import FollowsDirectory


def ensure_editable_by_hand(*, name: str, auto_provisioned: bool, change: str) -> None:
    """Raise FollowsDirectory when ``change`` targets an auto-provisioned key."""
    if auto_provisioned:
        raise FollowsDirectory(
            f"API key {name!r} is auto-provisioned and follows the directory: it cannot be "
            f"{change} by hand. Change the user or its groups in Entra ID (or the dataset "
            "group whose name matches the user's group) instead."
        )
