"""Entra's sign-in: Keystead verifies its v1.0 access tokens, whose issuer is
``https://sts.windows.net/TENANT_ID/`` and whose ``tid`` names the tenant; the user is
named by ``unique_name`` (or ``upn``, ``preferred_username``), identified for good by
``oid`` (the object id; Entra's SCIM mapping may send it as externalId), and a token with
more groups than it can list says so in ``_claim_names`` (the overage) instead. Test
configuration's Entra advice is here too."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from keystead.errors import InvalidInput
from keystead.providers.base import (
    AUDIENCE_NOT_APP_ID_URI,
    AUDIENCE_NOT_DEFAULT_URI,
    DISCOVERY_URL_NOT_TENANT,
    ISSUER_FORM,
    Findings,
    SignIn,
    TokenGroups,
)

GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# The v1.0 issuer: the only form Keystead verifies; group 1 is the tenant id.
V1_ISSUER = re.compile(rf"https://sts\.windows\.net/({GUID})/")
V2_ISSUER = re.compile(rf"https://login\.microsoftonline\.com/({GUID})/v2\.0")
BARE_GUID = re.compile(GUID)
DEFAULT_APP_ID_URI = re.compile(rf"api://{GUID}")
MULTI_TENANT = frozenset({"common", "organizations", "consumers"})
USERNAME_CLAIMS = ("unique_name", "upn", "preferred_username", "email")
_FALLBACKS = USERNAME_CLAIMS[:3]  # email names no one for sure: never a fallback


def tenant_of_v1_issuer(issuer: str) -> str | None:
    match = V1_ISSUER.fullmatch(issuer)
    return match.group(1).lower() if match else None


def tenant_of_any_issuer(issuer: str) -> str | None:
    match = V1_ISSUER.fullmatch(issuer) or V2_ISSUER.fullmatch(issuer)
    return match.group(1).lower() if match else None


def check_issuer(value: str) -> str:
    """The v1 issuer, its tenant id in lower case as Entra writes it in tokens."""
    value = value.strip()
    tenant = tenant_of_v1_issuer(value)
    if tenant is not None:
        return f"https://sts.windows.net/{tenant}/"
    hint = ""
    if value.rstrip("/").endswith("/v2.0"):
        hint = (
            " — that is the v2.0 issuer; Keystead accepts v1.0 access tokens, which the "
            "Ubiq client gets when the app registration's manifest has "
            "accessTokenAcceptedVersion null or 1"
        )
    raise InvalidInput(
        f"token issuer {value!r} is not of the form https://sts.windows.net/TENANT_ID/ "
        f"(the tenant GUID, then a trailing slash){hint}"
    )


def claim_order(configured: str) -> tuple[str, ...]:
    """The configured claim first, then the default order as fallbacks."""
    return (configured, *(name for name in _FALLBACKS if name != configured))


def token_problem(claims: Mapping[str, Any]) -> str | None:
    if claims.get("ver") != "1.0":
        return f"token version {claims.get('ver')!r} is not 1.0"
    app_only = "scp" not in claims and claims.get("oid") is not None
    if claims.get("idtyp") == "app" or (app_only and claims.get("oid") == claims.get("sub")):
        return "token is an application token; a user must sign in"
    return None


def issuer_hint(issuer: object) -> str:
    if isinstance(issuer, str) and issuer.endswith("/v2.0"):
        return (
            "; the token is v2.0 — set accessTokenAcceptedVersion to null or 1 in the "
            "app manifest, or configure the v2.0 issuer"
        )
    return ""


def groups(claims: Mapping[str, Any]) -> TokenGroups:
    listed = claims.get("_claim_names")  # claims moved elsewhere: the groups overage
    return TokenGroups(claims.get("groups"), isinstance(listed, dict) and "groups" in listed)


def check_settings(findings: Findings, issuer: str, audience: str) -> None:
    """Test configuration's Entra-specific advice: the issuer's form (v1, not v2), the
    audience's (the Application ID URI the Ubiq client asks for)."""
    _issuer_form(findings, issuer)
    _audience_form(findings, audience)


def _issuer_form(findings: Findings, issuer: str) -> None:
    if V1_ISSUER.fullmatch(issuer):
        return
    if V2_ISSUER.fullmatch(issuer):
        detail = (
            "this is Entra's v2.0 issuer. Keystead verifies v1.0 access tokens: leave the "
            "app manifest's accessTokenAcceptedVersion at null or 1 and configure "
            "https://sts.windows.net/<tenant-id>/ as the issuer."
        )
    elif not issuer.strip():
        detail = "no issuer is configured; enter https://sts.windows.net/<tenant-id>/."
    else:
        detail = (
            "Keystead verifies Entra v1.0 access tokens, whose issuer is exactly "
            "https://sts.windows.net/<tenant-id>/ (https, lower-case host, tenant GUID, "
            "trailing slash); the tenant id is taken from it to check each token's tid "
            "claim."
        )
    findings.add(
        ISSUER_FORM,
        f"The configured issuer {issuer!r} is not of the form "
        f"https://sts.windows.net/<tenant-guid>/: {detail}",
        "warning",
    )


def _audience_form(findings: Findings, configured: str) -> None:
    audience = configured.strip()
    if BARE_GUID.fullmatch(audience):
        findings.add(
            AUDIENCE_NOT_APP_ID_URI,
            f"The configured audience {audience!r} is a bare GUID: that is the client-id "
            "form, which Entra puts in v2.0 tokens (or in v1.0 tokens requested with the "
            "scope '<client-id>/.default'). Ubiq clients request 'api://<client-id>/.default', "
            f"so their tokens carry the Application ID URI: configure api://{audience} "
            "(Entra portal: App registrations > Expose an API > Application ID URI).",
        )
        return
    parts = urlsplit(audience)
    if parts.scheme in ("api", "https") and parts.netloc:
        if not DEFAULT_APP_ID_URI.fullmatch(audience):  # an https URI never is the default
            custom = parts.scheme == "api"
            findings.add(
                AUDIENCE_NOT_DEFAULT_URI,
                f"The configured audience {audience!r} is "
                f"{'a custom' if custom else 'an https'} Application ID URI. Ubiq clients "
                "always request the scope 'api://<idp_tenant_id>/.default'"
                f"{' (their idp_tenant_id setting carries the client id)' if custom else ''}, "
                "so they obtain tokens for api://<client-id>; keep the default Application "
                "ID URI unless every client is configured otherwise.",
                "warning",
            )
        return
    findings.add(
        AUDIENCE_NOT_APP_ID_URI,
        f"The configured audience {audience!r} is not an Application ID URI. Use the API's "
        "Application ID URI, normally api://<client-id> (Entra portal: App registrations > "
        "Expose an API).",
    )


def check_discovery_url(findings: Findings, discovery_url: str) -> None:
    """A tenant-specific discovery URL, not a multi-tenant authority's."""
    segments = [s for s in urlsplit(discovery_url).path.split("/") if s]
    if segments and segments[0].lower() in MULTI_TENANT:
        findings.add(
            DISCOVERY_URL_NOT_TENANT,
            f"The discovery URL uses the multi-tenant authority '{segments[0]}', whose "
            "document carries a templated issuer and keys of every tenant. Use the "
            "tenant-specific v1 URL https://login.microsoftonline.com/<tenant-id>/"
            ".well-known/openid-configuration.",
        )


def issuer_mismatch_hint(configured: str, found: str) -> str:
    """What to change when the configured issuer is not the discovery document's."""
    one_v2 = configured.endswith("/v2.0") or found.endswith("/v2.0")
    one_v1 = bool(V1_ISSUER.fullmatch(configured) or V1_ISSUER.fullmatch(found))
    if one_v2 and one_v1:
        return (
            " One is Entra's v1.0 issuer (https://sts.windows.net/<tenant-id>/) and the "
            "other its v2.0 issuer (https://login.microsoftonline.com/<tenant-id>/v2.0). "
            "The app's manifest setting accessTokenAcceptedVersion decides which one its "
            "access tokens carry: null or 1 gives v1.0 tokens with the sts.windows.net "
            "issuer, 2 gives v2.0 tokens with the login.microsoftonline.com/<tenant-id>/v2.0 "
            "issuer. Configure the issuer matching the tokens, and the matching discovery "
            "document: the v1 document is https://login.microsoftonline.com/<tenant-id>/"
            ".well-known/openid-configuration, the v2 one has /v2.0 before /.well-known. "
            "Keystead verifies v1.0 tokens."
        )
    if "{tenantid}" in found.lower():
        return (
            " The document's issuer is a template: the discovery URL is a multi-tenant one; "
            "use the tenant-specific URL."
        )
    configured_tenant, found_tenant = tenant_of_any_issuer(configured), tenant_of_any_issuer(found)
    if configured_tenant and found_tenant and configured_tenant != found_tenant:
        return (
            f" They name different tenants ({configured_tenant} and {found_tenant}): the "
            "discovery URL or the issuer belongs to another tenant."
        )
    if configured.rstrip("/") == found.rstrip("/"):
        return " They differ only in the trailing slash; copy the issuer exactly."
    return ""


SIGN_IN = SignIn(
    check_issuer=check_issuer,
    tenant_of_issuer=tenant_of_v1_issuer,
    username_claims=USERNAME_CLAIMS,
    claim_order=claim_order,
    token_problem=token_problem,
    issuer_hint=issuer_hint,
    tenant=lambda claims: claims.get("tid"),
    object_id=lambda claims: claims["oid"] if isinstance(claims.get("oid"), str) else None,
    is_object_id=lambda value: BARE_GUID.fullmatch(value) is not None,
    groups=groups,
    check_settings=check_settings,
    check_discovery_url=check_discovery_url,
    issuer_mismatch_hint=issuer_mismatch_hint,
    discovery_url_example=(
        "https://login.microsoftonline.com/TENANT_ID/.well-known/openid-configuration"
    ),
    not_provisioned_fix="assign them to the enterprise application in Entra and let "
    "provisioning run",
    rebind_fix="remove the user from the enterprise application in Entra (or delete it in "
    "Keystead's directory) and provision it again to bind the new person",
)
