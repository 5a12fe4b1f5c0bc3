"""How `keystead serve` meets the network: HTTPS with its own certificate, and behind a
TLS-terminating proxy, forwarded headers believed only from the proxies it is told of."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage.models import SignInFailure
from tests.conftest import LiveServer, start_server, stop_server
from tests.functional.test_cli import embedded_cli
from tests.support.accounts import FirstAccount
from tests.support.certs import write_pair

COOKIE = "keystead_session"


def self_signed(directory: Path, name: str = "server") -> tuple[Path, Path]:
    return write_pair(directory, name)


@pytest.fixture
def https_server(
    runtime: Runtime, settings: Settings, tmp_path: Path, first_account: FirstAccount
) -> Iterator[tuple[LiveServer, Path]]:
    cert, key = self_signed(tmp_path)
    server = start_server(
        settings,
        tmp_path / "server.log",
        # No public URL given: the default follows the scheme served.
        {"KEYSTEAD_TLS_CERT_FILE": str(cert), "KEYSTEAD_TLS_KEY_FILE": str(key)},
    )
    yield server, cert
    stop_server(server)


def test_serve_answers_https_with_its_certificate_and_secure_cookies(
    https_server: tuple[LiveServer, Path], first_account: FirstAccount
) -> None:
    server, cert = https_server
    assert server.url.startswith("https://")
    trusting = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=server.url, verify=trusting, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        signed_in = client.post(
            "/api/admin/v1/session",
            json={"email": first_account.admin_email, "password": first_account.admin_password},
        )
        assert signed_in.status_code == 200, signed_in.text
        cookie = signed_in.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
    # The same port does not speak plain HTTP, and a client that checks certificates
    # against the system's authorities refuses this one.
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url.replace("https://", "http://") + "/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=5)


@pytest.mark.engines("sqlite")
def test_bad_tls_files_are_refused_before_serving(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    other_cert, _ = self_signed(tmp_path, "other")
    cli = embedded_cli(tmp_path)
    cli.ok("init")
    cli.fails("serve", "--tls-cert", str(cert), expect=["needs both a certificate and its key"])
    cli.fails(
        "serve",
        "--tls-cert",
        str(tmp_path / "missing.crt"),
        "--tls-key",
        str(key),
        expect=["cannot read", "missing.crt", "No such file"],
    )
    cli.fails(
        "serve",
        "--tls-cert",
        str(other_cert),
        "--tls-key",
        str(key),
        expect=["is not the key of the certificate"],
    )
    cli.fails(
        "serve",
        expect=["holds no PEM certificate"],
        env={"KEYSTEAD_TLS_CERT_FILE": str(key), "KEYSTEAD_TLS_KEY_FILE": str(key)},
    )
    expired, expired_key = write_pair(
        tmp_path, "expired", not_after=datetime.now(UTC) - timedelta(days=1)
    )
    cli.fails(
        "serve", "--tls-cert", str(expired), "--tls-key", str(expired_key), expect=["expired on"]
    )
    # An encrypted key is refused, never prompted for.
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        serialization.load_pem_private_key(key.read_bytes(), None).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    cli.fails(
        "serve",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(locked),
        expect=["encrypted with a passphrase", "openssl pkey"],
    )
    # A FIFO would block the start for ever and a device never end: refused unread.
    fifo = tmp_path / "fifo.crt"
    os.mkfifo(fifo)
    for special in (fifo, Path("/dev/zero")):
        cli.fails(
            "serve",
            "--tls-cert",
            str(special),
            "--tls-key",
            str(key),
            expect=[f"{special} is not a regular file"],
        )
    cli.fails("serve", "--port", "70000", expect=["KEYSTEAD_PORT", "65535"])
    assert "pass phrase" not in " ".join(r.output for r in cli.transcript)
    cli.assert_no_tracebacks()


@pytest.fixture
def proxied_server(
    runtime: Runtime, settings: Settings, tmp_path: Path, first_account: FirstAccount
) -> Iterator[LiveServer]:
    """Behind a proxy on loopback: 127.0.0.1 is the trusted proxy, the public URL https."""
    server = start_server(
        settings,
        tmp_path / "server.log",
        {"KEYSTEAD_TRUSTED_PROXIES": "127.0.0.1", "KEYSTEAD_PUBLIC_URL": "https://keys.example"},
    )
    yield server
    stop_server(server)


def test_a_trusted_proxy_names_the_client_and_the_scheme(
    proxied_server: LiveServer, first_account: FirstAccount, runtime: Runtime
) -> None:
    """Throttling counts the address the proxy forwarded (so one client's guesses do not
    lock out everyone behind the proxy), and a sign-in's cookie is Secure."""
    with httpx.Client(base_url=f"{proxied_server.url}/api/admin/v1", timeout=30) as anon:
        for n in range(21):
            guess = anon.post(
                "/session",
                json={"email": f"guess{n}@example.com", "password": "password guess"},
                headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
            )
            assert guess.status_code == 401, guess.text

        def sign_in_from(address: str) -> httpx.Response:
            return anon.post(
                "/session",
                json={
                    "email": first_account.admin_email,
                    "password": first_account.admin_password,
                },
                headers={"X-Forwarded-For": address, "X-Forwarded-Proto": "https"},
            )

        assert sign_in_from("203.0.113.7").status_code == 429
        other_client = sign_in_from("198.51.100.1")
        assert other_client.status_code == 200, other_client.text
        assert "Secure" in other_client.headers["set-cookie"]
    with runtime.db.read() as session:
        subjects = set(session.scalars(select(SignInFailure.subject)))
    assert "203.0.113.7" in subjects
    assert "127.0.0.1" not in subjects
