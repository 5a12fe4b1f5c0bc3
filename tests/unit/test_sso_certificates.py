"""The account CA and client certificates of the SSO exchange (keystead.sso.certificates),
and the shape rules of the sign-in settings (keystead.idp.config). No web, no database."""

from __future__ import annotations

import base64
import hashlib
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import example, given, settings
from hypothesis import strategies as st

from keystead.errors import InvalidInput
from keystead.idp import config
from keystead.sso import certificates as certs
from keystead.sso.certificates import CertificateError
from tests.support.signin import client_key, csr_pem

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ACCOUNT = uuid.UUID("5b0c3c1e-8a51-4b8e-9f5e-0e6a3d1c2b7a")
KEY_ID = "a1b2c3d4e5f6a7b8c9d0e1f2"


@pytest.fixture(scope="module")
def authority() -> certs.Authority:
    return certs.new_authority(ACCOUNT, now=NOW)


def pem_of(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def client_cert(
    authority: certs.Authority,
    *,
    key_id: str = KEY_ID,
    not_after: datetime | None = None,
    now: datetime = NOW,
) -> str:
    return certs.issue(
        authority,
        client_key().public_key(),
        access_key_id=key_id,
        not_after=not_after or now + timedelta(hours=1),
        now=now,
    )


def signed_by(
    authority: certs.Authority,
    public_key: Any,
    subject: x509.Name,
    *,
    issuer: x509.Name | None = None,
) -> bytes:
    """A certificate for ``public_key`` signed with the CA's key, built by hand."""
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or authority.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=1))
        .not_valid_after(NOW + timedelta(hours=1))
        .sign(authority.private_key, hashes.SHA256())
    )
    return pem_of(certificate)


def name(*pairs: tuple[Any, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


# --- the account CA ---------------------------------------------------------------------------


def test_new_authority_is_a_self_signed_ca_for_the_account(authority: certs.Authority) -> None:
    ca = authority.certificate
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical is True
    assert constraints.value.ca is True
    assert constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical is True
    assert usage.value.key_cert_sign is True
    assert usage.value.crl_sign is True
    assert usage.value.digital_signature is False
    assert ca.issuer == ca.subject
    [cn] = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == f"Keystead SSO CA {ACCOUNT}"
    ca.verify_directly_issued_by(ca)
    assert isinstance(authority.private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(authority.private_key.curve, ec.SECP256R1)
    assert ca.not_valid_before_utc == NOW - certs.BACKDATE
    assert ca.not_valid_after_utc == NOW + certs.CA_LIFETIME


def test_every_new_authority_has_its_own_key() -> None:
    one, two = certs.new_authority(ACCOUNT), certs.new_authority(ACCOUNT)
    assert one.certificate.subject == two.certificate.subject
    assert one.private_key.private_numbers() != two.private_key.private_numbers()
    assert one.certificate.serial_number != two.certificate.serial_number


def test_load_authority_round_trips(authority: certs.Authority) -> None:
    loaded = certs.load_authority(authority.cert_pem, authority.key_der())
    assert loaded.certificate == authority.certificate
    assert loaded.cert_pem == authority.cert_pem
    assert loaded.private_key.private_numbers() == authority.private_key.private_numbers()
    assert certs.load_ca_certificate(authority.cert_pem) == authority.certificate
    # The loaded CA issues certificates the original verifies.
    issued = client_cert(loaded)
    certs.verify_client_certificate(issued.encode(), authority.certificate)


def test_load_authority_refuses_a_non_ec_key(authority: certs.Authority) -> None:
    der = client_key().private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(TypeError, match="not an EC key"):
        certs.load_authority(authority.cert_pem, der)


# --- CSRs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2048, 4096])
def test_csr_public_key_accepts_an_rsa_csr_and_returns_its_key(bits: int) -> None:
    key = client_key(bits)
    public = certs.csr_public_key(csr_pem(key))
    assert public.public_numbers() == key.public_key().public_numbers()
    assert public.key_size == bits


def _csr(key: Any, algorithm: hashes.SHA256 | None = None) -> str:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name((NameOID.COMMON_NAME, "x")))
        .sign(key, algorithm)
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def _tampered_csr() -> str:
    der = x509.load_pem_x509_csr(csr_pem().encode()).public_bytes(serialization.Encoding.DER)
    broken = der[:-1] + bytes([der[-1] ^ 0x01])  # the last byte belongs to the signature
    body = base64.encodebytes(broken).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def _other_subject_csr() -> str:
    """A valid PEM CSR whose signature was made over a different subject."""
    good = x509.load_pem_x509_csr(csr_pem().encode()).public_bytes(serialization.Encoding.DER)
    swapped = good.replace(b"San Diego", b"San Diega")
    assert swapped != good
    body = base64.encodebytes(swapped).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


BAD_CSRS = [
    pytest.param(None, "must be a PEM certificate request (a string)", id="none"),
    pytest.param(42, "must be a PEM certificate request (a string)", id="number"),
    pytest.param(b"-----BEGIN", "must be a PEM certificate request (a string)", id="bytes"),
    pytest.param({"csr": "x"}, "must be a PEM certificate request (a string)", id="dict"),
    pytest.param("", "must be a PEM certificate request (a string)", id="empty"),
    pytest.param("  \n ", "must be a PEM certificate request (a string)", id="blank"),
    pytest.param(
        "-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * certs.MAX_PEM_BYTES,
        f"larger than {certs.MAX_PEM_BYTES} bytes",
        id="oversized",
    ),
    pytest.param("MIICWjCCAUICAQAwFTETMBEGA1UEAwwK", "not a PEM certificate request", id="no-pem"),
    pytest.param(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "not a PEM certificate request",
        id="certificate-pem",
    ),
    pytest.param(
        "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NSIGF0IGFsbA==\n"
        "-----END CERTIFICATE REQUEST-----\n",
        "cannot be parsed",
        id="garbage-pem",
    ),
    pytest.param("tampered", "signature does not verify", id="tampered-signature"),
    pytest.param("other-subject", "signature does not verify", id="signed-other-subject"),
    pytest.param("ec", "must be RSA", id="ec-key"),
    pytest.param("ed25519", "must be RSA", id="ed25519-key"),
    pytest.param("rsa1024", "has 1024 bits; 2048 to 4096 are accepted", id="rsa-1024"),
    pytest.param("rsa4160", "has 4160 bits; 2048 to 4096 are accepted", id="rsa-4160"),
    pytest.param("e3", "public exponent is 3; only 65537 is accepted", id="exponent-3"),
    pytest.param("e-huge", "public exponent is a 2000-bit number", id="exponent-2000-bits"),
]


def odd_exponent_key(bits: int) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key whose public exponent is a ``bits``-bit number (what an attacker
    would put in a CSR to make every later wrap to it cost more)."""
    base = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    p, q = base.p, base.q
    phi = (p - 1) * (q - 1)
    e = (1 << (bits - 1)) | 1
    while math.gcd(e, phi) != 1:
        e += 2
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    )
    return numbers.private_key()


@pytest.mark.parametrize(("csr", "message"), BAD_CSRS)
def test_csr_public_key_refuses_with_a_specific_message(csr: Any, message: str) -> None:
    if csr == "tampered":
        csr = _tampered_csr()
    elif csr == "other-subject":
        csr = _other_subject_csr()
    elif csr == "ec":
        csr = _csr(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    elif csr == "ed25519":
        csr = _csr(ed25519.Ed25519PrivateKey.generate())
    elif csr == "rsa1024":
        csr = _csr(rsa.generate_private_key(public_exponent=65537, key_size=1024), hashes.SHA256())
    elif csr == "rsa4160":
        csr = _csr(rsa.generate_private_key(public_exponent=65537, key_size=4160), hashes.SHA256())
    elif csr == "e3":
        csr = _csr(rsa.generate_private_key(public_exponent=3, key_size=2048), hashes.SHA256())
    elif csr == "e-huge":
        csr = _csr(odd_exponent_key(2000), hashes.SHA256())
    with pytest.raises(CertificateError) as caught:
        certs.csr_public_key(csr)
    assert message in str(caught.value)


# --- issuing ---------------------------------------------------------------------------------


def test_issue_binds_the_key_id_and_the_csr_key(authority: certs.Authority) -> None:
    not_after = NOW + timedelta(minutes=10)
    pem = certs.issue(
        authority,
        certs.csr_public_key(csr_pem()),
        access_key_id=KEY_ID,
        not_after=not_after,
        now=NOW,
    )
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    cert = x509.load_pem_x509_certificate(pem.encode())
    [cn] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == KEY_ID
    assert cert.issuer == authority.certificate.subject
    assert cert.public_key().public_numbers() == client_key().public_key().public_numbers()  # type: ignore[union-attr]
    assert cert.not_valid_after_utc == not_after
    assert cert.not_valid_before_utc == NOW - certs.BACKDATE
    assert cert.not_valid_before_utc < NOW
    cert.verify_directly_issued_by(authority.certificate)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment is True
    assert usage.key_cert_sign is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # Two certificates for the same key are distinct (serials).
    again = x509.load_pem_x509_certificate(client_cert(authority, not_after=not_after).encode())
    assert again.serial_number != cert.serial_number


def _builder_twin(
    authority: certs.Authority, issued: x509.Certificate, public_key: rsa.RSAPublicKey
) -> x509.Certificate:
    """The certificate cryptography's own builder makes from what ``issued`` says."""
    builder = (
        x509.CertificateBuilder()
        .issuer_name(authority.certificate.subject)
        .subject_name(issued.subject)
        .public_key(public_key)
        .serial_number(issued.serial_number)
        .not_valid_before(issued.not_valid_before_utc)
        .not_valid_after(issued.not_valid_after_utc)
    )
    key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.private_key.public_key())
    for value, critical in [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        ),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (key_id, False),
    ]:
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(authority.private_key, hashes.SHA256())


@settings(max_examples=60, deadline=None)
@given(
    now=st.datetimes(min_value=datetime(1950, 1, 2), max_value=datetime(9000, 1, 1)),
    lifetime=st.integers(min_value=1, max_value=10 * 365 * 86_400),
    key_id=st.text(alphabet="0123456789abcdefABCDEF-_", min_size=1, max_size=64),
)
@example(now=datetime(2050, 1, 1, 0, 0, 30), lifetime=1, key_id=KEY_ID)  # before: UTCTime
@example(now=datetime(2055, 6, 1), lifetime=3600, key_id=KEY_ID)
@example(now=datetime(2049, 12, 31, 23), lifetime=3600, key_id="k" * 64)
def test_issued_der_is_what_the_builder_makes(
    authority: certs.Authority, now: datetime, lifetime: int, key_id: str
) -> None:
    # The certificate is encoded by Keystead (for speed); every byte it signs must be what
    # cryptography's builder encodes for the same serial, times, names, key and extensions,
    # across the UTCTime/GeneralizedTime switch of 2050.
    moment = now.replace(tzinfo=UTC, microsecond=0)
    public_key = client_key().public_key()
    pem = certs.issue(
        authority,
        public_key,
        access_key_id=key_id,
        not_after=moment + timedelta(seconds=lifetime),
        now=moment,
    )
    issued = x509.load_pem_x509_certificate(pem.encode())
    issued.verify_directly_issued_by(authority.certificate)
    assert issued.public_bytes(serialization.Encoding.PEM).decode() == pem
    twin = _builder_twin(authority, issued, public_key)
    assert issued.tbs_certificate_bytes == twin.tbs_certificate_bytes
    assert issued.signature_algorithm_oid == twin.signature_algorithm_oid
    assert issued.not_valid_before_utc == moment - certs.BACKDATE
    assert issued.not_valid_after_utc == moment + timedelta(seconds=lifetime)


def test_issued_certificate_does_not_verify_with_another_ca(authority: certs.Authority) -> None:
    cert = x509.load_pem_x509_certificate(client_cert(authority).encode())
    stranger = certs.new_authority(ACCOUNT)  # the same name, another key
    with pytest.raises(Exception):  # noqa: B017, PT011 - cryptography's InvalidSignature
        cert.verify_directly_issued_by(stranger.certificate)


# --- verifying a presented certificate ---------------------------------------------------------


def test_verify_client_certificate_reads_what_the_certificate_binds(
    authority: certs.Authority,
) -> None:
    not_after = NOW + timedelta(minutes=5)
    pem = client_cert(authority, not_after=not_after).encode()
    verified = certs.verify_client_certificate(pem, authority.certificate)
    assert verified.access_key_id == KEY_ID
    assert verified.public_key.public_numbers() == client_key().public_key().public_numbers()
    assert verified.not_before == NOW - certs.BACKDATE
    assert verified.not_after == not_after
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert verified.fingerprint == hashlib.sha256(der).hexdigest()
    verified.check(access_key_id=KEY_ID, now=NOW)


def test_certificate_from_another_account_ca_is_refused(authority: certs.Authority) -> None:
    other = certs.new_authority(uuid.uuid4())
    pem = client_cert(other).encode()
    with pytest.raises(CertificateError, match=r"was not issued by this account$"):
        certs.verify_client_certificate(pem, authority.certificate)


def test_certificate_from_a_forged_ca_with_the_same_name_fails_on_the_signature(
    authority: certs.Authority,
) -> None:
    forged = certs.new_authority(ACCOUNT, now=NOW)
    assert forged.certificate.subject == authority.certificate.subject
    pem = client_cert(forged).encode()
    with pytest.raises(CertificateError, match=r"not issued by this account \(signature\)"):
        certs.verify_client_certificate(pem, authority.certificate)


def test_self_made_certificate_with_the_same_subject_is_refused(
    authority: certs.Authority,
) -> None:
    key = client_key()
    subject = name((NameOID.ORGANIZATION_NAME, "Keystead"), (NameOID.COMMON_NAME, KEY_ID))
    own = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=1))
        .not_valid_after(NOW + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="not issued by this account"):
        certs.verify_client_certificate(pem_of(own), authority.certificate)
    # Even naming the CA as issuer does not help without the CA's key.
    claimed = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=1))
        .not_valid_after(NOW + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match=r"\(signature\)"):
        certs.verify_client_certificate(pem_of(claimed), authority.certificate)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "not a PEM certificate"),
        (b"not a certificate", "not a PEM certificate"),
        (
            b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n",
            "not a PEM certificate",
        ),
        (b"-----BEGIN CERTIFICATE-----\n" + b"A" * certs.MAX_PEM_BYTES, "larger than 16384"),
    ],
)
def test_unreadable_or_oversized_certificates_are_refused(
    authority: certs.Authority, pem: bytes, message: str
) -> None:
    with pytest.raises(CertificateError, match=message):
        certs.verify_client_certificate(pem, authority.certificate)


def test_ca_signed_certificates_that_are_not_client_certificates_are_refused(
    authority: certs.Authority,
) -> None:
    # The CA's own certificate: issued (self-signed) by the CA, but an EC key and no key id.
    with pytest.raises(CertificateError, match="not a Keystead client certificate"):
        certs.verify_client_certificate(authority.cert_pem.encode(), authority.certificate)
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    one_cn = name((NameOID.COMMON_NAME, KEY_ID))
    with pytest.raises(CertificateError, match="not a Keystead client certificate"):
        certs.verify_client_certificate(signed_by(authority, ec_key, one_cn), authority.certificate)
    rsa_key = client_key().public_key()
    no_cn = name((NameOID.ORGANIZATION_NAME, "Keystead"))
    two_cn = name((NameOID.COMMON_NAME, KEY_ID), (NameOID.COMMON_NAME, "other"))
    for subject in (no_cn, two_cn):
        with pytest.raises(CertificateError, match="not a Keystead client certificate"):
            certs.verify_client_certificate(
                signed_by(authority, rsa_key, subject), authority.certificate
            )
    # The same builder with one CN is accepted: the refusals above are about the subject.
    accepted = certs.verify_client_certificate(
        signed_by(authority, rsa_key, one_cn), authority.certificate
    )
    assert accepted.access_key_id == KEY_ID


def test_check_refuses_another_key_not_yet_valid_and_expired(
    authority: certs.Authority,
) -> None:
    not_after = NOW + timedelta(minutes=10)
    verified = certs.verify_client_certificate(
        client_cert(authority, not_after=not_after).encode(), authority.certificate
    )
    with pytest.raises(CertificateError, match=f"issued to API key {KEY_ID}, not to other"):
        verified.check(access_key_id="other", now=NOW)
    # Backdated by a minute: valid from NOW - 60 s, not before.
    verified.check(access_key_id=KEY_ID, now=NOW - certs.BACKDATE)
    with pytest.raises(CertificateError, match="not valid yet"):
        verified.check(access_key_id=KEY_ID, now=NOW - certs.BACKDATE - timedelta(seconds=1))
    verified.check(access_key_id=KEY_ID, now=not_after - timedelta(seconds=1))
    for moment in (not_after, not_after + timedelta(days=1)):
        with pytest.raises(CertificateError, match=r"expired at .*sign in again"):
            verified.check(access_key_id=KEY_ID, now=moment)


# --- idp.config: the shape rules of the sign-in settings --------------------------------------

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            f"https://login.microsoftonline.com/{TENANT}/.well-known/openid-configuration",
            f"https://login.microsoftonline.com/{TENANT}/.well-known/openid-configuration",
        ),
        ("  https://idp.example/.well-known/openid-configuration \n", None),
        ("https://idp.example/" + "a" * (2048 - len("https://idp.example/")), None),
    ],
)
def test_check_discovery_url_accepts(value: str, expected: str | None) -> None:
    assert config.check_discovery_url(value) == (expected or value.strip())


LOOPBACK_URLS = [
    "http://127.0.0.1:9000/t/.well-known/openid-configuration",
    "http://localhost/t/.well-known/openid-configuration",
    "http://[::1]:9000/t/.well-known/openid-configuration",
    "https://10.0.0.1/t/.well-known/openid-configuration",
    "https://169.254.169.254/latest/meta-data/",
]


@pytest.mark.parametrize("value", LOOPBACK_URLS)
def test_loopback_and_private_discovery_urls_only_where_the_operator_allows(value: str) -> None:
    """KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES off (the default): refused when saved, with
    the setting named; on: accepted (plain http on loopback only)."""
    with pytest.raises(InvalidInput, match=r"https|KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES"):
        config.check_discovery_url(value)
    assert config.check_discovery_url(value, allow_private=True) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "not an absolute URL"),
        ("login.microsoftonline.com/x", "not an absolute URL"),
        ("/tenant/.well-known/openid-configuration", "not an absolute URL"),
        ("ftp://idp.example/x", "not an absolute URL"),
        ("https://", "not an absolute URL"),
        ("http://idp.example/x", "must use https"),
        ("http://10.0.0.1/x", "must use https"),
        ("https://idp.example/" + "a" * 2048, "longer than 2048 characters"),
        ("https://[::1/x", "discovery URL"),
        ("http://[not-an-ip]/x", "discovery URL"),
    ],
)
def test_check_discovery_url_refuses(value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        config.check_discovery_url(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"https://sts.windows.net/{TENANT}/", f"https://sts.windows.net/{TENANT}/"),
        (f"  https://sts.windows.net/{TENANT}/ ", f"https://sts.windows.net/{TENANT}/"),
        (f"https://sts.windows.net/{TENANT.upper()}/", f"https://sts.windows.net/{TENANT}/"),
    ],
)
def test_check_issuer_accepts_the_v1_issuer_in_lower_case(value: str, expected: str) -> None:
    assert config.check_issuer(value) == expected
    assert config.tenant_of_issuer(expected) == TENANT


@pytest.mark.parametrize(
    ("value", "v2_hint"),
    [
        (f"https://login.microsoftonline.com/{TENANT}/v2.0", True),
        (f"https://login.microsoftonline.com/{TENANT}/v2.0/", True),
        (f"https://sts.windows.net/{TENANT}", False),
        (f"http://sts.windows.net/{TENANT}/", False),
        (f"https://sts.windows.net/{TENANT}/extra/", False),
        ("https://sts.windows.net/contoso.onmicrosoft.com/", False),
        ("https://sts.windows.net/72f988bf86f141af91ab2d7cd011db47/", False),
        (f"https://STS.windows.net/{TENANT}/", False),
        ("", False),
    ],
)
def test_check_issuer_refuses_with_the_form_and_the_v2_hint(value: str, v2_hint: bool) -> None:
    with pytest.raises(InvalidInput) as caught:
        config.check_issuer(value)
    message = str(caught.value)
    assert "https://sts.windows.net/TENANT_ID/" in message
    assert "trailing slash" in message
    assert ("accessTokenAcceptedVersion" in message) is v2_hint
    assert config.tenant_of_issuer(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"api://{TENANT}", f"api://{TENANT}"),
        (" api://keystead ", "api://keystead"),
        ("https://keystead.example/api", "https://keystead.example/api"),
        ("x" * 512, "x" * 512),
    ],
)
def test_check_audience_accepts(value: str, expected: str) -> None:
    assert config.check_audience(value) == expected


@pytest.mark.parametrize("value", ["", "   ", "api://my app", "api://a\tb", "x" * 513])
def test_check_audience_refuses(value: str) -> None:
    with pytest.raises(InvalidInput, match="Application ID URI"):
        config.check_audience(value)


@pytest.mark.parametrize("claim", ["unique_name", "upn", "preferred_username", "email"])
def test_check_username_claim_accepts_the_four_claims(claim: str) -> None:
    assert config.check_username_claim(claim) == claim


@pytest.mark.parametrize("claim", ["", "sub", "oid", "UPN", " upn", "name"])
def test_check_username_claim_refuses_others(claim: str) -> None:
    with pytest.raises(InvalidInput, match="is not one of unique_name, upn, preferred_username"):
        config.check_username_claim(claim)


def test_check_range_bounds_are_inclusive() -> None:
    assert config.check_range("leeway", 0, config.LEEWAY_RANGE) == 0
    assert config.check_range("leeway", 300, config.LEEWAY_RANGE) == 300
    assert config.check_range("lifetime", 60, config.CERT_TTL_RANGE) == 60
    assert config.check_range("lifetime", 86400, config.CERT_TTL_RANGE) == 86400
    for value in (-1, 301):
        with pytest.raises(
            InvalidInput, match=f"leeway must be from 0 to 300 seconds; got {value}"
        ):
            config.check_range("leeway", value, config.LEEWAY_RANGE)
    for value in (59, 86401):
        with pytest.raises(InvalidInput, match="lifetime must be from 60 to 86400 seconds"):
            config.check_range("lifetime", value, config.CERT_TTL_RANGE)


def test_check_group_policy() -> None:
    assert config.check_group_policy("directory") == "directory"
    assert config.check_group_policy("directory_and_token") == "directory_and_token"
    for value in ("", "token", "Directory", "directory "):
        with pytest.raises(InvalidInput, match="is not one of directory, directory_and_token"):
            config.check_group_policy(value)


def test_username_claims_puts_the_configured_claim_first() -> None:
    assert config.username_claims("unique_name") == ("unique_name", "upn", "preferred_username")
    assert config.username_claims("upn") == ("upn", "unique_name", "preferred_username")
    assert config.username_claims("preferred_username") == (
        "preferred_username",
        "unique_name",
        "upn",
    )
    assert config.username_claims("email") == (
        "email",
        "unique_name",
        "upn",
        "preferred_username",
    )


def test_sign_in_changes_checks_every_field_and_leaves_none_alone() -> None:
    assert config.SignInChanges().checked() == config.SignInChanges()
    checked = config.SignInChanges(
        issuer=f" https://sts.windows.net/{TENANT.upper()}/ ",
        audience=" api://x ",
        leeway_seconds=0,
        cert_ttl_seconds=60,
    ).checked()
    assert checked == config.SignInChanges(
        issuer=f"https://sts.windows.net/{TENANT}/",
        audience="api://x",
        leeway_seconds=0,
        cert_ttl_seconds=60,
    )
    for bad in (
        {"discovery_url": "http://idp.example/x"},
        {"issuer": "https://sts.windows.net/x/"},
        {"audience": "a b"},
        {"username_claim": "sub"},
        {"leeway_seconds": 301},
        {"cert_ttl_seconds": 59},
        {"group_policy": "token"},
    ):
        with pytest.raises(InvalidInput):
            config.SignInChanges(**bad).checked()
