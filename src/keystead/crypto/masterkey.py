"""The master key-encryption key (KEK) and AES-256-GCM wrapping under it.

Every secret Keystead must be able to read back (signing secrets, dataset keys, CA keys)
is stored as ``wrap(plaintext, context)``. The context is bound as associated data, so a
blob copied into another row (another dataset, another key number) fails to unwrap.

Blob layout: ``b"K1" || key_id(4) || nonce(12) || ciphertext || tag(16)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keystead.errors import ConfigurationError, KeysteadError

_MAGIC = b"K1"
_KEY_ID_LEN = 4
_NONCE_LEN = 12
_HEADER_LEN = len(_MAGIC) + _KEY_ID_LEN + _NONCE_LEN


class UnwrapError(KeysteadError):
    """A wrapped blob is corrupt, was made under another key, or belongs to another context."""

    status = 500


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit key-encryption key. Its bytes never appear in ``repr``."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ConfigurationError(
                f"the master key must be 32 bytes (base64 of 32 random bytes); got {len(self.key)}"
            )

    @property
    def key_id(self) -> bytes:
        """A short public identifier of the key, stored with every blob."""
        return hashlib.sha256(b"keystead-kek-id:" + self.key).digest()[:_KEY_ID_LEN]

    @property
    def fingerprint(self) -> str:
        """Human-readable form of :attr:`key_id` for logs and error messages."""
        return self.key_id.hex()

    def wrap(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        sealed = AESGCM(self.key).encrypt(nonce, plaintext, context.encode())
        return _MAGIC + self.key_id + nonce + sealed

    def unwrap(self, blob: bytes, context: str) -> bytes:
        if len(blob) < _HEADER_LEN + 16 or blob[: len(_MAGIC)] != _MAGIC:
            raise UnwrapError("wrapped secret is malformed")
        key_id = blob[len(_MAGIC) : len(_MAGIC) + _KEY_ID_LEN]
        if key_id != self.key_id:
            raise UnwrapError(
                f"secret was wrapped under master key {key_id.hex()}, not {self.fingerprint}"
            )
        nonce = blob[len(_MAGIC) + _KEY_ID_LEN : _HEADER_LEN]
        try:
            return AESGCM(self.key).decrypt(nonce, blob[_HEADER_LEN:], context.encode())
        except InvalidTag as exc:
            raise UnwrapError("wrapped secret failed authentication") from exc

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_base64(cls, text: str, *, source: str) -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(f"the master key from {source} is not valid base64") from exc
        if len(raw) != 32:
            raise ConfigurationError(
                f"the master key from {source} decodes to {len(raw)} bytes; it must be 32"
            )
        return cls(raw)

    def to_base64(self) -> str:
        return base64.b64encode(self.key).decode()


def read_key_file(path: Path) -> MasterKey:
    """Load a master key file, refusing files other users can read."""
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigurationError(f"master key file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read master key file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise ConfigurationError(
            f"master key file {path} is readable by other users (mode {mode:o}); chmod 600 it"
        )
    return MasterKey.from_base64(text, source=str(path))


def write_key_file(path: Path, key: MasterKey) -> None:
    """Create a new key file with mode 0600; never overwrites an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.to_base64() + "\n")
