"""TLS files for tests: a self-signed certificate for 127.0.0.1 and its key, as PEM."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_pair(
    directory: Path,
    name: str,
    *,
    not_after: datetime | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 valid until ``not_after`` (default: a day
    from now) and its key (or ``key``, then the pair does not match); the key file 0600."""
    own = ec.generate_private_key(ec.SECP256R1())
    end = not_after or datetime.now(UTC) + timedelta(days=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keystead.test")])
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(own.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(end - timedelta(days=400))
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
        .sign(own, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        (key or own).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file
