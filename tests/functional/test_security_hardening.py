"""Attacks found on a live server, each refused now: on the live server, both engines."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from keystead.runtime import Runtime
from tests.conftest import LiveServer
from tests.support.fake_entra import FakeEntra
from tests.support.scim import Scim, entra_user
from tests.support.signin import SignInAccount, csr_pem, provision, signin_account

USER = "dana.reyes@contoso.example"
OTHER = "ceo@contoso.example"


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        tenant.add_user(USER, "correct horse")
        tenant.add_user(OTHER, "battery staple")
        yield tenant


@pytest.fixture
def signin(live_server: LiveServer, runtime: Runtime, entra: FakeEntra) -> SignInAccount:
    entra.clear_overrides()
    return signin_account(runtime, live_server.url, entra)


def odd_exponent_key(bits: int) -> rsa.RSAPrivateKey:
    base = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    p, q = base.p, base.q
    phi = (p - 1) * (q - 1)
    e = (1 << (bits - 1)) | 1
    while math.gcd(e, phi) != 1:
        e += 2
    d = pow(e, -1, phi)
    return rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    ).private_key()


@pytest.mark.parametrize(
    ("make_key", "words"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=4160), "4160 bits"),
        (lambda: rsa.generate_private_key(public_exponent=3, key_size=2048), "exponent is 3"),
        (lambda: odd_exponent_key(2000), "a 2000-bit number"),
    ],
    ids=["oversized-modulus", "exponent-3", "huge-exponent"],
)
def test_a_csr_key_that_would_make_every_later_wrap_dearer_is_refused(
    signin: SignInAccount, entra: FakeEntra, make_key: object, words: str
) -> None:
    """A CSR for a 16,384-bit key or a 3,070-bit exponent made each of that user's later
    data-plane calls cost 6-25 times more on the shared loop: 2048-4096 bits and e=65537."""
    provision(signin.runtime, signin.account_id, USER)
    key = make_key()  # type: ignore[operator]
    response = signin.exchange(entra.token_for(USER), csr_pem(key))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["reason"] == "bad_csr"
    assert words in body["message"]
    assert "signing_value" not in body


@pytest.mark.parametrize("claim", ["", "   ", None, ["x"], 42])
def test_a_present_but_unusable_username_claim_does_not_fall_back_to_another_user(
    signin: SignInAccount, entra: FakeEntra, claim: object
) -> None:
    """A token whose unique_name is empty (or not text) but whose upn names another,
    provisioned user must not sign in as that user: 401 missing_claim."""
    provision(signin.runtime, signin.account_id, OTHER)
    token = entra.mint(USER, claims={"unique_name": claim, "upn": OTHER})
    response = signin.exchange(token)
    assert response.status_code == 401, response.text
    assert response.json()["reason"] == "missing_claim"


def test_scim_locations_come_from_the_public_url_not_the_host_header(
    scim: Scim, live_server: LiveServer
) -> None:
    """A caller claiming another Host must not make Keystead tell Entra (or anyone) that
    its resources live there."""
    response = scim.client.post(
        "/Users", json=entra_user("dana@fabrikam.example"), headers={"Host": "evil.example"}
    )
    assert response.status_code == 201, response.text
    base = f"{live_server.url}/{scim.account_id}/api/v3/scim"
    assert response.headers["location"].startswith(base)
    assert response.json()["meta"]["location"].startswith(base)
    listed = httpx.get(
        f"{base}/Users",
        headers={"Authorization": f"Bearer {scim.token}", "Host": "evil.example"},
    )
    assert all("evil.example" not in r["meta"]["location"] for r in listed.json()["Resources"])


def test_database_errors_never_carry_bound_values(runtime: Runtime) -> None:
    """A failing statement's message (and so any log line made of it) holds no attribute
    value: the engines hide bound parameters."""
    assert runtime.db.engine.hide_parameters is True
