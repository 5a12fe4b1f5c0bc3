"""Console admin passwords, hashed with argon2id."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    # Verifying against this keeps a login for an unknown email as slow as a wrong password.
    return _hasher.hash("keystead-no-such-user")


def prepare() -> None:
    """Make the stand-in hash now (at start-up), so that the first sign-in for an unknown
    email is not the one that pays for making it (a timing tell)."""
    _dummy_hash()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; runs a full verification even without a hash."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
