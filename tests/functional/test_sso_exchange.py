"""`POST /{customer_id}/api/v3/scim/sso` against the live server and a stand-in Entra
tenant on loopback: what a good exchange returns, and every attack of the token
checklist, each refused with 401 and its reason, plus the directory and CSR refusals."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from keystead.accounts import service as accounts
from keystead.runtime import Runtime
from keystead.storage.models import ApiKey, IdpSettings, ProvisioningEvent, SsoTokenGroup
from tests import factories as f
from tests.conftest import LiveServer
from tests.factories import ACTOR
from tests.support.fake_entra import FakeEntra, SigningKey
from tests.support.signin import (
    Provisioned,
    SignInAccount,
    client_key,
    csr_pem,
    provision,
    sign_in_entries,
    signin_account,
)

USER = "dana.reyes@contoso.example"


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        tenant.add_user(USER, "correct horse")
        yield tenant


@pytest.fixture
def signin(live_server: LiveServer, runtime: Runtime, entra: FakeEntra) -> SignInAccount:
    entra.clear_overrides()
    return signin_account(runtime, live_server.url, entra)


@pytest.fixture
def dana(signin: SignInAccount) -> Provisioned:
    return provision(signin.runtime, signin.account_id, USER)


def refused(response: httpx.Response, status: int, reason: str) -> None:
    assert hasattr(response, "status_code")
    body = response.json()
    assert response.status_code == status, body
    assert body["reason"] == reason, body
    assert body["message"]
    assert "signing_value" not in body


# --- a good exchange ----------------------------------------------------------------------


def test_exchange_returns_the_users_key_and_a_certificate_for_the_csr_key(
    signin: SignInAccount, dana: Provisioned
) -> None:
    before = datetime.now(UTC)
    response = signin.exchange(signin.entra.token_for(USER))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"public_value", "signing_value", "api_cert"}
    assert body["public_value"] == dana.access_key_id
    assert body["signing_value"] == dana.signing_secret
    assert response.headers["cache-control"] == "no-store"

    cert = x509.load_pem_x509_certificate(body["api_cert"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == dana.access_key_id
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == client_key().public_key().public_numbers()
    with signin.runtime.db.read() as s:
        settings = s.get(IdpSettings, signin.account_id)
        assert settings is not None
        assert settings.ca_cert_pem is not None
        ca = x509.load_pem_x509_certificate(settings.ca_cert_pem.encode())
    cert.verify_directly_issued_by(ca)
    # The default lifetime is one hour (the stand-in's tokens live one hour too).
    lifetime = cert.not_valid_after_utc - before
    assert timedelta(minutes=58) < lifetime <= timedelta(hours=1, seconds=5)

    [entry] = sign_in_entries(signin.runtime, signin.account_id)
    assert (entry.outcome, entry.status, entry.resource_name) == ("success", 200, USER)


def test_every_exchange_returns_the_same_key_id_and_secret(
    signin: SignInAccount, dana: Provisioned
) -> None:
    """The client keeps the first papi/sapi for its lifetime (renewal never reloads them)."""
    first = signin.exchange(signin.entra.token_for(USER)).json()
    other_csr = csr_pem(client_key(3072))
    second = signin.exchange(signin.entra.token_for(USER), other_csr).json()
    assert (first["public_value"], first["signing_value"]) == (
        second["public_value"],
        second["signing_value"],
    )
    assert first["api_cert"] != second["api_cert"]


def test_certificate_never_outlives_the_token(signin: SignInAccount, dana: Provisioned) -> None:
    token = signin.entra.mint(USER, lifetime=300)
    body = signin.exchange(token).json()
    cert = x509.load_pem_x509_certificate(body["api_cert"].encode())
    exp = json.loads(_segment(token, 1))["exp"]
    assert cert.not_valid_after_utc == datetime.fromtimestamp(exp, UTC)


def test_certificate_lifetime_follows_the_setting(
    live_server: LiveServer, runtime: Runtime, entra: FakeEntra
) -> None:
    account = signin_account(runtime, live_server.url, entra, cert_ttl=120)
    provision(runtime, account.account_id, USER)
    before = datetime.now(UTC)
    body = account.exchange(entra.token_for(USER)).json()
    cert = x509.load_pem_x509_certificate(body["api_cert"].encode())
    assert timedelta(seconds=110) < cert.not_valid_after_utc - before <= timedelta(seconds=125)


def test_user_is_found_case_insensitively(signin: SignInAccount) -> None:
    provision(signin.runtime, signin.account_id, USER.upper())
    assert signin.exchange(signin.entra.token_for(USER)).status_code == 200


def test_upn_is_the_fallback_when_unique_name_is_absent(
    signin: SignInAccount, dana: Provisioned
) -> None:
    token = signin.entra.mint(USER, remove=["unique_name"])
    assert signin.exchange(token).json()["public_value"] == dana.access_key_id


def test_the_configured_username_claim_comes_first(
    live_server: LiveServer, runtime: Runtime, entra: FakeEntra
) -> None:
    account = signin_account(runtime, live_server.url, entra, username_claim="upn")
    bob = provision(runtime, account.account_id, "bob@contoso.example")
    token = entra.mint(USER, claims={"upn": "bob@contoso.example"})
    assert account.exchange(token).json()["public_value"] == bob.access_key_id


def test_signing_keys_are_fetched_once_for_many_exchanges(
    signin: SignInAccount, dana: Provisioned
) -> None:
    signin.entra.reset_counters()
    for _ in range(5):
        assert signin.exchange(signin.entra.token_for(USER)).status_code == 200
    assert signin.entra.jwks_fetches == 1
    assert signin.entra.discovery_fetches == 1


def test_a_rotated_signing_key_is_picked_up_without_a_restart(
    signin: SignInAccount, dana: Provisioned
) -> None:
    entra = signin.entra
    assert signin.exchange(entra.token_for(USER)).status_code == 200
    time.sleep(1.1)  # the test server's refetch cooldown
    entra.rotate_keys()
    try:
        entra.reset_counters()
        assert signin.exchange(entra.token_for(USER)).status_code == 200
        assert entra.jwks_fetches == 1
    finally:
        entra.retire_old_keys()


# --- the token checklist: every attack refused with its reason -------------------------------


def test_no_token(signin: SignInAccount, dana: Provisioned) -> None:
    refused(signin.exchange(None), 401, "no_token")


def test_alg_none(signin: SignInAccount, dana: Provisioned) -> None:
    for spelling in ("none", "None", "NONE", ""):
        refused(signin.exchange(signin.entra.mint_unsigned(USER, alg=spelling)), 401, "algorithm")


def test_hs256_keyed_with_the_public_key(signin: SignInAccount, dana: Provisioned) -> None:
    key = signin.entra.current_key
    for secret in (key.public_pem_spki(), key.public_pem_pkcs1(), key.public_jwk_json()):
        refused(signin.exchange(signin.entra.mint_hmac(USER, secret)), 401, "algorithm")


def test_rs512_and_ps256_with_the_genuine_key(signin: SignInAccount, dana: Provisioned) -> None:
    for algorithm in ("RS512", "PS256"):
        token = signin.entra.mint(USER, algorithm=algorithm)
        refused(signin.exchange(token), 401, "algorithm")


def test_unknown_kid(signin: SignInAccount, dana: Provisioned) -> None:
    token = signin.entra.mint(USER, header={"kid": "not-a-published-key"})
    refused(signin.exchange(token), 401, "unknown_key")


def test_missing_kid(signin: SignInAccount, dana: Provisioned) -> None:
    refused(signin.exchange(signin.entra.mint(USER, remove_header=["kid"])), 401, "unknown_key")


def test_right_kid_signed_by_another_key(signin: SignInAccount, dana: Provisioned) -> None:
    forged = signin.entra.mint(USER, key=SigningKey.generate())
    refused(signin.exchange(forged), 401, "signature")


def test_another_tenants_key_and_issuer(signin: SignInAccount, dana: Provisioned) -> None:
    with FakeEntra() as other:
        other.add_user(USER, "x")
        refused(signin.exchange(other.token_for(USER)), 401, "unknown_key")


def test_another_tenants_token_signed_with_a_shared_key(
    signin: SignInAccount, dana: Provisioned
) -> None:
    """Entra's keys are common to all tenants: a genuine signature with another tenant's
    issuer and tid must still fail on issuer (or tenant)."""
    other_tenant = str(uuid.uuid4())
    token = signin.entra.mint(
        USER, claims={"iss": f"https://sts.windows.net/{other_tenant}/", "tid": other_tenant}
    )
    refused(signin.exchange(token), 401, "issuer")
    token = signin.entra.mint(USER, claims={"tid": other_tenant})
    refused(signin.exchange(token), 401, "tenant")


def test_v2_issuer(signin: SignInAccount, dana: Provisioned) -> None:
    token = signin.entra.mint(USER, claims={"iss": signin.entra.v2_issuer, "ver": "2.0"})
    response = signin.exchange(token)
    refused(response, 401, "issuer")
    assert "accessTokenAcceptedVersion" in response.json()["message"]


def test_expired(signin: SignInAccount, dana: Provisioned) -> None:
    now = int(time.time())
    token = signin.entra.mint(USER, claims={"iat": now - 7200, "nbf": now - 7200, "exp": now - 120})
    refused(signin.exchange(token), 401, "expired")


def test_within_leeway_is_accepted(signin: SignInAccount, dana: Provisioned) -> None:
    now = int(time.time())
    token = signin.entra.mint(USER, claims={"iat": now - 3600, "nbf": now - 3600, "exp": now - 30})
    assert signin.exchange(token).status_code == 200


def test_future_nbf(signin: SignInAccount, dana: Provisioned) -> None:
    future = int(time.time()) + 600
    refused(signin.exchange(signin.entra.mint(USER, claims={"nbf": future})), 401, "not_yet_valid")


def test_wrong_audience(signin: SignInAccount, dana: Provisioned) -> None:
    response = signin.exchange(signin.entra.mint(USER, claims={"aud": "api://someone-else"}))
    refused(response, 401, "audience")
    assert signin.entra.audience in response.json()["message"]
    graph = signin.entra.mint(USER, claims={"aud": "https://graph.microsoft.com"})
    refused(signin.exchange(graph), 401, "audience")
    listed = signin.entra.mint(USER, claims={"aud": [signin.entra.audience]})
    refused(signin.exchange(listed), 401, "audience")


def test_missing_exp(signin: SignInAccount, dana: Provisioned) -> None:
    refused(signin.exchange(signin.entra.mint(USER, remove=["exp"])), 401, "missing_claim")


def test_jku_injection(signin: SignInAccount, dana: Provisioned) -> None:
    with FakeEntra() as attacker:
        token = signin.entra.mint(
            USER,
            key=attacker.current_key,
            header={"jku": attacker.jwks_uri, "kid": attacker.current_key.kid},
        )
        attacker.reset_counters()
        refused(signin.exchange(token), 401, "unknown_key")
        assert attacker.jwks_fetches == 0


def test_x5u_injection(signin: SignInAccount, dana: Provisioned) -> None:
    with FakeEntra() as attacker:
        token = signin.entra.mint(
            USER,
            key=attacker.current_key,
            header={"x5u": f"{attacker.base_url}/cert.pem"},
        )
        refused(signin.exchange(token), 401, "signature")


def test_embedded_jwk(signin: SignInAccount, dana: Provisioned) -> None:
    attacker = SigningKey.generate()
    token = signin.entra.mint(
        USER, key=attacker, header={"jwk": attacker.jwk(), "kid": attacker.kid}
    )
    refused(signin.exchange(token), 401, "unknown_key")


def test_embedded_x5c(signin: SignInAccount, dana: Provisioned) -> None:
    attacker = SigningKey.generate()
    token = signin.entra.mint(USER, key=attacker, header={"x5c": attacker.jwk()["x5c"]})
    refused(signin.exchange(token), 401, "signature")


def test_stripped_signature(signin: SignInAccount, dana: Provisioned) -> None:
    head, body, _ = signin.entra.token_for(USER).split(".")
    refused(signin.exchange(f"{head}.{body}."), 401, "signature")


def test_corrupted_signature(signin: SignInAccount, dana: Provisioned) -> None:
    head, body, signature = signin.entra.token_for(USER).split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    refused(signin.exchange(f"{head}.{body}.{flipped}"), 401, "signature")


def test_tampered_payload(signin: SignInAccount, dana: Provisioned) -> None:
    other = provision(signin.runtime, signin.account_id, "mallory@contoso.example")
    head, _, signature = signin.entra.token_for(USER).split(".")
    claims = signin.entra.claims_for(USER) | {"unique_name": other.user_name}
    body = _b64url(json.dumps(claims).encode())
    refused(signin.exchange(f"{head}.{body}.{signature}"), 401, "signature")


def test_oversized_token(signin: SignInAccount, dana: Provisioned) -> None:
    token = signin.entra.mint(USER, claims={"padding": "x" * 20_000})
    refused(signin.exchange(token), 401, "malformed")


def test_not_a_jwt(signin: SignInAccount, dana: Provisioned) -> None:
    for junk in ("abc", "a.b", "a.b.c.d.e", "%%%.%%%.%%%"):
        refused(signin.exchange(junk), 401, "malformed")


def test_app_only_token(signin: SignInAccount, dana: Provisioned) -> None:
    claims = signin.entra.claims_for(USER)
    app_only = signin.entra.mint(
        USER, claims={"sub": claims["oid"], "idtyp": "app"}, remove=["scp"]
    )
    refused(signin.exchange(app_only), 401, "token_kind")


def test_token_for_account_a_at_account_b(
    live_server: LiveServer, runtime: Runtime, signin: SignInAccount, dana: Provisioned
) -> None:
    """Account B trusts another tenant; A's genuine token must not work there, even for a
    user of the same name."""
    with FakeEntra() as tenant_b:
        account_b = signin_account(runtime, live_server.url, tenant_b, name="Globex")
        provision(runtime, account_b.account_id, USER)
        token_a = signin.entra.token_for(USER)
        assert signin.exchange(token_a).status_code == 200
        refused(account_b.exchange(token_a), 401, "unknown_key")


def test_tokens_are_never_logged(
    live_server: LiveServer, signin: SignInAccount, dana: Provisioned
) -> None:
    tokens = [
        signin.entra.mint(USER, claims={"aud": "api://someone-else"}),
        signin.entra.mint(USER, key=SigningKey.generate()),
        signin.entra.token_for(USER),
    ]
    for token in tokens:
        signin.exchange(token)
    log = live_server.log()
    assert "sso_refused" in log
    for token in tokens:
        assert token.split(".")[2] not in log
        assert token.split(".")[1] not in log
    with signin.runtime.db.read() as s:
        rows = s.scalars(select(ProvisioningEvent.detail)).all()
    assert not any(token.split(".")[2] in (row or "") for row in rows for token in tokens)


def test_refusals_reach_the_provisioning_log_with_their_reason(
    signin: SignInAccount, dana: Provisioned
) -> None:
    signin.exchange(signin.entra.mint(USER, claims={"aud": "api://someone-else"}))
    [entry] = sign_in_entries(signin.runtime, signin.account_id)
    assert (entry.outcome, entry.status, entry.scim_type) == ("failed", 401, "audience")
    assert "api://someone-else" in (entry.detail or "")


# --- the directory binding ----------------------------------------------------------------


def test_unprovisioned_user(signin: SignInAccount) -> None:
    response = signin.exchange(signin.entra.token_for(USER))
    refused(response, 403, "unknown_user")
    assert "provision" in response.json()["message"]


def test_inactive_user(signin: SignInAccount) -> None:
    provision(signin.runtime, signin.account_id, USER, active=False)
    refused(signin.exchange(signin.entra.token_for(USER)), 403, "user_inactive")


def test_disabled_key(signin: SignInAccount, dana: Provisioned) -> None:
    with signin.runtime.db.write() as s:
        key = s.scalar(select(ApiKey).where(ApiKey.access_key_id == dana.access_key_id))
        assert key is not None
        key.enabled = False
    refused(signin.exchange(signin.entra.token_for(USER)), 403, "key_disabled")


def test_object_id_must_match_when_provisioned(signin: SignInAccount) -> None:
    """Provisioned with Entra's objectId as externalId: a reused user name (another oid)
    is refused; the right oid passes."""
    oid = signin.entra.user(USER).oid
    provision(signin.runtime, signin.account_id, USER, external_id=oid)
    assert signin.exchange(signin.entra.token_for(USER)).status_code == 200
    reused = signin.entra.mint(USER, claims={"oid": str(uuid.uuid4())})
    refused(signin.exchange(reused), 403, "object_id_mismatch")


# --- the account and the request ------------------------------------------------------------


def test_unknown_account(live_server: LiveServer, signin: SignInAccount) -> None:
    url = f"{live_server.url}/{uuid.uuid4()}/api/v3/scim/sso"
    refused(signin.exchange(signin.entra.token_for(USER), url=url), 404, "unknown_account")
    url = f"{live_server.url}/not-a-uuid/api/v3/scim/sso"
    refused(signin.exchange(signin.entra.token_for(USER), url=url), 404, "unknown_account")


def test_integration_disabled(signin: SignInAccount, dana: Provisioned) -> None:
    from keystead.idp import service as idp

    with signin.runtime.db.write() as s:
        account = accounts.get_account(s, signin.account_id)
        idp.set_enabled(s, account, False, actor=ACTOR, master=signin.runtime.master)
    refused(signin.exchange(signin.entra.token_for(USER)), 403, "integration_disabled")


def test_sign_in_not_configured(
    live_server: LiveServer, runtime: Runtime, entra: FakeEntra
) -> None:
    from keystead.idp import service as idp

    with runtime.db.write() as s:
        account = accounts.get_account(s, f.account(s))
        idp.set_enabled(s, account, True, actor=ACTOR, master=runtime.master)
        url = f"{live_server.url}/{account.id}/api/v3/scim/sso"
    account_view = SignInAccount(account.id, url, entra, runtime)
    refused(account_view.exchange(entra.token_for(USER)), 403, "not_configured")


def test_body_that_is_not_json(signin: SignInAccount, dana: Provisioned) -> None:
    import httpx

    response = httpx.post(
        signin.sso_url,
        content=b"csr=abc",
        headers={"Authorization": f"Bearer {signin.entra.token_for(USER)}"},
    )
    refused(response, 400, "bad_request")


@pytest.mark.parametrize(
    "csr",
    [
        "",
        "not a csr",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ],
)
def test_malformed_csr(signin: SignInAccount, dana: Provisioned, csr: str) -> None:
    refused(signin.exchange(signin.entra.token_for(USER), csr), 400, "bad_csr")


def test_csr_with_a_small_rsa_key(signin: SignInAccount, dana: Provisioned) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    response = signin.exchange(signin.entra.token_for(USER), csr_pem(small))
    refused(response, 400, "bad_csr")
    assert "1024 bits" in response.json()["message"]


def test_csr_with_an_ec_key(signin: SignInAccount, dana: Provisioned) -> None:
    from cryptography.hazmat.primitives import hashes

    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    pem = request.public_bytes(serialization.Encoding.PEM).decode()
    refused(signin.exchange(signin.entra.token_for(USER), pem), 400, "bad_csr")


def test_csr_whose_signature_does_not_verify(signin: SignInAccount, dana: Provisioned) -> None:
    genuine = x509.load_pem_x509_csr(csr_pem().encode())
    der = bytearray(genuine.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature
    pem = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    refused(signin.exchange(signin.entra.token_for(USER), pem), 400, "bad_csr")


# --- claims no database can hold, an exp past year 9999 (were 500s) ------------------------


@pytest.mark.parametrize(
    "name",
    ["dana\x00reyes@contoso.example", "dana\ud800@contoso.example"],
    ids=["nul", "surrogate"],
)
def test_user_name_claim_no_database_can_hold_is_401(
    signin: SignInAccount, dana: Provisioned, name: str
) -> None:
    """A signed token whose user name holds a NUL (PostgreSQL refuses it) or a lone surrogate
    (UTF-8 cannot encode it) is refused as a claim, not looked up (was a 500)."""
    response = signin.exchange(signin.entra.mint(USER, claims={"unique_name": name}))
    refused(response, 401, "missing_claim")
    assert "unique_name" in response.json()["message"]
    assert sign_in_entries(signin.runtime, signin.account_id)[-1].status == 401


def test_token_expiring_after_year_9999_gets_a_certificate_of_the_configured_lifetime(
    signin: SignInAccount, dana: Provisioned
) -> None:
    """exp beyond datetime's range is later than any certificate's end (was a 500)."""
    before = datetime.now(UTC)
    response = signin.exchange(signin.entra.mint(USER, claims={"exp": 253_402_300_800}))
    assert response.status_code == 200, response.text
    cert = x509.load_pem_x509_certificate(response.json()["api_cert"].encode())
    assert cert.not_valid_after_utc - before <= timedelta(hours=1, seconds=5)


def test_token_groups_no_database_can_hold_are_skipped(
    live_server: LiveServer, runtime: Runtime, entra: FakeEntra
) -> None:
    """Under "directory_and_token", group entries with a NUL or a lone surrogate are skipped
    like other entries that are no group reference (was a 500)."""
    account = signin_account(runtime, live_server.url, entra, group_policy="directory_and_token")
    dana = provision(runtime, account.account_id, USER)
    token = entra.mint(USER, claims={"groups": ["g-ok", "g\x00", "g\ud800"]})
    assert account.exchange(token).status_code == 200
    with runtime.db.read() as s:
        key = s.scalar(select(ApiKey).where(ApiKey.access_key_id == dana.access_key_id))
        assert key is not None
        groups = s.scalars(
            select(SsoTokenGroup.group_ref).where(SsoTokenGroup.api_key_id == key.id)
        )
        assert set(groups) == {"g-ok"}


# --- the body: UTF-8 JSON text; the refusals of every request, in the exchange's shape ------


def post_raw(signin: SignInAccount, body: bytes, method: str = "POST") -> httpx.Response:
    return httpx.request(
        method,
        signin.sso_url,
        content=body,
        headers={"Authorization": f"Bearer {signin.entra.token_for(USER)}"},
        timeout=30,
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"csr": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"csr": ' + json.dumps(csr_pem()).encode()[:-1] + b'\\ud800"}',
        b'{"csr": "\xed\xa0\x80"}',
        b'{"csr": ' + b"9" * 5000 + b"}",
    ],
    ids=["nested too deeply", "lone surrogate escape", "encoded surrogate", "long number"],
)
def test_body_that_is_no_utf8_json_text_is_400(
    signin: SignInAccount, dana: Provisioned, body: bytes
) -> None:
    """Bodies Python's parser overflows on or reads into text UTF-8 cannot hold (were 500s),
    or a number with more digits than Python converts (its advice was no client's)."""
    response = post_raw(signin, body)
    refused(response, 400, "bad_request")
    assert "set_int_max_str_digits" not in response.text


def test_body_with_a_nul_is_a_refusal_with_its_reason(
    signin: SignInAccount, dana: Provisioned
) -> None:
    """The NUL refusal of every request, in the exchange's own shape and log (was a bare
    {message} from the middleware, in no provisioning log)."""
    response = post_raw(signin, b'{"csr": "\\u0000"}')
    refused(response, 400, "bad_request")
    assert "NUL" in response.json()["message"]
    assert sign_in_entries(signin.runtime, signin.account_id)[-1].scim_type == "bad_request"


def test_body_over_the_limit_is_413_with_its_reason(
    signin: SignInAccount, dana: Provisioned
) -> None:
    """Over the body limit: 413 in the exchange's own shape (was the middleware's bare
    {message})."""
    response = post_raw(signin, b'{"csr": "' + b"x" * (1024 * 1024) + b'"}')
    refused(response, 413, "bad_request")
    assert "limit" in response.json()["message"]


def test_another_method_is_405_with_its_reason(signin: SignInAccount) -> None:
    """Not a POST: 405 in the exchange's own shape, with Allow (was FastAPI's bare
    {message})."""
    response = post_raw(signin, b"", method="GET")
    refused(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


# --- helpers -------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(token: str, index: int) -> bytes:
    import base64

    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
