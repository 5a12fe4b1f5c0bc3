"""The Entra stand-in behaves like Entra over real HTTP, and Keystead's verifier accepts
what it issues (so tests built on it test Keystead, not the stand-in)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from keystead.idp import outbound
from keystead.idp import verify as v
from keystead.idp.jwks import JwksCache
from tests.support.fake_entra import FakeEntra, b64url, serve

PASSWORD = "correct horse battery staple"
USER = "Alice.Smith@contoso.example"


@pytest.fixture
def entra() -> Iterator[FakeEntra]:
    yield from serve()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def ropc(entra: FakeEntra, **changes: str | None) -> dict[str, str]:
    """The form the Ubiq client posts (protocol §7.3), with changes; None drops a field."""
    form: dict[str, str | None] = {
        "client_id": entra.client_id,
        "client_secret": entra.client_secret,
        "username": USER,
        "password": PASSWORD,
        "grant_type": "password",
        "scope": f"api://{entra.client_id}/.default",
    }
    form.update(changes)
    return {k: val for k, val in form.items() if val is not None}


def published_key(http: httpx.Client, entra: FakeEntra, kid: str) -> RSAPublicKey:
    keys = http.get(entra.jwks_uri).json()["keys"]
    (entry,) = [k for k in keys if k["kid"] == kid]
    key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(entry))
    assert isinstance(key, RSAPublicKey)
    return key


def decode(http: httpx.Client, entra: FakeEntra, token: str) -> dict[str, Any]:
    """Verify a token the strict way, with the key fetched from the stand-in's JWKS."""
    header = jwt.get_unverified_header(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        published_key(http, entra, header["kid"]),
        algorithms=["RS256"],
        audience=entra.audience,
        issuer=entra.issuer,
        options={"require": ["exp", "nbf", "iat", "iss", "aud"]},
    )
    return claims


# --------------------------------------------------------------------------- lifecycle


def test_serves_on_loopback_and_releases_the_port_on_stop() -> None:
    """start() binds 127.0.0.1 on a free port; stop() closes it, so nothing answers after."""
    entra = FakeEntra().start()
    url = entra.discovery_url
    assert entra.base_url.startswith("http://127.0.0.1:")
    assert httpx.get(url, timeout=5).status_code == 200
    entra.stop()
    entra.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)


def test_addresses_follow_entra_layout(entra: FakeEntra) -> None:
    """The issuer is the sts.windows.net form; endpoints live under the tenant id."""
    tid, base = entra.tenant_id, entra.base_url
    assert entra.issuer == f"https://sts.windows.net/{tid}/"
    assert entra.audience == f"api://{entra.client_id}"
    assert entra.discovery_url == f"{base}/{tid}/.well-known/openid-configuration"
    assert entra.token_endpoint == f"{base}/{tid}/oauth2/v2.0/token"
    assert entra.jwks_uri == f"{base}/common/discovery/keys"
    assert entra.tenant_id != FakeEntra().tenant_id  # random per instance


# --------------------------------------------------------------------------- discovery, JWKS


def test_v1_discovery_document(entra: FakeEntra, http: httpx.Client) -> None:
    """The v1 document names sts.windows.net as issuer although served from elsewhere."""
    response = http.get(entra.discovery_url)
    document = response.json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert document["issuer"] == entra.issuer
    assert document["jwks_uri"] == entra.jwks_uri
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["token_endpoint"] == entra.token_endpoint_v1
    assert document["authorization_endpoint"].endswith(f"/{entra.tenant_id}/oauth2/authorize")
    assert "client_secret_post" in document["token_endpoint_auth_methods_supported"]
    assert entra.discovery_fetches == 1


def test_v2_discovery_document_has_the_v2_issuer(entra: FakeEntra, http: httpx.Client) -> None:
    """The v2 document (…/v2.0/.well-known/…) carries login.microsoftonline.com/<tid>/v2.0."""
    document = http.get(entra.discovery_url_v2).json()
    assert document["issuer"] == f"https://login.microsoftonline.com/{entra.tenant_id}/v2.0"
    assert document["token_endpoint"] == entra.token_endpoint
    keys = http.get(document["jwks_uri"]).json()["keys"]
    assert [k["issuer"] for k in keys] == [entra.v2_issuer]


def test_discovery_for_another_tenant_is_an_aadsts_error(
    entra: FakeEntra, http: httpx.Client
) -> None:
    response = http.get(f"{entra.base_url}/not-my-tenant/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_jwks_entries_are_shaped_like_entras(entra: FakeEntra, http: httpx.Client) -> None:
    """kty/use/kid/x5t/n/e/x5c; kid = x5t = SHA-1 thumbprint of the x5c certificate, whose
    public key is the one n and e describe; RSA 2048 with e = AQAB."""
    (entry,) = http.get(entra.jwks_uri).json()["keys"]
    assert set(entry) == {"kty", "use", "kid", "x5t", "n", "e", "x5c"}
    assert (entry["kty"], entry["use"], entry["e"]) == ("RSA", "sig", "AQAB")
    der = base64.b64decode(entry["x5c"][0])
    assert entry["x5t"] == entry["kid"] == b64url(hashlib.sha1(der).digest())
    certificate = x509.load_der_x509_certificate(der)
    cert_key = certificate.public_key()
    assert isinstance(cert_key, RSAPublicKey)
    assert cert_key.key_size == 2048
    n = int.from_bytes(base64.urlsafe_b64decode(entry["n"] + "=" * (-len(entry["n"]) % 4)), "big")
    assert cert_key.public_numbers().n == n
    assert entry["kid"] == entra.current_key.kid
    assert entra.jwks_fetches == 1


def test_tenant_specific_keys_path_serves_the_same_keys(
    entra: FakeEntra, http: httpx.Client
) -> None:
    common = http.get(entra.jwks_uri).json()
    tenant = http.get(f"{entra.base_url}/{entra.tenant_id}/discovery/keys").json()
    assert common == tenant
    assert entra.jwks_fetches == 2


# --------------------------------------------------------------------------- password grant


def test_password_grant_returns_a_v1_access_token(entra: FakeEntra, http: httpx.Client) -> None:
    """The Ubiq client's request gets 200 and a v1.0 token for api://<client id>; the
    user's stored spelling is used whatever case was typed."""
    user = entra.add_user(USER, PASSWORD, groups=["g-one", "g-two"])
    response = http.post(entra.token_endpoint, data=ropc(entra, username=USER.lower()))
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"token_type", "scope", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3600
    assert body["scope"] == f"api://{entra.client_id}/user_impersonation"
    header = jwt.get_unverified_header(body["access_token"])
    assert header == {
        "typ": "JWT",
        "alg": "RS256",
        "kid": entra.current_key.kid,
        "x5t": entra.current_key.kid,
    }
    claims = decode(http, entra, body["access_token"])
    assert claims["unique_name"] == claims["upn"] == USER
    assert claims["aud"] == entra.audience
    assert claims["iss"] == entra.issuer
    assert (claims["tid"], claims["oid"], claims["ver"]) == (entra.tenant_id, user.oid, "1.0")
    assert claims["scp"] == "user_impersonation"
    assert claims["groups"] == ["g-one", "g-two"]
    assert claims["amr"] == ["pwd"]
    assert claims["appid"] == entra.client_id
    assert claims["name"] == "Alice Smith"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["sub"] != claims["oid"]
    assert entra.token_requests == 1


def test_client_secret_basic_is_accepted(entra: FakeEntra, http: httpx.Client) -> None:
    entra.add_user(USER, PASSWORD)
    response = http.post(
        entra.token_endpoint,
        data=ropc(entra, client_id=None, client_secret=None),
        auth=(entra.client_id, entra.client_secret),
    )
    assert response.status_code == 200


def test_client_id_scope_gives_the_bare_guid_audience(entra: FakeEntra, http: httpx.Client) -> None:
    """scope=<client id>/.default yields aud = the GUID (a v1 quirk the verifier must face)."""
    entra.add_user(USER, PASSWORD)
    body = http.post(
        entra.token_endpoint, data=ropc(entra, scope=f"{entra.client_id}/.default openid")
    ).json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == entra.client_id


def test_v1_token_endpoint_answers_strings_and_resource(
    entra: FakeEntra, http: httpx.Client
) -> None:
    entra.add_user(USER, PASSWORD)
    form = ropc(entra, scope=None, resource=entra.audience)
    body = http.post(entra.token_endpoint_v1, data=form).json()
    assert body["expires_in"] == "3600"
    assert body["resource"] == entra.audience
    assert int(body["expires_on"]) - int(body["not_before"]) == 3600
    assert decode(http, entra, body["access_token"])["ver"] == "1.0"


def test_token_lifetime_is_configurable(entra: FakeEntra, http: httpx.Client) -> None:
    entra.add_user(USER, PASSWORD)
    entra.token_lifetime = 120
    body = http.post(entra.token_endpoint, data=ropc(entra)).json()
    claims = decode(http, entra, body["access_token"])
    assert body["expires_in"] == 120
    assert claims["exp"] - claims["nbf"] == 120


ERRORS = [
    # (case, form changes, HTTP status, error, AADSTS code)
    ("bad_password", {"password": "wrong"}, 400, "invalid_grant", 50126),
    ("unknown_user", {"username": "nobody@contoso.example"}, 400, "invalid_grant", 50034),
    ("wrong_secret", {"client_secret": "secret-id-not-value"}, 401, "invalid_client", 7000215),
    ("missing_secret", {"client_secret": None}, 401, "invalid_client", 7000218),
    ("unknown_client", {"client_id": "0" * 8 + "-0000-4000-8000-" + "0" * 12}, 400,
     "unauthorized_client", 700016),
    ("bad_scope", {"scope": "user_impersonation"}, 400, "invalid_scope", 70011),
    ("bad_permission", {"scope": "{aud}/Not.A.Scope"}, 400, "invalid_scope", 70011),
    ("other_resource", {"scope": "api://other-api/.default"}, 400, "invalid_resource", 500011),
    ("client_credentials", {"grant_type": "client_credentials"}, 400,
     "unsupported_grant_type", 70003),
    ("missing_grant_type", {"grant_type": None}, 400, "invalid_request", 900144),
    ("missing_username", {"username": None}, 400, "invalid_request", 900144),
    ("missing_scope", {"scope": None}, 400, "invalid_request", 900144),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "status", "error", "code"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_password_grant_errors_are_entra_shaped(
    entra: FakeEntra,
    http: httpx.Client,
    changes: dict[str, str | None],
    status: int,
    error: str,
    code: int,
) -> None:
    entra.add_user(USER, PASSWORD)
    form_changes = {
        k: (val.format(aud=entra.audience) if isinstance(val, str) else val)
        for k, val in changes.items()
    }
    response = http.post(entra.token_endpoint, data=ropc(entra, **form_changes))
    body = response.json()
    assert response.status_code == status
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert body["trace_id"] in body["error_description"]
    assert {"timestamp", "correlation_id"} <= set(body)
    assert "access_token" not in body


def test_disabled_user_is_refused_until_enabled(entra: FakeEntra, http: httpx.Client) -> None:
    entra.add_user(USER, PASSWORD)
    entra.disable_user(USER)
    refused = http.post(entra.token_endpoint, data=ropc(entra))
    assert (refused.status_code, refused.json()["error_codes"]) == (400, [50057])
    entra.disable_user(USER, disabled=False)
    assert http.post(entra.token_endpoint, data=ropc(entra)).status_code == 200


def test_json_body_is_not_a_form(entra: FakeEntra, http: httpx.Client) -> None:
    """Entra reads only form bodies: a JSON body lacks grant_type."""
    entra.add_user(USER, PASSWORD)
    response = http.post(entra.token_endpoint, json=ropc(entra))
    assert response.json()["error_codes"] == [900144]


def test_password_grant_on_common_is_refused(entra: FakeEntra, http: httpx.Client) -> None:
    entra.add_user(USER, PASSWORD)
    response = http.post(f"{entra.base_url}/common/oauth2/v2.0/token", data=ropc(entra))
    assert (response.status_code, response.json()["error_codes"]) == (400, [90010])


def test_groups_overage_replaces_groups_with_a_distributed_claim(
    entra: FakeEntra, http: httpx.Client
) -> None:
    user = entra.add_user(USER, PASSWORD, groups=[f"g{i}" for i in range(201)])
    entra.groups_overage(USER, True)
    body = http.post(entra.token_endpoint, data=ropc(entra)).json()
    claims = decode(http, entra, body["access_token"])
    assert "groups" not in claims
    assert claims["_claim_names"] == {"groups": "src1"}
    endpoint = claims["_claim_sources"]["src1"]["endpoint"]
    assert endpoint == (
        f"https://graph.windows.net/{entra.tenant_id}/users/{user.oid}/getMemberObjects"
    )


# --------------------------------------------------------------------------- rotation


def test_rotation_publishes_both_keys_then_retires_the_old(
    entra: FakeEntra, http: httpx.Client
) -> None:
    entra.add_user(USER, PASSWORD)
    old_kid = entra.current_key.kid
    old_token = entra.token_for(USER)
    new = entra.rotate_keys()
    kids = [k["kid"] for k in http.get(entra.jwks_uri).json()["keys"]]
    assert sorted(kids) == sorted([old_kid, new.kid])
    assert new.kid != old_kid
    new_token = http.post(entra.token_endpoint, data=ropc(entra)).json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    assert decode(http, entra, old_token)["unique_name"] == USER  # old key still published
    entra.retire_old_keys()
    assert [k["kid"] for k in http.get(entra.jwks_uri).json()["keys"]] == [new.kid]


# --------------------------------------------------------------------------- counters


def test_counters_are_exact_under_concurrency(entra: FakeEntra) -> None:
    """Parallel fetches are all counted (the counters are meant for at-most-once asserts)."""

    def fetch() -> None:
        with httpx.Client(timeout=5) as client:
            for _ in range(5):
                assert client.get(entra.jwks_uri).status_code == 200

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (entra.jwks_fetches, entra.discovery_fetches, entra.token_requests) == (40, 0, 0)
    stats = httpx.get(f"{entra.base_url}/_admin/stats", timeout=5).json()
    assert stats["jwks_fetches"] == 40
    entra.reset_counters()
    assert entra.jwks_fetches == 0


# --------------------------------------------------------------------------- overrides


def test_override_serves_raw_bytes_until_cleared(entra: FakeEntra, http: httpx.Client) -> None:
    entra.override("discovery", body="<html>proxy login</html>", content_type="text/html")
    broken = http.get(entra.discovery_url_v2)
    assert (broken.status_code, broken.text) == (200, "<html>proxy login</html>")
    entra.override("jwks", status=503, body={"error": "busy"})
    assert http.get(entra.jwks_uri).status_code == 503
    entra.clear_overrides()
    assert http.get(entra.discovery_url).json()["issuer"] == entra.issuer
    assert entra.discovery_fetches == 2


# --------------------------------------------------------------------------- forging


def test_mint_overrides_and_removes_claims_and_header_fields(
    entra: FakeEntra, http: httpx.Client
) -> None:
    token = entra.mint(
        "mallory@contoso.example",
        claims={"tid": "another-tenant", "aud": "api://other"},
        remove=["unique_name", "exp"],
        header={"jku": "https://evil.example/keys"},
        remove_header=["x5t", "typ"],
    )
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, entra.current_key.public_key, algorithms=["RS256"],
                        options={"verify_aud": False})  # fmt: skip
    assert header == {
        "alg": "RS256",
        "kid": entra.current_key.kid,
        "jku": "https://evil.example/keys",
    }
    assert (claims["tid"], claims["aud"]) == ("another-tenant", "api://other")
    assert "unique_name" not in claims
    assert "exp" not in claims
    assert claims["upn"] == "mallory@contoso.example"


def test_mint_from_a_claim_set_with_lifetime_and_algorithm(entra: FakeEntra) -> None:
    token = entra.mint({"sub": "x"}, claims={"n": 1}, algorithm="RS512")
    assert jwt.get_unverified_header(token)["alg"] == "RS512"
    assert jwt.decode(token, entra.current_key.public_key, algorithms=["RS512"]) == {
        "sub": "x",
        "n": 1,
    }
    short = jwt.decode(entra.mint(USER, lifetime=5), options={"verify_signature": False})
    assert short["exp"] - short["iat"] == 5


def test_mint_with_a_foreign_key_keeps_the_tenant_kid(entra: FakeEntra) -> None:
    """ "Right kid, wrong key": the signature verifies only with the attacker's key."""
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = entra.mint(USER, key=attacker)
    assert jwt.get_unverified_header(token)["kid"] == entra.current_key.kid
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, entra.current_key.public_key, algorithms=["RS256"],
                   options={"verify_aud": False})  # fmt: skip
    jwt.decode(token, attacker.public_key(), algorithms=["RS256"], options={"verify_aud": False})
    es = entra.mint(USER, key=ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    assert jwt.get_unverified_header(es)["alg"] == "ES256"


def test_alg_none_token_has_an_empty_signature(entra: FakeEntra) -> None:
    token = entra.mint_unsigned(USER, alg="None")
    head, body, signature = token.split(".")
    assert signature == ""
    assert json.loads(base64.urlsafe_b64decode(head + "==="))["alg"] == "None"
    assert json.loads(base64.urlsafe_b64decode(body + "==="))["unique_name"] == USER


def test_hs256_keyed_with_the_public_pem(entra: FakeEntra) -> None:
    """The key-confusion token: a valid HMAC under the PEM PyJWT itself refuses to use."""
    pem = entra.current_key.public_pem_spki()
    token = entra.mint_hmac(USER, pem)
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert signature == b64url(expected)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(token, pem, algorithms=["HS256"])


# --------------------------------------------------------------------------- with Keystead


def test_keystead_verifier_accepts_stand_in_tokens_via_jwks_cache(
    entra: FakeEntra, http: httpx.Client
) -> None:
    """End to end over HTTP: password grant → JwksCache (real client) → verify(); keys are
    fetched once for many tokens; after a rotation the new kid costs one refetch."""
    user = entra.add_user(USER, PASSWORD)
    now = [1000.0]
    cache = JwksCache(
        entra.discovery_url, outbound.via_client(http), ttl=3600, cooldown=300, clock=lambda: now[0]
    )
    policy = v.TokenPolicy(issuer=entra.issuer, audiences=frozenset({entra.audience}))
    token = http.post(entra.token_endpoint, data=ropc(entra)).json()["access_token"]
    for _ in range(20):
        verified = v.verify(token, policy, cache)
    assert (verified.username, verified.username_claim) == (USER, "unique_name")
    assert (verified.object_id, verified.tenant_id) == (user.oid, entra.tenant_id)
    assert (entra.discovery_fetches, entra.jwks_fetches) == (1, 1)

    entra.rotate_keys()
    rotated = entra.token_for(USER)
    now[0] += 301  # past the unknown-kid cooldown
    assert v.verify(rotated, policy, cache).username == USER
    assert (entra.jwks_fetches, cache.stats.unknown_kid_refreshes) == (2, 1)


def test_keystead_verifier_rejects_forged_stand_in_tokens(
    entra: FakeEntra, http: httpx.Client
) -> None:
    """The forge produces what the verifier must reject, each for its own reason."""
    entra.add_user(USER, PASSWORD)
    cache = JwksCache(entra.discovery_url, outbound.via_client(http))
    policy = v.TokenPolicy(issuer=entra.issuer, audiences=frozenset({entra.audience}))
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases: list[tuple[str, type[v.TokenRejected]]] = [
        (entra.mint(USER, key=attacker), v.BadSignature),
        (entra.mint_unsigned(USER), v.WrongAlgorithm),
        (entra.mint_hmac(USER, entra.current_key.public_pem_spki()), v.WrongAlgorithm),
        (entra.mint(USER, claims={"iss": entra.v2_issuer}), v.WrongIssuer),
        (entra.mint(USER, claims={"aud": entra.client_id}), v.WrongAudience),
        (entra.mint(USER, lifetime=-3600), v.Expired),
        (entra.mint(USER, header={"kid": "not-published"}), v.UnknownKey),
    ]
    for token, rejection in cases:
        with pytest.raises(rejection):
            v.verify(token, policy, cache)
    assert entra.jwks_fetches == 1  # the unknown kid fell within the refetch cooldown
