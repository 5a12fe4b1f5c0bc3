"""The encrypted data key (EDK) of unstructured encryption: an opaque blob the client embeds
in every ciphertext and sends back to decrypt (no web, no database).

It names the dataset and key version it was sealed under and the API key that asked for
it, and seals the data key with AES-256-GCM under that dataset key version, with the
header as associated data. Decryption reads the header, re-checks access to the named
dataset for the *calling* key, and unseals.

Layout (89 bytes for a 32-byte data key)::

    version 0x01 | dataset id (16) | key number (4, big-endian) | creator key id (16)
    | nonce (12) | sealed data key + tag (16)
"""

from __future__ import annotations

import os
import struct
import uuid
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keystead.errors import BadRequest

VERSION = 1
_HEADER = struct.Struct(">B16sI16s")
_NONCE = 12
DATA_KEY_BYTES = 32  # aes-256-gcm
ALGORITHM = "aes-256-gcm"


class EdkError(BadRequest):
    """The encrypted data key is not one Keystead issued, or was altered."""


class EdkHeader(NamedTuple):  # made on every encryption and decryption: a NamedTuple
    dataset_id: uuid.UUID
    key_number: int
    creator_key_id: uuid.UUID


def seal(data_key: bytes, header: EdkHeader, dataset_key: bytes) -> bytes:
    aad = _HEADER.pack(
        VERSION, header.dataset_id.bytes, header.key_number, header.creator_key_id.bytes
    )
    nonce = os.urandom(_NONCE)
    return aad + nonce + AESGCM(dataset_key).encrypt(nonce, data_key, aad)


def read_header(blob: bytes) -> EdkHeader:
    """The dataset, key version and creator an EDK names (not yet authenticated)."""
    if len(blob) != _HEADER.size + _NONCE + DATA_KEY_BYTES + 16:
        raise EdkError("encrypted_data_key is not one Keystead issued (wrong length)")
    version, dataset, number, creator = _HEADER.unpack_from(blob)
    if version != VERSION:
        raise EdkError(f"encrypted_data_key has unknown version {version}")
    return EdkHeader(uuid.UUID(bytes=dataset), number, uuid.UUID(bytes=creator))


def open_sealed(blob: bytes, dataset_key: bytes) -> bytes:
    """The data key; EdkError if the blob was altered or sealed under another key."""
    aad = blob[: _HEADER.size]
    nonce = blob[_HEADER.size : _HEADER.size + _NONCE]
    try:
        return AESGCM(dataset_key).decrypt(nonce, blob[_HEADER.size + _NONCE :], aad)
    except InvalidTag as exc:
        raise EdkError("encrypted_data_key failed authentication (altered or truncated)") from exc
