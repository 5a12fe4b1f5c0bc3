"""The master key-encryption keys (KEKs) and AES-256-GCM wrapping under them.

Every secret Keystead must be able to read back (signing secrets, dataset keys, CA keys)
is stored as ``wrap(plaintext, context)``. The context is bound as associated data, so a
blob copied into another row (another dataset, another key number) fails to unwrap.

Blob layout: ``b"K1" || key_id(4) || nonce(12) || ciphertext || tag(16)``.

A :class:`MasterKey` is a keyring: its first key wraps, every key it holds unwraps the
blobs made under it (chosen by the blob's key id). Several keys are held only while a
rotation is under way (``masterkey_rotation``). One loaded from a key file follows that file:
before wrapping, and when it meets a key id it does not hold, it looks whether the file was
replaced (one ``stat``) and, only if it was, reads it again. So a running service picks up
a rotation's new key without a restart, and never wraps under a key the file has retired.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keystead.errors import ConfigurationError, KeysteadError

_MAGIC = b"K1"
_KEY_ID_LEN = 4
_NONCE_LEN = 12
_HEADER_LEN = len(_MAGIC) + _KEY_ID_LEN + _NONCE_LEN
_KEY_LEN = 32
# Keys in a file or in KEYSTEAD_MASTER_KEY: base64 text, one a line or separated by commas.
_SEPARATORS = re.compile(r"[,\r\n]+")

log = logging.getLogger(__name__)


class UnwrapError(KeysteadError):
    """A wrapped blob is corrupt, was made under another key, or belongs to another context."""

    status = 500


def key_id_of(blob: bytes) -> bytes | None:
    """The id of the master key ``blob`` was wrapped under, or None when it is malformed."""
    if len(blob) < _HEADER_LEN + 16 or blob[: len(_MAGIC)] != _MAGIC:
        return None
    return blob[len(_MAGIC) : len(_MAGIC) + _KEY_ID_LEN]


# Where the key id sits in a blob: (1-based start, length), as SQL ``substr`` takes it.
KEY_ID_POSITION = (len(_MAGIC) + 1, _KEY_ID_LEN)


@dataclass(frozen=True)
class Kek:
    """One 256-bit key-encryption key. Its bytes never appear in ``repr``."""

    key: bytes = field(repr=False)
    aead: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) != _KEY_LEN:
            raise ConfigurationError(
                f"the master key must be 32 bytes (base64 of 32 random bytes); got {len(self.key)}"
            )
        object.__setattr__(self, "aead", AESGCM(self.key))

    @property
    def key_id(self) -> bytes:
        """A short public identifier of the key, stored with every blob."""
        return hashlib.sha256(b"keystead-kek-id:" + self.key).digest()[:_KEY_ID_LEN]

    def to_base64(self) -> str:
        return base64.b64encode(self.key).decode()

    @classmethod
    def generate(cls) -> Kek:
        return cls(secrets.token_bytes(_KEY_LEN))


def _ring(keks: Iterable[Kek]) -> dict[bytes, Kek]:
    """The keys by id, each once, in order (the first wraps)."""
    ring: dict[bytes, Kek] = {}
    for kek in keks:
        ring.setdefault(kek.key_id, kek)
    return ring


class MasterKey:
    """The master keys: the first wraps, each unwraps what was wrapped under it."""

    def __init__(self, key: bytes, *others: bytes, source: Path | None = None) -> None:
        self._ring = _ring(Kek(k) for k in (key, *others))
        self._source = source
        self._seen = _signature(source) if source is not None else None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MasterKey(ids={self.fingerprints})"

    def __eq__(self, other: object) -> bool:
        """The same keys in the same order (a keyring that follows a file may change)."""
        return isinstance(other, MasterKey) and self.keks == other.keks

    __hash__ = None  # type: ignore[assignment]  # equal keyrings may not stay equal

    @property
    def key(self) -> bytes:
        """The bytes of the key that wraps."""
        return self.keks[0].key

    @property
    def key_id(self) -> bytes:
        """The id of the key that wraps."""
        return next(iter(self._ring))

    @property
    def fingerprint(self) -> str:
        """Human-readable form of :attr:`key_id` for logs and error messages."""
        return self.key_id.hex()

    @property
    def fingerprints(self) -> list[str]:
        """The ids of every key held, the wrapping one first."""
        return [key_id.hex() for key_id in self._ring]

    @property
    def keks(self) -> tuple[Kek, ...]:
        return tuple(self._ring.values())

    def wrap(self, plaintext: bytes, context: str) -> bytes:
        self._follow_file()
        key_id, kek = next(iter(self._ring.items()))
        nonce = os.urandom(_NONCE_LEN)
        return _MAGIC + key_id + nonce + kek.aead.encrypt(nonce, plaintext, context.encode())

    def unwrap(self, blob: bytes, context: str) -> bytes:
        key_id = key_id_of(blob)
        if key_id is None:
            raise UnwrapError("wrapped secret is malformed")
        kek = self._ring.get(key_id)
        if kek is None:
            self._follow_file()
            kek = self._ring.get(key_id)
        if kek is None:
            raise UnwrapError(
                f"secret was wrapped under master key {key_id.hex()}, not {self.fingerprint}"
            )
        nonce = blob[len(_MAGIC) + _KEY_ID_LEN : _HEADER_LEN]
        try:
            return kek.aead.decrypt(nonce, blob[_HEADER_LEN:], context.encode())
        except InvalidTag as exc:
            raise UnwrapError("wrapped secret failed authentication") from exc

    def _follow_file(self) -> None:
        """Read the key file again if it was replaced since it was last read. Its keys come
        first (its first key wraps from now on); keys it no longer holds still unwrap."""
        if self._source is None:
            return
        now = _signature(self._source)
        if now is None or now == self._seen:
            return
        with self._lock:
            if now == self._seen:
                return
            try:
                found = read_key_file(self._source)
            except ConfigurationError as exc:  # keep serving with the keys already held
                log.warning("master key file not reloaded: %s", exc.message)
            else:
                self._ring = _ring((*found.keks, *self.keks))
            self._seen = now

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(_KEY_LEN))

    @classmethod
    def from_base64(cls, text: str, *, source: str, path: Path | None = None) -> MasterKey:
        """Keys as base64 text, one a line or separated by commas; the first one wraps."""
        parts = [p.strip() for p in _SEPARATORS.split(text) if p.strip()]
        if not parts:
            raise ConfigurationError(f"the master key from {source} is empty")
        raw = []
        for part in parts:
            try:
                key = base64.b64decode(part, validate=True)
            except ValueError as exc:  # binascii.Error too
                raise ConfigurationError(
                    f"the master key from {source} is not valid base64"
                ) from exc
            if len(key) != _KEY_LEN:
                raise ConfigurationError(
                    f"the master key from {source} decodes to {len(key)} bytes; it must be 32"
                )
            raw.append(key)
        return cls(*raw, source=path)

    def to_base64(self) -> str:
        return self.keks[0].to_base64()


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when the file is replaced (the rotation renames a new file over it)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size


def read_key_file(path: Path) -> MasterKey:
    """Load a master key file, refusing files other users can read. The keyring follows
    the file from then on (see :class:`MasterKey`)."""
    before = _signature(path)  # a replacement while reading is seen on the next look
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO would wait for ever, a device never end
            raise ConfigurationError(f"master key file {path} is not a regular file")
        mode = st.st_mode & 0o777
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigurationError(f"master key file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read master key file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise ConfigurationError(
            f"master key file {path} is readable by other users (mode {mode:o}); chmod 600 it"
        )
    ring = MasterKey.from_base64(text, source=str(path), path=path)
    ring._seen = before
    return ring


def _key_file_text(keks: tuple[Kek, ...]) -> str:
    return "".join(k.to_base64() + "\n" for k in keks)


def write_key_file(path: Path, key: MasterKey) -> None:
    """Create a new key file with mode 0600; never overwrites an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(_key_file_text(key.keks))


def replace_key_file(path: Path, keks: tuple[Kek, ...]) -> None:
    """Replace the key file with ``keks`` (the first wraps) atomically and durably: a new
    file (mode 0600) written and flushed to disk beside it, renamed over it, the directory
    flushed. At every moment the path holds either the old file or the new one."""
    temp = path.with_name(f".{path.name}.new")
    temp.unlink(missing_ok=True)  # left by an interrupted run; never trusted
    owner = path.stat() if path.exists() else None
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if owner is not None and (owner.st_uid, owner.st_gid) != (os.geteuid(), os.getegid()):
            # The service reading the file must still read it: keep its owner (an operator
            # who cannot, e.g. not root, is refused before anything changed).
            try:
                os.fchown(fd, owner.st_uid, owner.st_gid)
            except PermissionError:
                os.close(fd)
                raise ConfigurationError(
                    f"the key file {path} belongs to another user; rotate as that user "
                    "(or as root), so the service can still read the new key"
                ) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(_key_file_text(keks))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
