"""Serving HTTPS without a proxy: the certificate and key files, checked before uvicorn
is given them (uvicorn's own errors are tracebacks)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from keystead.errors import ConfigurationError
from keystead.settings import Settings


def tls_files(settings: Settings) -> tuple[Path, Path] | None:
    """The certificate and key to serve HTTPS with, both readable, or None for plain HTTP
    (a TLS-terminating proxy in front); a ConfigurationError saying what is wrong."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigurationError(
            "HTTPS needs both a certificate and its key: give --tls-cert and --tls-key "
            "(KEYSTEAD_TLS_CERT_FILE and KEYSTEAD_TLS_KEY_FILE)"
        )
    for path, what in ((cert, "certificate"), (key, "key")):
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the TLS {what} {path}: {exc.strerror}") from None
    try:
        # An encrypted key is refused here rather than prompted for on the terminal.
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key, password=lambda: b"")
        ends = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigurationError(
            f"the TLS certificate {cert} and key {key} cannot be used together ({exc}): both "
            "must be PEM, the key unencrypted and the certificate's own"
        ) from None
    if ends <= datetime.now(UTC):
        raise ConfigurationError(
            f"the TLS certificate {cert} expired on {ends:%Y-%m-%d %H:%M} UTC; renew it"
        )
    return cert, key
