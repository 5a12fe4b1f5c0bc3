"""Generating an API key's three secrets and its RSA key pair (no storage, no web)."""

from __future__ import annotations

import configparser
import io
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from keystead.crypto import tokens

RSA_BITS = 2048


@dataclass(frozen=True)
class ClientSecrets:
    """Shown once at creation; only the public parts and wrapped forms are kept."""

    access_key_id: str
    secret_signing_key: str = field(repr=False)
    secret_crypto_access_key: str = field(repr=False)
    public_key_pem: str
    encrypted_private_key_pem: str = field(repr=False)


def new_access_key_id() -> str:
    return tokens.random_id(24)


def new_signing_key() -> str:
    return tokens.random_secret(32)


def generate() -> ClientSecrets:
    """Three secrets plus an RSA key pair whose private half is sealed under the third."""
    srsa = tokens.random_secret(32)
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    # cryptography's best available PKCS#8 scheme is PBES2 (PBKDF2-HMAC-SHA256,
    # AES-256-CBC), the form the client itself writes in IDP mode.
    encryption = serialization.BestAvailableEncryption(srsa.encode())
    encrypted = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return ClientSecrets(new_access_key_id(), new_signing_key(), srsa, public, encrypted)


def credentials_file(
    *, access_key_id: str, secret_signing_key: str, secret_crypto_access_key: str, server: str
) -> str:
    """The Ubiq client's INI credentials file (``configCredentials``), profile ``default``."""
    parser = configparser.ConfigParser(interpolation=None)
    parser["default"] = {
        "ACCESS_KEY_ID": access_key_id,
        "SECRET_SIGNING_KEY": secret_signing_key,
        "SECRET_CRYPTO_ACCESS_KEY": secret_crypto_access_key,
        "SERVER": server,
    }
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()
