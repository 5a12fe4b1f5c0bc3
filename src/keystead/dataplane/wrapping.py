"""Wrapping data keys for the client: RSA-OAEP with SHA-1 and MGF1-SHA-1, empty label,
standard padded base64 — what the Ubiq client unwraps (no web, no database)."""

from __future__ import annotations

import base64
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from keystead.caching import Immutable
from keystead.errors import Unauthenticated
from keystead.sso.certificates import ClientCertificate

# SHA-1 here is OAEP's mask and label hash, which the client fixes; it is not a signature.
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303

# Parsed public keys by their PEM: a PEM always parses to the same key.
_PUBLIC_KEYS: Immutable[str, rsa.RSAPublicKey] = Immutable(65536)


def _load_public_key(pem: str) -> rsa.RSAPublicKey:
    def parse() -> rsa.RSAPublicKey:
        key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("API key public key is not RSA")
        return key

    return _PUBLIC_KEYS.get_or_load(pem, parse)


class Recipient(NamedTuple):
    """Whom a response's data keys are wrapped to.

    ``cache_id`` names the public key (same id, same key) so wrapped key versions can be
    handed out again; ``private_key_pem`` is the encrypted private key the response
    carries, or None when the client holds its own (the certificate case).
    """

    public_key: rsa.RSAPublicKey
    cache_id: str
    private_key_pem: str | None


def recipient(
    *,
    key_id: object,
    key_name: str,
    public_key_pem: str | None,
    encrypted_private_key_pem: str | None,
    certificate: ClientCertificate | None,
) -> Recipient:
    """The one place that decides which public key a response's data keys are wrapped to,
    and whether the response carries the server-held private key.

    A verified certificate from the SSO exchange wins: its key is the client's own, so no
    private key is returned. Otherwise a manual API key wraps to its own key pair; keys
    without one (auto-provisioned keys) work only with a certificate.
    """
    if certificate is not None:
        return Recipient(certificate.public_key, f"cert:{certificate.fingerprint}", None)
    if public_key_pem is None:
        raise Unauthenticated(
            f"API key {key_name!r} has no key pair of its own: it works only with a "
            "certificate from the SSO exchange (payload_cert, IDP mode)"
        )
    return Recipient(_load_public_key(public_key_pem), f"key:{key_id}", encrypted_private_key_pem)


def wrap(data_key: bytes, public_key: rsa.RSAPublicKey) -> str:
    return base64.b64encode(public_key.encrypt(data_key, _OAEP)).decode()
