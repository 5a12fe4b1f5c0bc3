"""Wrapping data keys for the client: RSA-OAEP with SHA-1 and MGF1-SHA-1, empty label,
standard padded base64 — what the Ubiq client unwraps (no web, no database).

:func:`wrapping_key` is the one place that decides which public key a response's data
keys are wrapped to.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from keystead.errors import Unauthenticated

# SHA-1 here is OAEP's mask and label hash, which the client fixes; it is not a signature.
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303


@lru_cache(maxsize=65536)
def _load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("API key public key is not RSA")
    return key


def wrapping_key(*, public_key_pem: str | None, key_name: str) -> rsa.RSAPublicKey:
    """The public key to wrap data keys to for this caller.

    Manual API keys wrap to their own key pair. Keys without one (auto-provisioned keys)
    need the certificate from the SSO exchange, which this request did not carry.
    """
    if public_key_pem is None:
        raise Unauthenticated(
            f"API key {key_name!r} has no key pair of its own: it works only with a "
            "certificate from the SSO exchange (IDP mode)"
        )
    return _load_public_key(public_key_pem)


def wrap(data_key: bytes, public_key: rsa.RSAPublicKey) -> str:
    return base64.b64encode(public_key.encrypt(data_key, _OAEP)).decode()
