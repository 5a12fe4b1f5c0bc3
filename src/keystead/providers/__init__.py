"""What is the identity provider's own, behind one small interface.

Keystead speaks standard SCIM 2.0 and verifies OpenID Connect access tokens; a provider
module says how one identity provider bends those standards: the request shapes its
provisioning service sends, which ids it puts among a group's members, and how its
tokens name the tenant, the user and the user's groups. Entra is the provider today
(``entra.py``); a second one is a module of its own with its tests.
"""

from __future__ import annotations

from keystead.providers.base import Provider
from keystead.providers.entra import PROVIDER

__all__ = ["PROVIDER", "Provider"]
