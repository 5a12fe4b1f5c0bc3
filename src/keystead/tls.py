"""Serving HTTPS without a proxy: the certificate and key files, checked before uvicorn
is given them (uvicorn's own errors are tracebacks) and by ``keystead doctor``; both ask
:func:`usable_pair`, so a file the server would refuse is the doctor's problem too."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from keystead.errors import ConfigurationError
from keystead.settings import Settings


class TlsFileError(ConfigurationError):
    """A TLS file HTTPS cannot be served with: what is wrong, and what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem, self.fix = problem, fix


def tls_files(settings: Settings) -> tuple[Path, Path] | None:
    """The certificate and key to serve HTTPS with, or None for plain HTTP (a
    TLS-terminating proxy in front); a TlsFileError saying what is wrong."""
    pair = configured_pair(settings)
    if pair is not None:
        usable_pair(*pair, datetime.now(UTC))
    return pair


def configured_pair(settings: Settings) -> tuple[Path, Path] | None:
    """The two files the settings name (both or neither), not yet read."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is not None and key is not None:
        return cert, key
    if cert is None and key is None:
        return None
    given, missing = (
        ("tls_key_file", "tls_cert_file") if cert is None else ("tls_cert_file", "tls_key_file")
    )
    raise TlsFileError(
        f"only {given} is set: HTTPS needs both a certificate and its key",
        f"set {missing} too (KEYSTEAD_{missing.upper()}, or --tls-cert and --tls-key), "
        "or unset both",
    )


def usable_pair(cert: Path, key: Path, now: datetime) -> x509.Certificate:
    """The server's certificate, once the pair is known to be usable at ``now``."""
    try:
        for path in (cert, key):
            # A FIFO would block the start for ever, a device (/dev/zero) never end.
            if path.exists() and not path.is_file():
                raise TlsFileError(
                    f"{path} is not a regular file",
                    "point the setting at the PEM file itself (a symbolic link to one is fine)",
                )
        cert_data, key_data = cert.read_bytes(), key.read_bytes()
    except OSError as exc:
        raise TlsFileError(
            f"cannot read {exc.filename}: {exc.strerror}",
            "correct the path, or let the user Keystead runs as read the file",
        ) from None
    try:
        certificate = x509.load_pem_x509_certificates(cert_data)[0]
    except ValueError:
        raise TlsFileError(
            f"{cert} holds no PEM certificate",
            "point tls_cert_file at the PEM certificate (chain), the server's own first",
        ) from None
    try:
        private_key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:  # encrypted: refused here rather than prompted for on the terminal
        raise TlsFileError(
            f"{key} is encrypted with a passphrase",
            f"store it unencrypted (mode 0600): openssl pkey -in {key} -out NEW_FILE",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsFileError(
            f"{key} holds no PEM private key",
            "point tls_key_file at the certificate's PEM private key",
        ) from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != private_key.public_key().public_bytes(*spki):
        raise TlsFileError(
            f"the key in {key} is not the key of the certificate in {cert}",
            "pair the certificate with the key it was issued for",
        )
    try:  # what uvicorn will do with them
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            cert, key, password=lambda: b""
        )
    except ssl.SSLError as exc:
        raise TlsFileError(
            f"the TLS library refuses {cert} with {key} ({exc.reason or exc})",
            "use a PEM certificate chain and its unencrypted PEM key",
        ) from None
    begins, ends = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if ends <= now:
        raise TlsFileError(
            f"the TLS certificate {cert} expired on {ends:%Y-%m-%d %H:%M} UTC",
            f"renew the certificate and replace {cert} (and its key)",
        )
    if begins > now:
        raise TlsFileError(
            f"the TLS certificate {cert} is valid only from {begins:%Y-%m-%d %H:%M} UTC",
            "check this machine's clock, or use a certificate valid now",
        )
    return certificate
