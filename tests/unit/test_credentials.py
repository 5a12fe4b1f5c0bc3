"""An API key's secrets and key pair, checked with the official Ubiq client's own code."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import ubiq_security
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA1

from keystead.apikeys import credentials


def test_private_key_opens_with_the_secret_crypto_access_key_only() -> None:
    """The PEM is encrypted; srsa opens it and matches the stored public key."""
    secrets_ = credentials.generate()
    assert "ENCRYPTED PRIVATE KEY" in secrets_.encrypted_private_key_pem
    key = serialization.load_pem_private_key(
        secrets_.encrypted_private_key_pem.encode(), secrets_.secret_crypto_access_key.encode()
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size >= 2048
    public = serialization.load_pem_public_key(secrets_.public_key_pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()
    # A data key wrapped to the public key the way the client expects comes back out.
    oaep = padding.OAEP(mgf=padding.MGF1(SHA1()), algorithm=SHA1(), label=None)
    assert key.decrypt(public.encrypt(b"k" * 32, oaep), oaep) == b"k" * 32


def test_access_key_ids_are_safe_in_the_clients_query_strings() -> None:
    """No '+', '/', '=' or '&': the client puts papi into URLs unescaped."""
    for _ in range(50):
        papi = credentials.generate().access_key_id
        assert papi.isalnum()
        assert len(papi) == 24


def test_secrets_are_hidden_from_repr() -> None:
    """repr of the one-time secrets shows only the public id."""
    s = credentials.generate()
    assert s.secret_signing_key not in repr(s)
    assert s.secret_crypto_access_key not in repr(s)


def test_credentials_file_is_read_by_the_official_client(tmp_path: Path) -> None:
    """ubiq_security.configCredentials loads the file Keystead writes."""
    text = credentials.credentials_file(
        access_key_id="papiABC",
        secret_signing_key="sapi-123",
        secret_crypto_access_key="srsa-456",
        server="http://127.0.0.1:8080",
    )
    path = tmp_path / "credentials"
    path.write_text(text)
    parsed = configparser.ConfigParser()
    parsed.read_string(text)
    assert parsed["default"]["access_key_id"] == "papiABC"
    # Synchronous events: the client's background reporter would otherwise try to send
    # to 127.0.0.1:8080 when the test process exits.
    config = tmp_path / "ubiq-configuration.json"
    config.write_text(json.dumps({"event_reporting": {"synchronous": True}}))
    loaded = ubiq_security.configCredentials(str(path), "default", config_file=str(config))
    assert loaded.access_key_id == "papiABC"
    assert loaded.secret_signing_key == "sapi-123"
    assert loaded.secret_crypto_access_key == "srsa-456"
    assert loaded.host == "http://127.0.0.1:8080"
