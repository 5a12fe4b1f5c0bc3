"""The account CA and the short-lived client certificates of the SSO exchange (no web, no
database).

A certificate Keystead issues binds the public key of the client's CSR to one API key: its
subject CN is the key's access key id. The data plane wraps data keys to that public key
only after :func:`verify_client_certificate` has checked that the account's CA signed it,
that it is within its validity and that it names the signing key.

The CA key is ECDSA P-256: signing is cheap, and the client never checks the chain. The
client's own key must be RSA (it unwraps RSA-OAEP), 2048 to 4096 bits, exponent 65537.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keystead.caching import Immutable

MIN_RSA_BITS = 2048
# Every later data-plane call of the user wraps keys to this key: a 16,384-bit modulus or a
# huge public exponent would make each of them cost many times more, on the shared loop.
MAX_RSA_BITS = 4096
RSA_EXPONENT = 65537
MAX_PEM_BYTES = 16_384
CA_LIFETIME = timedelta(days=3650)
# Backdating absorbs clock differences between Keystead's processes and its clients.
BACKDATE = timedelta(seconds=60)


class CertificateError(Exception):
    """A CSR or a presented certificate is not acceptable; the message says why."""


@dataclass(frozen=True)
class Authority:
    """An account's CA: its certificate and (unwrapped) private key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @functools.cached_property
    def client_template(self) -> ClientTemplate:
        """What every client certificate it signs has in common, encoded once (its public
        key hashed once for the key identifier)."""
        key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key())
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_usage(digital_signature=True, key_encipherment=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            (key_id, False),
        ]
        encoded = b"".join(
            _extension(x509.Extension(value.oid, critical, value)) for value, critical in extensions
        )
        return ClientTemplate(
            issuer=self.certificate.subject.public_bytes(),
            extensions=_der(0xA3, _der(0x30, encoded)),
        )

    @property
    def cert_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def key_der(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_authority(account_id: uuid.UUID, *, now: datetime | None = None) -> Authority:
    moment = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keystead"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Keystead SSO CA {account_id}"),
        ]
    )
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - BACKDATE)
        .not_valid_after(moment + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(for_ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def load_authority(cert_pem: str, key_der: bytes) -> Authority:
    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_der_private_key(key_der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the account CA key is not an EC key")
    return Authority(certificate, key)


def load_ca_certificate(cert_pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_pem.encode())


def csr_public_key(pem: object) -> rsa.RSAPublicKey:
    """The RSA public key of a PEM PKCS#10 request whose self-signature verifies."""
    if not isinstance(pem, str) or not pem.strip():
        raise CertificateError("'csr' must be a PEM certificate request (a string)")
    if len(pem.encode()) > MAX_PEM_BYTES:
        raise CertificateError(f"'csr' is larger than {MAX_PEM_BYTES} bytes")
    if "-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise CertificateError("'csr' is not a PEM certificate request (BEGIN CERTIFICATE REQUEST)")
    try:
        request = x509.load_pem_x509_csr(pem.encode())
    except ValueError as exc:
        raise CertificateError("'csr' cannot be parsed as a PKCS#10 certificate request") from exc
    try:
        public = request.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError("the CSR's public key cannot be read") from exc
    if not isinstance(public, rsa.RSAPublicKey):
        raise CertificateError("the CSR's key must be RSA (data keys are wrapped with RSA-OAEP)")
    if not MIN_RSA_BITS <= public.key_size <= MAX_RSA_BITS:
        raise CertificateError(
            f"the CSR's RSA key has {public.key_size} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} "
            "are accepted"
        )
    exponent = public.public_numbers().e
    if exponent != RSA_EXPONENT:
        shown = exponent if exponent.bit_length() <= 64 else f"a {exponent.bit_length()}-bit number"
        raise CertificateError(
            f"the CSR's RSA public exponent is {shown}; only {RSA_EXPONENT} is accepted"
        )
    try:
        valid = request.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise CertificateError("the CSR's signature does not verify with its own key")
    return public


def issue(
    authority: Authority,
    public_key: rsa.RSAPublicKey,
    *,
    access_key_id: str,
    not_after: datetime,
    now: datetime | None = None,
) -> str:
    """A client certificate for ``public_key``, bound to ``access_key_id``, as PEM."""
    moment = now or datetime.now(UTC)
    template = authority.client_template
    tbs = _der(
        0x30,
        b"".join(
            (
                _V3,
                _integer(x509.random_serial_number()),
                _ECDSA_WITH_SHA256,
                template.issuer,
                _der(0x30, _time(moment - BACKDATE) + _time(not_after)),
                _subject(access_key_id),
                public_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                template.extensions,
            )
        ),
    )
    signature = authority.private_key.sign(tbs, _SIGNATURE)
    return _pem(_der(0x30, tbs + _ECDSA_WITH_SHA256 + _der(0x03, b"\x00" + signature)))


# A client certificate's subject, encoded once per API key.
_SUBJECTS: Immutable[str, bytes] = Immutable(10_000)


def _subject(access_key_id: str) -> bytes:
    return _SUBJECTS.get_or_load(
        access_key_id,
        lambda: x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keystead"),
                x509.NameAttribute(NameOID.COMMON_NAME, access_key_id),
            ]
        ).public_bytes(),
    )


# --- the DER of a client certificate ------------------------------------------------------
# cryptography's CertificateBuilder converts and encodes every name and extension again on
# each call, which cost twice the signature itself. A client certificate differs from the
# next only in serial, validity, subject and key, so the rest is encoded once per CA, and
# the few shapes left are written here (tests compare every byte with the builder's).


class ClientTemplate(NamedTuple):
    """The parts every client certificate of one CA shares, as DER."""

    issuer: bytes
    extensions: bytes


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _integer(value: int) -> bytes:
    """A non-negative INTEGER (a leading zero byte keeps the top bit clear)."""
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _time(moment: datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280, 4.1.2.5)."""
    t = moment.astimezone(UTC)
    rest = f"{t.month:02}{t.day:02}{t.hour:02}{t.minute:02}{t.second:02}Z"
    if t.year < 2050:
        return _der(0x17, f"{t.year % 100:02}{rest}".encode())
    return _der(0x18, f"{t.year:04}{rest}".encode())


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    body = bytearray()
    for arc in (40 * first + second, *rest):
        digits = [arc & 0x7F]
        while arc := arc >> 7:
            digits.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(digits))
    return _der(0x06, bytes(body))


def _extension(extension: x509.Extension[x509.ExtensionType]) -> bytes:
    critical = b"\x01\x01\xff" if extension.critical else b""  # DER leaves out FALSE
    value = _der(0x04, extension.value.public_bytes())
    return _der(0x30, _oid(extension.oid.dotted_string) + critical + value)


def _pem(der: bytes) -> str:
    # 48 bytes are one 64-character line, and b2a_base64 ends each with its newline.
    lines = b"".join(binascii.b2a_base64(der[i : i + 48]) for i in range(0, len(der), 48))
    return f"-----BEGIN CERTIFICATE-----\n{lines.decode()}-----END CERTIFICATE-----\n"


_V3 = b"\xa0\x03\x02\x01\x02"  # [0] EXPLICIT INTEGER 2
_ECDSA_WITH_SHA256 = _der(0x30, _oid("1.2.840.10045.4.3.2"))
_SIGNATURE = ec.ECDSA(hashes.SHA256())


def _usage(
    *, digital_signature: bool = False, key_encipherment: bool = False, for_ca: bool = False
) -> x509.KeyUsage:
    """A key usage extension: a client's (signature, key encipherment) or a CA's."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=for_ca,
        crl_sign=for_ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class ClientCertificate:
    """What a verified certificate says; its validity is re-checked on every use."""

    public_key: rsa.RSAPublicKey
    access_key_id: str
    not_before: datetime
    not_after: datetime
    fingerprint: str

    def check(self, *, access_key_id: str, now: datetime) -> None:
        if self.access_key_id != access_key_id:
            raise CertificateError(
                f"the certificate (payload_cert) was issued to API key {self.access_key_id}, "
                f"not to {access_key_id}"
            )
        if now < self.not_before:
            raise CertificateError("the certificate (payload_cert) is not valid yet")
        if now >= self.not_after:
            raise CertificateError(
                f"the certificate (payload_cert) expired at {self.not_after.isoformat()}; "
                "sign in again (the SSO exchange) for a new one"
            )


def verify_client_certificate(pem: bytes, ca: x509.Certificate) -> ClientCertificate:
    """Check that ``ca`` issued the certificate in ``pem`` (signature and issuer name) and
    read what it binds. Validity and key binding are checked by :meth:`ClientCertificate.check`
    at each use, so this result may be cached."""
    if len(pem) > MAX_PEM_BYTES:
        raise CertificateError(
            f"the certificate (payload_cert) is larger than {MAX_PEM_BYTES} bytes"
        )
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError("the certificate (payload_cert) is not a PEM certificate") from exc
    if certificate.issuer != ca.subject:
        raise CertificateError("the certificate (payload_cert) was not issued by this account")
    try:
        certificate.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise CertificateError(
            "the certificate (payload_cert) was not issued by this account (signature)"
        ) from exc
    try:
        public = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError("the certificate (payload_cert) has an unreadable key") from exc
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not isinstance(public, rsa.RSAPublicKey) or len(names) != 1:
        raise CertificateError(
            "the certificate (payload_cert) is not a Keystead client certificate"
        )
    return ClientCertificate(
        public_key=public,
        access_key_id=str(names[0].value),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint=hashlib.sha256(
            certificate.public_bytes(serialization.Encoding.DER)
        ).hexdigest(),
    )
