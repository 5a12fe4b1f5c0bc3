"""The "test configuration" check an admin runs after entering the sign-in settings.

Token verification fails late and tersely (a 401 to a client, a reason in a log). Most of
those failures are configuration mistakes that can be seen up front: a discovery URL that
is not reachable or not Entra's v1 document, an issuer that does not match what the tenant
puts in its tokens (the v1/v2 confusion), an audience in the client-id form, a key set
without usable keys. :func:`check` looks for all of them in one pass and reports every
problem, each with a stable ``code`` (for the UI and tests) and a message that says which
Entra or Keystead setting to change.

It fetches the discovery document and then its ``jwks_uri`` through the ``Fetch`` passed
in (``idp.outbound``: the outbound policy, the size cap and the deadline), and never quotes
what the other side answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from keystead.errors import BadRequest
from keystead.idp import jwks
from keystead.idp.config import LOOPBACK_HOSTS
from keystead.idp.outbound import Fetch, FetchFailed
from keystead.providers import PROVIDER
from keystead.providers import base as provider_checks
from keystead.web import jsonbody

Severity = Literal["error", "warning"]

#: Upper bound on each response read; Entra's documents are a few kilobytes.
MAX_BYTES = 1024 * 1024

# Stable problem codes; the first four are reported by the provider's own checks.
ISSUER_NOT_V1 = provider_checks.ISSUER_FORM
DISCOVERY_URL_NOT_TENANT = provider_checks.DISCOVERY_URL_NOT_TENANT
AUDIENCE_NOT_APP_ID_URI = provider_checks.AUDIENCE_NOT_APP_ID_URI
AUDIENCE_NOT_DEFAULT_URI = provider_checks.AUDIENCE_NOT_DEFAULT_URI
DISCOVERY_URL_INVALID = "discovery_url_invalid"
DISCOVERY_URL_NOT_HTTPS = "discovery_url_not_https"
DISCOVERY_UNREACHABLE = "discovery_unreachable"
DISCOVERY_HTTP_STATUS = "discovery_http_status"
DISCOVERY_TOO_LARGE = "discovery_too_large"
DISCOVERY_NOT_JSON = "discovery_not_json"
DISCOVERY_NOT_OBJECT = "discovery_not_object"
DISCOVERY_NO_ISSUER = "discovery_no_issuer"
DISCOVERY_NO_JWKS_URI = "discovery_no_jwks_uri"
ISSUER_MISMATCH = "issuer_mismatch"
JWKS_URI_INVALID = "jwks_uri_invalid"
JWKS_URI_NOT_HTTPS = "jwks_uri_not_https"
DISCOVERY_REFUSED = "discovery_refused"  # the outbound policy would not fetch it
JWKS_REFUSED = "jwks_refused"
JWKS_UNREACHABLE = "jwks_unreachable"
JWKS_HTTP_STATUS = "jwks_http_status"
JWKS_TOO_LARGE = "jwks_too_large"
JWKS_NOT_JSON = "jwks_not_json"
JWKS_NO_KEYS = "jwks_no_keys"
JWKS_NO_RS256_KEYS = "jwks_no_rs256_keys"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration; ``code`` is stable, ``message`` is for people."""

    code: str
    message: str
    severity: Severity = "error"


@dataclass
class PreflightReport:
    """Everything :func:`check` found: the problems, and the facts an admin can compare
    with what Entra's portal shows."""

    discovery_url: str
    issuer: str
    audience: str
    problems: list[Problem] = field(default_factory=list)
    document_issuer: str | None = None
    jwks_uri: str | None = None
    token_endpoint: str | None = None
    rs256_key_count: int = 0
    key_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True iff nothing error-level was found (warnings do not block)."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    def add(self, code: str, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(code, message, severity))


CheckStatus = Literal["pass", "fail", "warning", "skipped"]


@dataclass(frozen=True)
class CheckLine:
    """One line of the report as an admin reads it: a check, its outcome, and the fix."""

    name: str
    status: CheckStatus
    message: str


_CHECKS = (
    ("Discovery document", "discovery_"),
    ("Token issuer", "issuer_"),
    ("Signing keys", "jwks_"),
    ("Token audience", "audience_"),
)


def lines(report: PreflightReport) -> list[CheckLine]:
    """The report as one line per check (problems grouped by the check they belong to)."""
    passed = {
        "Discovery document": f"Read the OpenID Connect document at {report.discovery_url}.",
        "Token issuer": f"{report.issuer} is the issuer the tenant's document names.",
        "Signing keys": f"{report.rs256_key_count} RS256 signing key(s) at {report.jwks_uri}.",
        "Token audience": f"{report.audience} is an Application ID URI.",
    }
    out = []
    for name, prefix in _CHECKS:
        found = [p for p in report.problems if p.code.startswith(prefix)]
        status: CheckStatus
        if found:
            status = "fail" if any(p.severity == "error" for p in found) else "warning"
            message = " ".join(p.message for p in found)
        elif _not_reached(name, report):
            status = "skipped"
            message = "Not checked: the discovery document could not be read (see above)."
        else:
            status, message = "pass", passed[name]
        out.append(CheckLine(name, status, message))
    return out


def _not_reached(name: str, report: PreflightReport) -> bool:
    if name == "Token issuer":
        return report.document_issuer is None
    return name == "Signing keys" and report.rs256_key_count == 0


def check(discovery_url: str, issuer: str, audience: str, fetch: Fetch) -> PreflightReport:
    """Check the IDP settings against the provider and against what Keystead accepts.

    Never raises for a provider problem: every finding becomes a :class:`Problem`.
    """
    report = PreflightReport(discovery_url=discovery_url, issuer=issuer, audience=audience)
    PROVIDER.sign_in.check_settings(report, issuer, audience)
    if _check_url(
        report, discovery_url, DISCOVERY_URL_INVALID, DISCOVERY_URL_NOT_HTTPS, "discovery"
    ):
        PROVIDER.sign_in.check_discovery_url(report, discovery_url)
        document = _fetch_json(report, discovery_url, "discovery", fetch)
        if isinstance(document, dict):
            _check_document(report, document, fetch)
        elif document is not _FAILED:
            report.add(
                DISCOVERY_NOT_OBJECT,
                f"The discovery document at {discovery_url} is JSON but not an object "
                f"(it is {_json_type(document)}); the URL does not point at an OpenID "
                "Connect discovery document.",
            )
    return report


# --------------------------------------------------------------------- configuration alone


def _check_url(
    report: PreflightReport, url: str, invalid_code: str, http_code: str, what: str
) -> bool:
    """False if ``url`` is not to be fetched (not a URL; plain http off loopback)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme not in {"http", "https"} or not host:
        report.add(invalid_code, f"The {what} URL {url!r} is not an absolute http(s) URL.")
        return False
    if parts.scheme != "https" and host not in LOOPBACK_HOSTS:
        report.add(
            http_code,
            f"The {what} URL {url} does not use https. Signing keys fetched over plain http "
            "can be replaced by anyone on the network path, so Keystead does not fetch it; "
            "use the https URL (for Entra: https://login.microsoftonline.com/...).",
        )
        return False
    return True


# --------------------------------------------------------------------- the provider


def _check_document(report: PreflightReport, document: dict[str, Any], fetch: Fetch) -> None:
    found_issuer = document.get("issuer")
    token_endpoint = document.get("token_endpoint")
    if isinstance(token_endpoint, str):
        report.token_endpoint = token_endpoint
    if isinstance(found_issuer, str) and found_issuer:
        report.document_issuer = found_issuer
        if found_issuer != report.issuer:
            report.add(ISSUER_MISMATCH, _issuer_mismatch(report.issuer, found_issuer))
    else:
        report.add(
            DISCOVERY_NO_ISSUER,
            "The discovery document has no 'issuer', so the configured issuer cannot be "
            "cross-checked; make sure the URL is the tenant's OpenID Connect document.",
            "warning",
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        report.add(
            DISCOVERY_NO_JWKS_URI,
            f"The discovery document at {report.discovery_url} has no 'jwks_uri', so "
            "Keystead cannot find the signing keys. Check that the URL ends in "
            "/.well-known/openid-configuration.",
        )
        return
    report.jwks_uri = jwks_uri
    if _check_url(report, jwks_uri, JWKS_URI_INVALID, JWKS_URI_NOT_HTTPS, "jwks_uri"):
        key_set = _fetch_json(report, jwks_uri, "jwks", fetch)
        if key_set is not _FAILED:
            _check_key_set(report, key_set)


def _issuer_mismatch(configured: str, found: str) -> str:
    return (
        f"The configured issuer {configured!r} differs from the issuer in the discovery "
        f"document, {found!r}. The issuer is compared exactly (scheme, host, case, "
        "trailing slash)."
    ) + PROVIDER.sign_in.issuer_mismatch_hint(configured, found)


def _check_key_set(report: PreflightReport, key_set: Any) -> None:
    keys = key_set.get("keys") if isinstance(key_set, dict) else None
    if not isinstance(keys, list) or not keys:
        report.add(
            JWKS_NO_KEYS,
            f"The key set at {report.jwks_uri} has no 'keys' list or it is empty, so no "
            "token could be verified.",
        )
        return
    # The key set's own rule decides which entries sign-in would use.
    report.key_ids = [entry["kid"] for entry in keys if jwks.signing_key(entry) is not None]
    report.rs256_key_count = len(report.key_ids)
    if not report.key_ids:
        report.add(
            JWKS_NO_RS256_KEYS,
            f"The key set at {report.jwks_uri} publishes {len(keys)} key(s) but none is an "
            "RSA signing key usable with RS256 (kty RSA, use sig, a kid, n and e). Entra "
            "signs access tokens with RS256; check that the discovery URL is Entra's.",
        )


# --------------------------------------------------------------------- bounded fetching


# Returned when a fetch failed (its problem already reported); a document may be null.
_FAILED = object()

# What is fetched: its name in messages and its problem codes.
_FETCHES = {
    "discovery": (
        "discovery document",
        (DISCOVERY_REFUSED, DISCOVERY_UNREACHABLE, DISCOVERY_HTTP_STATUS),
        (DISCOVERY_TOO_LARGE, DISCOVERY_NOT_JSON),
    ),
    "jwks": (
        "key set (jwks_uri)",
        (JWKS_REFUSED, JWKS_UNREACHABLE, JWKS_HTTP_STATUS),
        (JWKS_TOO_LARGE, JWKS_NOT_JSON),
    ),
}


def _fetch_json(
    report: PreflightReport, url: str, what: Literal["discovery", "jwks"], fetch: Fetch
) -> Any:
    """GET ``url`` under the outbound policy and parse JSON; report and return _FAILED on any
    failure. Nothing the other side answered is ever quoted back."""
    name, (refused, unreachable, bad_status), (too_large, not_json) = _FETCHES[what]
    try:
        fetched = fetch(url)
    except FetchFailed as exc:
        if exc.kind == "too_large":
            report.add(
                too_large,
                f"The {name} at {url} is larger than {MAX_BYTES} bytes; Entra's are a few "
                "kilobytes, so this is not the right URL.",
            )
        elif exc.kind in ("refused", "redirect"):
            report.add(refused, f"Keystead did not fetch the {name} from {url}: {exc.message}.")
        else:
            report.add(
                unreachable,
                f"Cannot fetch the {name} from {url} ({exc.message}). Check the URL and that "
                "Keystead's server can reach the host (proxy, firewall, DNS, TLS).",
            )
        return _FAILED
    if fetched.status != 200:
        hint = ""
        if what == "discovery" and fetched.status in {400, 404}:
            hint = (
                " Check the tenant id in the URL; Entra's v1 document is "
                "https://login.microsoftonline.com/<tenant-id>/.well-known/openid-configuration."
            )
        report.add(
            bad_status, f"The {name} at {url} answered HTTP {fetched.status}, not 200.{hint}"
        )
        return _FAILED
    try:
        return jsonbody.loads(fetched.body, what="the answer")
    except BadRequest:
        report.add(
            not_json,
            f"The {name} at {url} is not JSON; the URL probably points at a web page or a "
            "proxy's error page.",
        )
        return _FAILED


def _json_type(value: Any) -> str:
    """What a parsed JSON value other than an object is."""
    names = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}
    return names.get(type(value), "a number")
