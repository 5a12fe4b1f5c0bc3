"""The data plane in IDP mode (client protocol §6 and §7), by hand-signed requests against the
live server: an auto-provisioned key that signed in through a real SSO exchange (stand-in
Entra tenant) presents its certificate as ``payload_cert`` and gets every data key wrapped
to its CSR's key, without any server-held private key; without the certificate its key
material requests are refused; every wrong certificate is refused with a reason; a manual
API key goes on working as before."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from keystead.accounts import service as accounts
from keystead.catalog import datasets as catalog
from keystead.idp import service as idp
from keystead.idp.config import SignInChanges
from keystead.runtime import Runtime
from keystead.sso import certificates
from keystead.storage.models import DirectoryUser, IdpSettings
from tests import factories as f
from tests.conftest import LiveServer
from tests.factories import ACTOR
from tests.functional.test_dataplane_signatures import Signer
from tests.support.fake_entra import FakeEntra
from tests.support.signin import (
    Provisioned,
    SignInAccount,
    client_key,
    csr_pem,
    provision,
    signin_account,
)

DANA = "dana.reyes@contoso.example"
ELI = "eli.moss@contoso.example"
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
NEEDS_CERT = "works only with a certificate from the SSO exchange"


# --- helpers ------------------------------------------------------------------------------


def b64(pem: str | bytes) -> str:
    """payload_cert: standard padded base64 of the exact PEM text (§7.6)."""
    return base64.b64encode(pem.encode() if isinstance(pem, str) else pem).decode()


def unwrap(wrapped: str, key: rsa.RSAPrivateKey) -> bytes:
    return key.decrypt(base64.b64decode(wrapped, validate=True), OAEP)


def ffs(signer: Signer, name: str = "SSN") -> str:
    return f"/api/v0/ffs?ffs_name={name}&papi={signer.key_id}"


def fpe_key(
    signer: Signer, cert: str | None = None, *, key_number: int | None = None, raw: str = ""
) -> str:
    """§6.1: ffs_name, papi, key_number, then the form-encoded payload_cert."""
    target = f"/api/v0/fpe/key?ffs_name=SSN&papi={signer.key_id}"
    if key_number is not None:
        target += f"&key_number={key_number}"
    if cert is not None:
        target += f"&payload_cert={quote_plus(b64(cert))}"
    return target + raw


def def_keys(signer: Signer, cert: str | None = None, *, raw: str = "") -> str:
    target = f"/api/v0/fpe/def_keys?ffs_name=SSN&papi={signer.key_id}"
    if cert is not None:
        target += f"&payload_cert={quote_plus(b64(cert))}"
    return target + raw


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def get(signer: Signer, target: str) -> httpx.Response:
    return signer.request("GET", target)


def post(signer: Signer, path: str, **fields: Any) -> httpx.Response:
    return signer.request("POST", path, body(**fields))


def refused(response: httpx.Response, status: int, *phrases: str) -> str:
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"message"}, answer
    for phrase in phrases:
        assert phrase in answer["message"], (phrase, answer["message"])
    assert "wrapped_data_key" not in response.text
    return str(answer["message"])


@dataclass(frozen=True)
class SignedIn:
    """A directory user after the SSO exchange: the key it signs with and its certificate."""

    user: Provisioned
    signer: Signer
    cert: str  # api_cert, PEM
    key: rsa.RSAPrivateKey  # the CSR's private key


@dataclass
class Plane:
    server: LiveServer
    runtime: Runtime
    entra: FakeEntra
    account: SignInAccount
    dana: SignedIn
    eli: SignedIn
    manual: Signer
    manual_srsa: str

    def sign_in(self, user: Provisioned, key: rsa.RSAPrivateKey, token: str) -> SignedIn:
        return sign_in(self.server, self.account, user, key, token)


def sign_in(
    server: LiveServer,
    account: SignInAccount,
    user: Provisioned,
    key: rsa.RSAPrivateKey,
    token: str,
) -> SignedIn:
    response = account.exchange(token, csr_pem(key))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["public_value"] == user.access_key_id
    return SignedIn(
        user,
        Signer(server.url, answer["public_value"], answer["signing_value"]),
        answer["api_cert"],
        key,
    )


def join_group(runtime: Runtime, account_id: uuid.UUID, group: str, *users: Provisioned) -> None:
    """A directory group named like a dataset group, with these users as members."""
    with runtime.db.write() as s:
        directory_group = f.directory_group(s, account_id, group)
        for user in users:
            found = s.get(DirectoryUser, user.user_id)
            assert found is not None
            f.member(s, directory_group, found)


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        tenant.add_user(DANA, "pw-dana")
        tenant.add_user(ELI, "pw-eli")
        yield tenant


@pytest.fixture
def plane(live_server: LiveServer, runtime: Runtime, entra: FakeEntra) -> Plane:
    entra.clear_overrides()
    account = signin_account(runtime, live_server.url, entra)
    acct = account.account_id
    with runtime.db.write() as s:
        ssn = f.dataset(s, acct, "SSN", runtime.master, template="ssn")
        catalog.rotate_key(s, ssn, master=runtime.master, actor=ACTOR)  # keys 0 and 1
        f.dataset(s, acct, "Notes", runtime.master, template="text")
        f.dataset_group(s, acct, "Engineering", "SSN", "Notes")
        manual = f.manual_key(s, acct, runtime.master, "batch", dataset_groups=("Engineering",))
    dana = provision(runtime, acct, DANA)
    eli = provision(runtime, acct, ELI)
    # The directory group's displayName matches the dataset group (trimmed, any case).
    join_group(runtime, acct, " engineering ", dana, eli)
    return Plane(
        server=live_server,
        runtime=runtime,
        entra=entra,
        account=account,
        dana=sign_in(live_server, account, dana, client_key(), entra.token_for(DANA)),
        eli=sign_in(live_server, account, eli, client_key(3072), entra.token_for(ELI)),
        manual=Signer(
            live_server.url, manual.secrets.access_key_id, manual.secrets.secret_signing_key
        ),
        manual_srsa=manual.secrets.secret_crypto_access_key,
    )


# --- the certificate's key gets the data keys --------------------------------------------------


def test_def_keys_with_the_certificate_wraps_every_key_to_the_csr_key(plane: Plane) -> None:
    response = get(plane.dana.signer, def_keys(plane.dana.signer, plane.dana.cert))
    assert response.status_code == 200, response.text
    entry = response.json()["SSN"]
    assert "encrypted_private_key" not in entry
    assert entry["current_key_number"] == 1
    assert entry["ffs"]["name"] == "SSN"
    keys = [unwrap(wrapped, plane.dana.key) for wrapped in entry["keys"]]
    assert len(keys) == 2
    assert all(len(k) in (16, 24, 32) for k in keys)
    assert keys[0] != keys[1]

    # fpe/key gives the same keys, current and by number.
    for number, target in (
        (1, fpe_key(plane.dana.signer, plane.dana.cert)),
        (0, fpe_key(plane.dana.signer, plane.dana.cert, key_number=0)),
        (1, fpe_key(plane.dana.signer, plane.dana.cert, key_number=1)),
    ):
        one = get(plane.dana.signer, target)
        assert one.status_code == 200, one.text
        answer = one.json()
        assert "encrypted_private_key" not in answer
        assert int(answer["key_number"]) == number
        assert unwrap(answer["wrapped_data_key"], plane.dana.key) == keys[number]

    # Another user's certificate carries another key: the same data keys, wrapped to it.
    other = get(plane.eli.signer, def_keys(plane.eli.signer, plane.eli.cert)).json()["SSN"]
    assert [unwrap(w, plane.eli.key) for w in other["keys"]] == keys
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's message varies
        unwrap(other["keys"][0], plane.dana.key)


def test_encryption_and_decryption_keys_with_the_certificate(plane: Plane) -> None:
    dana = plane.dana
    created = post(dana.signer, "/api/v0/encryption/key", uses=3, payload_cert=b64(dana.cert))
    assert created.status_code == 201, created.text
    issued = created.json()
    assert "encrypted_private_key" not in issued
    assert issued["max_uses"] == 3
    data_key = unwrap(issued["wrapped_data_key"], dana.key)
    assert len(data_key) == 32

    recovered = post(
        dana.signer,
        "/api/v0/decryption/key",
        encrypted_data_key=issued["encrypted_data_key"],
        payload_cert=b64(dana.cert),
    )
    assert recovered.status_code == 200, recovered.text
    answer = recovered.json()
    assert "encrypted_private_key" not in answer
    assert unwrap(answer["wrapped_data_key"], dana.key) == data_key
    assert answer["key_fingerprint"] == issued["key_fingerprint"]

    # Eli reaches the same dataset: he recovers the same data key, wrapped to his own key.
    theirs = post(
        plane.eli.signer,
        "/api/v0/decryption/key",
        encrypted_data_key=issued["encrypted_data_key"],
        payload_cert=b64(plane.eli.cert),
    )
    assert theirs.status_code == 200, theirs.text
    assert unwrap(theirs.json()["wrapped_data_key"], plane.eli.key) == data_key


def test_a_renewed_certificate_with_another_key_gets_keys_wrapped_to_that_key(
    plane: Plane,
) -> None:
    """The client keeps papi/sapi across renewals; each certificate names its own key."""
    renewed = plane.sign_in(plane.dana.user, client_key(4096), plane.entra.token_for(DANA))
    assert renewed.signer.key_id == plane.dana.signer.key_id
    first = get(plane.dana.signer, fpe_key(plane.dana.signer, plane.dana.cert)).json()
    second = get(plane.dana.signer, fpe_key(plane.dana.signer, renewed.cert)).json()
    assert unwrap(second["wrapped_data_key"], renewed.key) == unwrap(
        first["wrapped_data_key"], plane.dana.key
    )


# --- the auto key without its certificate -------------------------------------------------------


def test_the_auto_key_without_a_certificate_gets_no_key_material(plane: Plane) -> None:
    dana = plane.dana.signer
    issued = post(dana, "/api/v0/encryption/key", uses=1, payload_cert=b64(plane.dana.cert)).json()
    attempts = [
        get(dana, fpe_key(dana)),
        get(dana, fpe_key(dana, key_number=0)),
        get(dana, def_keys(dana)),
        get(dana, def_keys(dana, raw="&payload_cert=")),  # empty means none
        post(dana, "/api/v0/encryption/key", uses=1),
        post(dana, "/api/v0/encryption/key", uses=1, payload_cert=None),
        post(dana, "/api/v0/decryption/key", encrypted_data_key=issued["encrypted_data_key"]),
    ]
    for response in attempts:
        message = refused(response, 401, NEEDS_CERT)
        assert "payload_cert" in message


def test_ffs_needs_no_certificate(plane: Plane) -> None:
    """§6.2: the client never sends payload_cert to /ffs; key and access rule suffice."""
    response = get(plane.dana.signer, ffs(plane.dana.signer))
    assert response.status_code == 200, response.text
    definition = response.json()
    assert definition["name"] == "SSN"
    assert definition["encryption_algorithm"] == "FF1"
    # The access rule still applies: a dataset outside the user's groups is refused.
    with plane.runtime.db.write() as s:
        f.dataset(s, plane.account.account_id, "Secret", plane.runtime.master, template="ssn")
    refused(get(plane.dana.signer, ffs(plane.dana.signer, "Secret")), 403, "no access")


# --- wrong certificates ---------------------------------------------------------------------


def test_another_keys_certificate_is_refused(plane: Plane) -> None:
    dana, eli = plane.dana, plane.eli
    expected = f"issued to API key {eli.signer.key_id}, not to {dana.signer.key_id}"
    for response in (
        get(dana.signer, fpe_key(dana.signer, eli.cert)),
        get(dana.signer, def_keys(dana.signer, eli.cert)),
        post(dana.signer, "/api/v0/encryption/key", uses=1, payload_cert=b64(eli.cert)),
    ):
        refused(response, 401, expected)
    # A manual key cannot borrow a user's certificate either.
    refused(
        get(plane.manual, fpe_key(plane.manual, dana.cert)),
        401,
        f"not to {plane.manual.key_id}",
    )


def test_an_expired_certificate_is_refused(plane: Plane) -> None:
    with plane.runtime.db.write() as s:
        account = accounts.get_account(s, plane.account.account_id)
        idp.configure(s, account, SignInChanges(cert_ttl_seconds=60), actor=ACTOR)
    short = plane.sign_in(plane.dana.user, client_key(), plane.entra.mint(DANA, lifetime=2))
    not_after = x509.load_pem_x509_certificate(short.cert.encode()).not_valid_after_utc
    assert not_after <= datetime.now(UTC) + timedelta(seconds=3)
    # Wait until just past notAfter (about two seconds), then every use is refused.
    time.sleep(max(0.0, (not_after - datetime.now(UTC)).total_seconds()) + 0.5)
    for response in (
        get(short.signer, fpe_key(short.signer, short.cert)),
        get(short.signer, def_keys(short.signer, short.cert)),
        post(short.signer, "/api/v0/encryption/key", uses=1, payload_cert=b64(short.cert)),
    ):
        refused(response, 401, "expired", "sign in again")
    # The long-lived certificate of the same key is still good.
    assert get(plane.dana.signer, fpe_key(plane.dana.signer, plane.dana.cert)).status_code == 200


@dataclass(frozen=True)
class OtherAccount:
    account: SignInAccount
    dana: SignedIn  # the same person, provisioned and signed in there too
    authority: certificates.Authority


def other_account(plane: Plane) -> OtherAccount:
    """A second account trusting the same tenant, with its own CA and its own SSN."""
    runtime, server = plane.runtime, plane.server
    other = signin_account(runtime, server.url, plane.entra, name="Other Co")
    dana_there = provision(runtime, other.account_id, DANA)
    with runtime.db.write() as s:
        f.dataset(s, other.account_id, "SSN", runtime.master, template="ssn")
        f.dataset_group(s, other.account_id, "Engineering", "SSN")
    join_group(runtime, other.account_id, "Engineering", dana_there)
    signed_in = sign_in(server, other, dana_there, client_key(), plane.entra.token_for(DANA))
    assert signed_in.signer.key_id != plane.dana.signer.key_id
    with runtime.db.read() as s:
        settings = s.get(IdpSettings, other.account_id)
        assert settings is not None
        authority = idp.authority_of(settings, runtime.master)
    return OtherAccount(other, signed_in, authority)


def naming(authority: certificates.Authority, signed_in: SignedIn) -> str:
    """A certificate from ``authority`` for ``signed_in``'s key id and CSR key."""
    return certificates.issue(
        authority,
        signed_in.key.public_key(),
        access_key_id=signed_in.signer.key_id,
        not_after=datetime.now(UTC) + timedelta(minutes=10),
    )


def test_a_certificate_from_another_accounts_ca_is_refused(plane: Plane) -> None:
    other = other_account(plane)
    dana = plane.dana
    refused(
        get(dana.signer, fpe_key(dana.signer, other.dana.cert)),
        401,
        "not issued by this account",
    )
    # Not even when the other account's CA names this account's key in the subject.
    forged = naming(other.authority, dana)
    for response in (
        get(dana.signer, fpe_key(dana.signer, forged)),
        post(
            dana.signer,
            "/api/v0/decryption/key",
            encrypted_data_key="AA==",
            payload_cert=b64(forged),
        ),
    ):
        refused(response, 401, "not issued by this account")
    # The other account's own certificate works there.
    assert get(other.dana.signer, fpe_key(other.dana.signer, other.dana.cert)).status_code == 200


def test_a_certificate_is_checked_against_the_callers_ca_even_after_another_account_saw_it(
    plane: Plane,
) -> None:
    """Whether the caller's account CA issued a certificate must not depend on which
    account presented that certificate first."""
    other = other_account(plane)
    dana = plane.dana
    # A certificate from the other account's CA that names this account's key: presented
    # in the other account first (refused there: not that caller's key), then here.
    forged = naming(other.authority, dana)
    refused(get(other.dana.signer, fpe_key(other.dana.signer, forged)), 401, "issued to API key")
    response = get(dana.signer, fpe_key(dana.signer, forged))
    assert "wrapped_data_key" not in response.text, (
        f"account B's certificate unlocked account A's key: {response.status_code} {response.text}"
    )
    refused(response, 401, "not issued by this account")
    # The other account's certificate, used there first, then presented here.
    assert get(other.dana.signer, fpe_key(other.dana.signer, other.dana.cert)).status_code == 200
    refused(
        get(dana.signer, fpe_key(dana.signer, other.dana.cert)),
        401,
        "not issued by this account",
    )


def _self_signed(subject: x509.Name, issuer: x509.Name, signer: Any, public: Any) -> str:
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_self_made_certificates_are_refused(plane: Plane) -> None:
    dana = plane.dana
    real = x509.load_pem_x509_certificate(dana.cert.encode())
    key = dana.key
    # The real certificate's subject, self-signed with the CSR key.
    own = _self_signed(real.subject, real.subject, key, key.public_key())
    refused(get(dana.signer, fpe_key(dana.signer, own)), 401, "not issued by this account")
    # The real issuer's name, signed with the CSR key.
    claimed = _self_signed(real.subject, real.issuer, key, key.public_key())
    refused(get(dana.signer, fpe_key(dana.signer, claimed)), 401, "(signature)")
    # A forged CA with exactly the account CA's name.
    forged_ca = certificates.new_authority(plane.account.account_id)
    assert forged_ca.certificate.subject == real.issuer
    forged = certificates.issue(
        forged_ca,
        key.public_key(),
        access_key_id=dana.signer.key_id,
        not_after=datetime.now(UTC) + timedelta(minutes=10),
    )
    for response in (
        get(dana.signer, def_keys(dana.signer, forged)),
        post(dana.signer, "/api/v0/encryption/key", uses=1, payload_cert=b64(forged)),
    ):
        refused(response, 401, "not issued by this account (signature)")
    # The account CA's own certificate is no client certificate.
    with plane.runtime.db.read() as s:
        settings = s.get(IdpSettings, plane.account.account_id)
        assert settings is not None
        ca_pem = settings.ca_cert_pem
    assert ca_pem is not None
    refused(
        get(dana.signer, fpe_key(dana.signer, ca_pem)), 401, "not a Keystead client certificate"
    )


def test_payload_cert_that_is_not_a_certificate(plane: Plane) -> None:
    dana = plane.dana.signer
    # Not base64: 400.
    for response in (
        get(dana, fpe_key(dana, raw="&payload_cert=" + quote_plus("not base64!"))),
        get(dana, def_keys(dana, raw="&payload_cert=%25%25%25")),
        post(dana, "/api/v0/encryption/key", uses=1, payload_cert="***"),
        post(dana, "/api/v0/decryption/key", encrypted_data_key="AA==", payload_cert="@@"),
    ):
        refused(response, 400, "'payload_cert' is not valid base64")
    # Not a string in the JSON body: 400.
    for value in (123, True, ["x"], {"pem": "x"}):
        for path in ("/api/v0/encryption/key", "/api/v0/decryption/key"):
            response = post(dana, path, uses=1, encrypted_data_key="AA==", payload_cert=value)
            refused(response, 400, "'payload_cert' must be a base64 string")
    # Base64 of something that is not a PEM certificate: 401 with the reason.
    refused(
        get(dana, fpe_key(dana, raw="&payload_cert=" + quote_plus(b64("hello")))),
        401,
        "not a PEM certificate",
    )


# --- manual keys -------------------------------------------------------------------------------


def test_a_manual_key_works_without_a_certificate_and_gets_its_private_key(
    plane: Plane,
) -> None:
    manual = plane.manual
    private = serialization.load_pem_private_key(
        get(manual, fpe_key(manual)).json()["encrypted_private_key"].encode(),
        password=plane.manual_srsa.encode(),
    )
    assert isinstance(private, rsa.RSAPrivateKey)

    entry = get(manual, def_keys(manual)).json()["SSN"]
    assert entry["encrypted_private_key"].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    keys = [unwrap(w, private) for w in entry["keys"]]
    dana_keys = [
        unwrap(w, plane.dana.key)
        for w in get(plane.dana.signer, def_keys(plane.dana.signer, plane.dana.cert)).json()["SSN"][
            "keys"
        ]
    ]
    assert keys == dana_keys

    current = get(manual, fpe_key(manual)).json()
    assert current["key_number"] in ("1", 1)
    assert unwrap(current["wrapped_data_key"], private) == keys[1]

    created = post(manual, "/api/v0/encryption/key", uses=1)
    assert created.status_code == 201, created.text
    issued = created.json()
    assert "encrypted_private_key" in issued
    data_key = unwrap(issued["wrapped_data_key"], private)
    recovered = post(
        manual, "/api/v0/decryption/key", encrypted_data_key=issued["encrypted_data_key"]
    )
    assert recovered.status_code == 200, recovered.text
    assert "encrypted_private_key" in recovered.json()
    assert unwrap(recovered.json()["wrapped_data_key"], private) == data_key
    # A signed-in user recovers the same data key from the manual key's EDK.
    theirs = post(
        plane.dana.signer,
        "/api/v0/decryption/key",
        encrypted_data_key=issued["encrypted_data_key"],
        payload_cert=b64(plane.dana.cert),
    )
    assert theirs.status_code == 200, theirs.text
    assert unwrap(theirs.json()["wrapped_data_key"], plane.dana.key) == data_key
    assert get(manual, ffs(manual)).status_code == 200


def test_certificate_subject_is_the_signing_key_id(plane: Plane) -> None:
    """What the refusals above rely on: the exchange binds the certificate to papi."""
    cert = x509.load_pem_x509_certificate(plane.dana.cert.encode())
    [cn] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == plane.dana.signer.key_id
    assert cert.public_key().public_numbers() == plane.dana.key.public_key().public_numbers()  # type: ignore[union-attr]
