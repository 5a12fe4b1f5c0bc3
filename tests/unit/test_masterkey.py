"""Master key wrapping (AES-256-GCM) and key files."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from keystead.crypto.masterkey import MasterKey, UnwrapError, read_key_file, write_key_file
from keystead.errors import ConfigurationError


def test_wrap_round_trips_under_the_same_context() -> None:
    """What is wrapped under a context unwraps under that context."""
    key = MasterKey.generate()
    assert key.unwrap(key.wrap(b"secret", "ctx:1"), "ctx:1") == b"secret"


def test_wrapping_is_randomised() -> None:
    """Two wraps of one secret differ (fresh nonce each time)."""
    key = MasterKey.generate()
    assert key.wrap(b"secret", "c") != key.wrap(b"secret", "c")


def test_a_blob_moved_to_another_context_does_not_unwrap() -> None:
    """The context is bound: a dataset key copied into another row fails."""
    key = MasterKey.generate()
    blob = key.wrap(b"secret", "dataset-key:a:0")
    with pytest.raises(UnwrapError):
        key.unwrap(blob, "dataset-key:b:0")


def test_another_master_key_is_named_in_the_error() -> None:
    """Unwrapping under the wrong master key says which key the blob needs."""
    first, second = MasterKey.generate(), MasterKey.generate()
    with pytest.raises(UnwrapError, match=first.fingerprint):
        second.unwrap(first.wrap(b"x", "c"), "c")


@pytest.mark.parametrize("position", [0, 7, 20, -1])
def test_any_flipped_byte_is_detected(position: int) -> None:
    """Corruption anywhere in the blob is refused, never returned as garbage."""
    key = MasterKey.generate()
    blob = bytearray(key.wrap(b"secret", "c"))
    blob[position] ^= 0x01
    with pytest.raises(UnwrapError):
        key.unwrap(bytes(blob), "c")


def test_truncated_blob_is_refused() -> None:
    """A blob shorter than header plus tag is malformed."""
    key = MasterKey.generate()
    with pytest.raises(UnwrapError, match="malformed"):
        key.unwrap(key.wrap(b"", "c")[:20], "c")


def test_repr_never_shows_the_key() -> None:
    """The key bytes never appear in repr."""
    key = MasterKey.generate()
    assert key.to_base64() not in repr(key)
    assert repr(key.key) not in repr(key)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("not base64!!", "not valid base64"), (base64.b64encode(b"short").decode(), "5 bytes")],
)
def test_bad_master_key_text_is_a_configuration_error(text: str, problem: str) -> None:
    """Garbage or a key of the wrong length is refused with the reason."""
    with pytest.raises(ConfigurationError, match=problem):
        MasterKey.from_base64(text, source="test")


def test_key_file_is_created_with_mode_600_and_never_overwritten(tmp_path: Path) -> None:
    """A new key file is private, and writing again refuses to replace it."""
    path = tmp_path / "sub" / "master.key"
    key = MasterKey.generate()
    write_key_file(path, key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_key_file(path) == key
    with pytest.raises(FileExistsError):
        write_key_file(path, MasterKey.generate())
    assert read_key_file(path) == key


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """Mode 0644 is refused with the fix in the message."""
    path = tmp_path / "master.key"
    write_key_file(path, MasterKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        read_key_file(path)


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    """The error names the file that was looked for."""
    with pytest.raises(ConfigurationError, match="does not exist"):
        read_key_file(tmp_path / "nope.key")
