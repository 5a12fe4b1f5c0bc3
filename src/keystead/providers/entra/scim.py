"""Entra's SCIM request shapes, where its provisioning service bends RFC 7644: a
capitalised ``op``, ``"True"`` and ``"False"`` strings, dotted and URN keys in path-less
operations, member removal by a value array, a Microsoft schema URN on group creation,
proxyAddresses sent as emails, the manager as a bare id."""

from __future__ import annotations

from typing import Any, ClassVar

from scim2_models import ComplexAttribute, Email, EnterpriseUser, ScimPolicy, User

from keystead.providers.base import ScimShapes


class AnyEmail(Email):
    """An ``emails`` entry whose value may be any string: Entra's default mapping sends
    proxyAddresses as emails of type "other" ("SMTP:…", "X500:…"), which are not e-mail
    addresses, and refusing them would fail the user's provisioning."""

    value: str | None = None


class EntraUser(User[EnterpriseUser]):
    """The core User with the enterprise extension, and tolerant ``emails``."""

    # A pydantic field redefinition: list is invariant, so mypy sees a narrower override.
    emails: list[AnyEmail] | None = None  # type: ignore[assignment]

    Emails: ClassVar[type[ComplexAttribute]] = AnyEmail


def _manager_fix(op: dict[str, Any]) -> dict[str, Any]:
    """Entra sends the manager as a bare id and clears it with ""/null: RFC form it."""
    path = str(op.get("path") or "")
    if not path.lower().endswith(":manager") and path.lower() != "manager":
        return op
    value = op.get("value")
    if value in ("", None) or value == {"value": ""}:
        return {"op": "remove", "path": path}
    if isinstance(value, str):
        return {**op, "value": {"value": value}}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return {**op, "value": {"value": value[0].get("value")}}
    return op


def patch_body(body: dict[str, Any]) -> dict[str, Any]:
    fixed = [_manager_fix(op) if isinstance(op, dict) else op for op in body["Operations"]]
    return {**body, "Operations": fixed}


SHAPES = ScimShapes(
    user_model=EntraUser,
    policy=ScimPolicy(
        unknown=ScimPolicy.Unknown.keep,
        remove_value_as_filter=ScimPolicy.RemoveValue.apply,
        unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
    ),
    patch_body=patch_body,
)
