"""Random identifiers and secrets, their storage hashes, and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# URL-safe alphabet: the Ubiq client puts access key ids into query strings unescaped,
# so they must not contain `+`, `/`, `=` or `&`.
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def random_id(length: int = 24) -> str:
    """A public identifier from [A-Za-z0-9] (about 5.95 bits a character)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def random_secret(nbytes: int = 32) -> str:
    """A secret string from the URL-safe base64 alphabet, without padding."""
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """Storage hash of a high-entropy bearer token.

    Tokens here carry ≥ 256 bits of randomness, so a fast hash is enough: no password
    stretching is needed to make a database dump useless.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality for secrets."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
