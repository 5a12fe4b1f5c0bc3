"""The shape of an account's sign-in settings (no web, no database).

Saving checks shape only; whether the provider agrees (reachable discovery document, the
same issuer, RS256 keys) is the "test configuration" check in :mod:`keystead.idp.preflight`.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from keystead.errors import InvalidInput
from keystead.providers import PROVIDER

GroupPolicy = Literal["directory", "directory_and_token"]
GROUP_POLICIES: tuple[GroupPolicy, ...] = ("directory", "directory_and_token")
# The identity provider decides which issuers and user-name claims are its own.
USERNAME_CLAIMS = PROVIDER.sign_in.username_claims
DEFAULT_USERNAME_CLAIM = USERNAME_CLAIMS[0]
username_claims = PROVIDER.sign_in.claim_order
check_issuer = PROVIDER.sign_in.check_issuer
tenant_of_issuer = PROVIDER.sign_in.tenant_of_issuer
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LEEWAY_RANGE = (0, 300)
CERT_TTL_RANGE = (60, 24 * 3600)


def check_discovery_url(value: str, *, allow_private: bool = False) -> str:
    """An absolute https URL (plain http only on loopback, where the operator allows private
    addresses; ``idp.outbound`` applies the same policy when it fetches)."""
    value = value.strip()
    try:
        parsed = urllib.parse.urlsplit(value)
        scheme, host, _ = parsed.scheme, parsed.hostname, parsed.port  # raise if malformed
    except ValueError:
        scheme, host = "", None
    if scheme not in ("https", "http") or not host or any(c.isspace() for c in value):
        raise InvalidInput(
            f"discovery URL {value!r} is not an absolute URL; the identity provider's "
            f"looks like {PROVIDER.sign_in.discovery_url_example}"
        )
    if scheme == "http" and not (allow_private and host in LOOPBACK_HOSTS):
        raise InvalidInput(f"discovery URL {value!r} must use https")
    if not allow_private and _private_literal(host):
        raise InvalidInput(
            f"discovery URL {value!r} names a loopback, private or reserved address, which "
            "Keystead does not fetch from (an operator can allow it: "
            "KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES)"
        )
    if len(value) > 2048:
        raise InvalidInput("discovery URL is longer than 2048 characters")
    return value


def _private_literal(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a name: its addresses are checked when it is fetched
    from keystead.idp import outbound  # with httpx: only a URL with an address gets here

    return not outbound.address_allowed(address, allow_private=False)


def check_audience(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 512 or any(c.isspace() for c in value):
        raise InvalidInput(
            "token audience must be the API's Application ID URI, e.g. api://CLIENT_ID "
            "(no spaces, at most 512 characters)"
        )
    return value


def check_username_claim(value: str) -> str:
    if value not in USERNAME_CLAIMS:
        raise InvalidInput(f"username claim {value!r} is not one of {', '.join(USERNAME_CLAIMS)}")
    return value


def check_range(name: str, value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be from {low} to {high} seconds; got {value}")
    return value


def check_group_policy(value: str) -> GroupPolicy:
    for policy in GROUP_POLICIES:
        if value == policy:
            return policy
    raise InvalidInput(f"group policy {value!r} is not one of {', '.join(GROUP_POLICIES)}")


@dataclass(frozen=True)
class SignInChanges:
    """Fields to change; None leaves a field as it is."""

    discovery_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    username_claim: str | None = None
    leeway_seconds: int | None = None
    cert_ttl_seconds: int | None = None
    group_policy: str | None = None

    def checked(self, *, allow_private: bool = False) -> SignInChanges:
        """The values in their stored form; InvalidInput naming every field at fault.
        ``allow_private``: the operator's KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES."""
        checks: dict[str, Callable[[Any], Any]] = {
            "discovery_url": lambda v: check_discovery_url(v, allow_private=allow_private),
            "issuer": check_issuer,
            "audience": check_audience,
            "username_claim": check_username_claim,
            "leeway_seconds": lambda v: check_range("leeway", v, LEEWAY_RANGE),
            "cert_ttl_seconds": lambda v: check_range("certificate lifetime", v, CERT_TTL_RANGE),
            "group_policy": check_group_policy,
        }
        checked: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, check in checks.items():
            value = getattr(self, name)
            try:
                checked[name] = None if value is None else check(value)
            except InvalidInput as exc:
                problems[name] = exc.message
        if problems:
            raise InvalidInput("; ".join(problems.values()), fields=problems)
        return SignInChanges(**checked)
