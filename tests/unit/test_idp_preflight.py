"""The IDP configuration pre-flight: every problem code, against the Entra stand-in over
real HTTP (a closed port for "unreachable", an http proxy for non-loopback http URLs)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keystead.idp import preflight as pf
from keystead.idp.outbound import Fetch, Fetcher, OutboundPolicy, via_client
from tests.support.fake_entra import FakeEntra, serve


@pytest.fixture
def entra() -> Iterator[FakeEntra]:
    yield from serve()


@pytest.fixture
def fetch() -> Fetch:
    """The outbound policy as the test suite's operator sets it: the stand-in tenant lives
    on loopback, so private addresses (and plain http there) are allowed."""
    return Fetcher(OutboundPolicy(allow_private=True, deadline_seconds=5))


def run(entra: FakeEntra, fetch: Fetch, **changes: str) -> pf.PreflightReport:
    """check() with the stand-in's correct settings, except for ``changes``."""
    settings = {
        "discovery_url": entra.discovery_url,
        "issuer": entra.issuer,
        "audience": entra.audience,
        **changes,
    }
    return pf.check(settings["discovery_url"], settings["issuer"], settings["audience"], fetch)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def only(report: pf.PreflightReport, code: str) -> pf.Problem:
    """The report has exactly one problem, with this code; return it."""
    assert report.codes == [code], report.problems
    return report.problems[0]


# --------------------------------------------------------------------------- the good case


def test_correct_configuration_passes_and_reports_the_facts(entra: FakeEntra, fetch: Fetch) -> None:
    report = run(entra, fetch)
    assert report.ok
    assert report.problems == []
    assert report.document_issuer == entra.issuer
    assert report.jwks_uri == entra.jwks_uri
    assert report.token_endpoint == entra.token_endpoint_v1
    assert (report.rs256_key_count, report.key_ids) == (1, [entra.current_key.kid])
    assert (entra.discovery_fetches, entra.jwks_fetches) == (1, 1)


def test_all_published_keys_are_counted_during_a_rollover(entra: FakeEntra, fetch: Fetch) -> None:
    old = entra.current_key.kid
    new = entra.rotate_keys().kid
    report = run(entra, fetch)
    assert report.ok
    assert (report.rs256_key_count, sorted(report.key_ids)) == (2, sorted([old, new]))


# --------------------------------------------------------------------------- discovery URL


def test_plain_http_discovery_url_is_an_error_and_not_fetched(
    entra: FakeEntra, fetch: Fetch
) -> None:
    """http to a non-loopback host is refused as insecure, and nothing is fetched."""
    url = f"http://login.idp.example/{entra.tenant_id}/.well-known/openid-configuration"
    report = run(entra, fetch, discovery_url=url)
    problem = only(report, pf.DISCOVERY_URL_NOT_HTTPS)
    assert url in problem.message
    assert "https" in problem.message
    assert not report.ok
    assert entra.discovery_fetches == 0


def test_localhost_http_is_allowed(entra: FakeEntra, fetch: Fetch) -> None:
    url = entra.discovery_url.replace("127.0.0.1", "localhost")
    assert run(entra, fetch, discovery_url=url).problems == []


@pytest.mark.parametrize("url", ["not a url", "ftp://idp.example/x", "https:///path-only", ""])
def test_invalid_discovery_url_is_not_fetched(entra: FakeEntra, fetch: Fetch, url: str) -> None:
    report = run(entra, fetch, discovery_url=url)
    only(report, pf.DISCOVERY_URL_INVALID)
    assert entra.discovery_fetches == 0


def test_multi_tenant_discovery_url_is_flagged(entra: FakeEntra, fetch: Fetch) -> None:
    url = f"{entra.base_url}/common/.well-known/openid-configuration"
    report = run(entra, fetch, discovery_url=url)
    assert pf.DISCOVERY_URL_NOT_TENANT in report.codes
    assert "tenant-specific" in report.problems[0].message


def test_unreachable_discovery_names_the_url_and_the_kind_of_failure_only(
    entra: FakeEntra, fetch: Fetch
) -> None:
    """The message says the connection failed, never the socket error's own words (which
    would let an admin probe hosts and ports through the server)."""
    url = f"http://127.0.0.1:{closed_port()}/{entra.tenant_id}/.well-known/openid-configuration"
    report = run(entra, fetch, discovery_url=url)
    problem = only(report, pf.DISCOVERY_UNREACHABLE)
    assert url in problem.message
    assert "the connection failed" in problem.message
    assert "Errno" not in problem.message
    assert "refused" not in problem.message
    assert not report.ok
    assert report.jwks_uri is None


def test_discovery_timeout_is_unreachable(entra: FakeEntra) -> None:
    """The deadline is the outbound policy's; a slow provider is reported, not waited for."""
    entra.override("discovery", body=entra.discovery_document(), delay=0.3)
    impatient = Fetcher(OutboundPolicy(allow_private=True, deadline_seconds=0.05))
    report = run(entra, impatient)
    problem = only(report, pf.DISCOVERY_UNREACHABLE)
    assert "did not answer within" in problem.message
    assert entra.discovery_url in problem.message


@pytest.mark.parametrize("status", [404, 500])
def test_discovery_non_200(entra: FakeEntra, fetch: Fetch, status: int) -> None:
    entra.override("discovery", status=status, body={"error": "x"})
    problem = only(run(entra, fetch), pf.DISCOVERY_HTTP_STATUS)
    assert f"HTTP {status}" in problem.message


def test_discovery_for_an_unknown_tenant(entra: FakeEntra, fetch: Fetch) -> None:
    """Entra answers 400 (AADSTS90002) for a tenant it does not know; the hint says to
    check the tenant id."""
    url = entra.discovery_url.replace(entra.tenant_id, "11111111-2222-4333-8444-555555555555")
    problem = only(run(entra, fetch, discovery_url=url), pf.DISCOVERY_HTTP_STATUS)
    assert "HTTP 400" in problem.message
    assert "tenant id" in problem.message


def test_discovery_not_json_is_said_without_echoing_the_answer(
    entra: FakeEntra, fetch: Fetch
) -> None:
    """Whatever the URL answered stays on the server: an admin pointing the discovery URL at
    an internal service must not read its answer back through the report."""
    entra.override("discovery", body="INTERNAL-SECRET=hunter2 <html>Sign in to the proxy</html>",
                   content_type="text/html")  # fmt: skip
    problem = only(run(entra, fetch), pf.DISCOVERY_NOT_JSON)
    assert "not JSON" in problem.message
    assert "hunter2" not in problem.message
    assert "<html>" not in problem.message
    assert entra.jwks_fetches == 0


@pytest.mark.parametrize("body", [[1, 2], "just a string", 42, None])
def test_discovery_json_but_not_an_object(entra: FakeEntra, fetch: Fetch, body: Any) -> None:
    entra.override("discovery", body=json.dumps(body))
    only(run(entra, fetch), pf.DISCOVERY_NOT_OBJECT)


def test_discovery_too_large_is_not_read(entra: FakeEntra, fetch: Fetch) -> None:
    entra.override("discovery", body=b" " * (pf.MAX_BYTES + 1))
    only(run(entra, fetch), pf.DISCOVERY_TOO_LARGE)


def test_body_without_length_is_cut_off_at_the_limit() -> None:
    """A streamed body with no Content-Length is read only up to the limit."""
    sent = [0]

    def endless() -> Iterator[bytes]:
        while True:
            sent[0] += 1
            yield b"x" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Stream(endless()))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        report = pf.check(
            "https://login.microsoftonline.com/t/.well-known/openid-configuration",
            "https://sts.windows.net/8f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b/",
            "api://8f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
            via_client(client, max_bytes=pf.MAX_BYTES),
        )
    assert report.codes == [pf.DISCOVERY_TOO_LARGE]
    assert sent[0] == pf.MAX_BYTES // 65536 + 1


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks


# --------------------------------------------------------------------------- document content


def test_document_without_jwks_uri(entra: FakeEntra, fetch: Fetch) -> None:
    document = entra.discovery_document()
    del document["jwks_uri"]
    entra.override("discovery", body=document)
    problem = only(run(entra, fetch), pf.DISCOVERY_NO_JWKS_URI)
    assert "openid-configuration" in problem.message
    assert entra.jwks_fetches == 0


def test_document_without_issuer_is_a_warning(entra: FakeEntra, fetch: Fetch) -> None:
    document = entra.discovery_document()
    del document["issuer"]
    entra.override("discovery", body=document)
    report = run(entra, fetch)
    assert only(report, pf.DISCOVERY_NO_ISSUER).severity == "warning"
    assert report.ok
    assert report.rs256_key_count == 1


def test_v2_discovery_with_v1_issuer_explains_access_token_version(
    entra: FakeEntra, fetch: Fetch
) -> None:
    """Pointing at the v2 document while the issuer is v1: the hint names
    accessTokenAcceptedVersion and which value gives which issuer."""
    report = run(entra, fetch, discovery_url=entra.discovery_url_v2)
    problem = only(report, pf.ISSUER_MISMATCH)
    assert report.document_issuer == entra.v2_issuer
    assert entra.issuer in problem.message
    assert entra.v2_issuer in problem.message
    assert "accessTokenAcceptedVersion" in problem.message
    assert "null or 1" in problem.message
    assert "2 gives v2.0" in problem.message
    assert not report.ok
    assert report.rs256_key_count == 1  # the key set is still checked


def test_v2_issuer_configured_against_v1_document(entra: FakeEntra, fetch: Fetch) -> None:
    report = run(entra, fetch, issuer=entra.v2_issuer)
    assert sorted(report.codes) == sorted([pf.ISSUER_MISMATCH, pf.ISSUER_NOT_V1])
    mismatch = next(p for p in report.problems if p.code == pf.ISSUER_MISMATCH)
    not_v1 = next(p for p in report.problems if p.code == pf.ISSUER_NOT_V1)
    assert "accessTokenAcceptedVersion" in mismatch.message
    assert not_v1.severity == "warning"
    assert "v1.0" in not_v1.message


def test_document_of_another_tenant(entra: FakeEntra, fetch: Fetch) -> None:
    other = "11111111-2222-4333-8444-555555555555"
    entra.discovery_issuer = f"https://sts.windows.net/{other}/"
    problem = only(run(entra, fetch), pf.ISSUER_MISMATCH)
    assert other in problem.message
    assert entra.tenant_id in problem.message
    assert "another tenant" in problem.message


def test_issuer_without_trailing_slash(entra: FakeEntra, fetch: Fetch) -> None:
    report = run(entra, fetch, issuer=entra.issuer.rstrip("/"))
    assert sorted(report.codes) == sorted([pf.ISSUER_MISMATCH, pf.ISSUER_NOT_V1])
    mismatch = next(p for p in report.problems if p.code == pf.ISSUER_MISMATCH)
    assert "trailing slash" in mismatch.message


@pytest.mark.parametrize(
    "issuer",
    [
        "https://login.microsoftonline.com/{tid}/",
        "http://sts.windows.net/{tid}/",
        "https://sts.windows.net/contoso.onmicrosoft.com/",
        "",
    ],
)
def test_issuer_not_of_v1_form_is_a_warning(entra: FakeEntra, fetch: Fetch, issuer: str) -> None:
    report = run(entra, fetch, issuer=issuer.format(tid=entra.tenant_id))
    not_v1 = [p for p in report.problems if p.code == pf.ISSUER_NOT_V1]
    assert [p.severity for p in not_v1] == ["warning"]
    assert "https://sts.windows.net/<tenant-guid>/" in not_v1[0].message


# --------------------------------------------------------------------------- key set


def test_jwks_uri_over_plain_http_is_not_fetched(entra: FakeEntra, fetch: Fetch) -> None:
    document = entra.discovery_document()
    document["jwks_uri"] = "http://keys.idp.example/common/discovery/keys"
    entra.override("discovery", body=document)
    report = run(entra, fetch)
    problem = only(report, pf.JWKS_URI_NOT_HTTPS)
    assert "keys.idp.example" in problem.message
    assert entra.jwks_fetches == 0


def test_jwks_uri_invalid(entra: FakeEntra, fetch: Fetch) -> None:
    document = entra.discovery_document()
    document["jwks_uri"] = "/common/discovery/keys"
    entra.override("discovery", body=document)
    only(run(entra, fetch), pf.JWKS_URI_INVALID)


def test_jwks_unreachable(entra: FakeEntra, fetch: Fetch) -> None:
    document = entra.discovery_document()
    document["jwks_uri"] = f"http://127.0.0.1:{closed_port()}/keys"
    entra.override("discovery", body=document)
    problem = only(run(entra, fetch), pf.JWKS_UNREACHABLE)
    assert document["jwks_uri"] in problem.message


def test_jwks_non_200(entra: FakeEntra, fetch: Fetch) -> None:
    entra.override("jwks", status=503, body="busy", content_type="text/plain")
    problem = only(run(entra, fetch), pf.JWKS_HTTP_STATUS)
    assert "HTTP 503" in problem.message
    assert entra.jwks_uri in problem.message


def test_jwks_not_json(entra: FakeEntra, fetch: Fetch) -> None:
    entra.override("jwks", body="keys go here", content_type="text/plain")
    only(run(entra, fetch), pf.JWKS_NOT_JSON)


def test_jwks_too_large(entra: FakeEntra, fetch: Fetch) -> None:
    entra.override("jwks", body=b"{" + b" " * pf.MAX_BYTES + b"}")
    only(run(entra, fetch), pf.JWKS_TOO_LARGE)


@pytest.mark.parametrize("body", [{"keys": []}, {"other": 1}, [], {"keys": "k1"}])
def test_jwks_without_keys(entra: FakeEntra, fetch: Fetch, body: Any) -> None:
    entra.override("jwks", body=body)
    report = run(entra, fetch)
    only(report, pf.JWKS_NO_KEYS)
    assert report.rs256_key_count == 0


def unusable_keys(entra: FakeEntra) -> list[Any]:
    """Keys a verifier must not use for RS256 tokens, one reason each."""
    good = entra.current_key.jwk()
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())
                                                          .public_key()))  # fmt: skip
    no_kid = {k: val for k, val in good.items() if k != "kid"}
    return [
        {**ec_jwk, "kid": "ec", "use": "sig"},
        {**good, "kid": "enc", "use": "enc"},
        {**good, "kid": "rs512", "alg": "RS512"},
        {**good, "kid": "ops", "key_ops": ["encrypt"]},
        {**good, "kid": "bad-n", "n": "!!not base64!!"},
        {**good, "kid": "", "x5t": "x"},
        no_kid,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        "not an object",
    ]


def test_jwks_without_rs256_signing_keys(entra: FakeEntra, fetch: Fetch) -> None:
    entra.override("jwks", body={"keys": unusable_keys(entra)})
    report = run(entra, fetch)
    problem = only(report, pf.JWKS_NO_RS256_KEYS)
    assert "9 key(s)" in problem.message
    assert (report.rs256_key_count, report.key_ids) == (0, [])


def test_only_usable_keys_are_counted(entra: FakeEntra, fetch: Fetch) -> None:
    good = {**entra.current_key.jwk(), "alg": "RS256", "key_ops": ["verify"]}
    entra.override("jwks", body={"keys": [*unusable_keys(entra), good]})
    report = run(entra, fetch)
    assert report.problems == []
    assert report.key_ids == [entra.current_key.kid]


# --------------------------------------------------------------------------- audience


def test_bare_guid_audience_explains_the_client_id_form(entra: FakeEntra, fetch: Fetch) -> None:
    problem = only(run(entra, fetch, audience=entra.client_id), pf.AUDIENCE_NOT_APP_ID_URI)
    assert problem.severity == "error"
    assert f"api://{entra.client_id}" in problem.message
    assert "v2.0" in problem.message
    assert "client-id" in problem.message


@pytest.mark.parametrize("audience", ["keystead", "", "urn:keystead", "api://"])
def test_audience_not_a_uri(entra: FakeEntra, fetch: Fetch, audience: str) -> None:
    problem = only(run(entra, fetch, audience=audience), pf.AUDIENCE_NOT_APP_ID_URI)
    assert "Application ID URI" in problem.message


@pytest.mark.parametrize("audience", ["api://keystead-app", "https://keystead.contoso.example"])
def test_custom_app_id_uri_is_a_warning(entra: FakeEntra, fetch: Fetch, audience: str) -> None:
    """Valid in Entra, but Ubiq clients always ask for api://<client id>/.default."""
    report = run(entra, fetch, audience=audience)
    assert only(report, pf.AUDIENCE_NOT_DEFAULT_URI).severity == "warning"
    assert report.ok


# --------------------------------------------------------------------------- all at once


def test_every_problem_is_reported_not_only_the_first(entra: FakeEntra, fetch: Fetch) -> None:
    entra.override("jwks", body={"keys": unusable_keys(entra)})
    report = run(
        entra,
        fetch,
        discovery_url=entra.discovery_url_v2,
        audience=entra.client_id,
        issuer=entra.issuer,
    )
    assert sorted(report.codes) == sorted(
        [pf.AUDIENCE_NOT_APP_ID_URI, pf.ISSUER_MISMATCH, pf.JWKS_NO_RS256_KEYS]
    )
    assert len(report.errors) == 3
    assert report.warnings == []
    assert not report.ok


def test_problem_codes_are_distinct() -> None:
    codes = [value for name, value in vars(pf).items() if name.isupper() and isinstance(value, str)]
    assert len(codes) == len(set(codes)) > 15
