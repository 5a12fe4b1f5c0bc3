"""Microsoft Entra ID: everything Keystead does only because Entra does it that way —
its SCIM request shapes (``scim.py``) and its sign-in tokens and settings
(``signin.py``)."""

from __future__ import annotations

from keystead.providers.base import Provider, ScimShapes
from keystead.providers.entra.signin import SIGN_IN


def _scim_shapes() -> ScimShapes:
    from keystead.providers.entra import scim

    return scim.SHAPES


PROVIDER = Provider(
    sign_in=SIGN_IN,
    nested_groups_as_members=True,  # a nested group is assigned as a member
    scim_shapes=_scim_shapes,
)
