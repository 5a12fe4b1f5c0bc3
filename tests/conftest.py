"""Shared fixtures: both database engines, an open installation, a live server.

Every test that takes ``runtime`` (or anything built on it) runs once on SQLite and once
on PostgreSQL. Each engine gets one migrated database per test session (PostgreSQL: a
private schema in the ``test`` database); tables are emptied before every test, so a
live server started once per engine always sees the state the test set up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, text

from keystead.accounts import service as accounts
from keystead.crypto.masterkey import MasterKey
from keystead.errors import Conflict
from keystead.idp import service as idp
from keystead.runtime import Runtime, open_runtime
from keystead.settings import Settings
from keystead.storage.models import Base
from tests.factories import ACTOR
from tests.support import accounts as support_accounts
from tests.support.accounts import FirstAccount
from tests.support.postgres import private_schema
from tests.support.scim import Scim

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
SERVER_KEEP_MS = 5  # the session server's KEYSTEAD_LOOKUP_KEEP_MS
KEPT_TABLES = {"keystead_meta"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engines",
        default=os.environ.get("KEYSTEAD_TEST_ENGINES", "sqlite,postgresql"),
        help="comma-separated database engines to run against (sqlite, postgresql)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine_name" in metafunc.fixturenames:
        engines = [e.strip() for e in metafunc.config.getoption("--engines").split(",") if e]
        only = metafunc.definition.get_closest_marker("engines")
        if only is not None:  # a behaviour that exists on some engines only
            engines = [e for e in engines if e in only.args]
        metafunc.parametrize("engine_name", engines, scope="session")


@pytest.fixture(scope="session")
def master_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture(scope="session")
def postgres_base_url() -> str:
    return os.environ.get("KEYSTEAD_TEST_POSTGRES_URL", DEFAULT_PG)


def _sqlalchemy_pg(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.fixture(scope="session")
def database_url(
    engine_name: str, tmp_path_factory: pytest.TempPathFactory, postgres_base_url: str
) -> Iterator[str]:
    """A freshly created, empty database for this test session and engine."""
    if engine_name == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'keystead.db'}"
        return
    if engine_name != "postgresql":
        raise pytest.UsageError(f"unknown engine {engine_name!r}")
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(private_schema(postgres_base_url, "ks_test"))
        except Exception as exc:  # the reason is in the message; the suite cannot go on
            pytest.fail(
                f"PostgreSQL is not reachable at {postgres_base_url} ({type(exc).__name__}); "
                "start it (see README) or run with --engines sqlite",
                pytrace=False,
            )
        yield url


@pytest.fixture(scope="session")
def settings(
    database_url: str, master_key: MasterKey, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        database_url=database_url,
        master_key=master_key.to_base64(),
        data_dir=tmp_path_factory.mktemp("data"),
        public_url="http://127.0.0.1:8080",
        idp_allow_private_addresses=True,
    )


@pytest.fixture(scope="session")
def session_runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = open_runtime(settings, create=True)
    yield runtime
    runtime.close()


def empty_tables(runtime: Runtime) -> None:
    """Empty every table but the kept ones.

    The session's live server may still be answering the previous test's last
    requests (a browser page polls until it is closed); on PostgreSQL such a
    reader and this TRUNCATE can deadlock, PostgreSQL cancels one of the two, and
    emptying is simply tried again.
    """
    tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name not in KEPT_TABLES]
    for attempt in range(5):
        try:
            with runtime.db.write() as session:
                if runtime.db.dialect == "postgresql":
                    names = ", ".join(f'"{t.name}"' for t in tables)
                    session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                else:
                    for table in tables:
                        session.execute(table.delete())
            return
        except Conflict:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


@pytest.fixture
def runtime(session_runtime: Runtime) -> Runtime:
    """The installation on this engine, with every table empty."""
    empty_tables(session_runtime)
    return session_runtime


@pytest.fixture
def first_account(runtime: Runtime) -> FirstAccount:
    """The first account, its admin past the one-time password, with an admin API token."""
    return support_accounts.first_account(runtime)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keystead_command() -> str:
    """The installed `keystead` console script of this interpreter."""
    candidate = Path(sys.executable).parent / "keystead"
    found = str(candidate) if candidate.exists() else shutil.which("keystead")
    if not found:
        raise RuntimeError("the keystead command is not installed (pip install -e .)")
    return found


@dataclass
class LiveServer:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self, start: int = 0) -> list[dict[str, Any]]:
        """The server's JSON log records, from character ``start`` of its log on."""
        records = []
        for line in self.log()[start:].splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records


def start_server(
    settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None
) -> LiveServer:
    port = free_port()
    scheme = "https" if (extra_env or {}).get("KEYSTEAD_TLS_CERT_FILE") else "http"
    env = {
        **os.environ,
        "KEYSTEAD_DATABASE_URL": settings.database_url or "",
        "KEYSTEAD_MASTER_KEY": settings.master_key.get_secret_value()
        if settings.master_key
        else "",
        "KEYSTEAD_DATA_DIR": str(settings.data_dir),
        "KEYSTEAD_PUBLIC_URL": f"{scheme}://127.0.0.1:{port}",
        "KEYSTEAD_LOG_FORMAT": "json",
        # The stand-in Entra tenant runs on loopback: the operator's switch for a test or
        # air-gapped identity provider is on (tests that need it off set it).
        "KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES": "true",
        **(extra_env or {}),
    }
    return serve(env, log_path, port, scheme)


def serve(env: dict[str, str], log_path: Path, port: int, scheme: str = "http") -> LiveServer:
    """`keystead serve` on 127.0.0.1:``port`` with exactly ``env``, once it answers."""
    handle = log_path.open("wb")
    process = subprocess.Popen(
        [keystead_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a loaded machine starts it slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"keystead serve exited early:\n{log_path.read_text()}")
        try:
            # Readiness only: a test of HTTPS checks the certificate itself.
            if httpx.get(f"{url}/healthz", timeout=1, verify=False).status_code == 200:
                return LiveServer(url, log_path, process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"keystead serve did not answer within 60 s:\n{log_path.read_text()}")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def _session_server(
    session_runtime: Runtime, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # A one-second refetch cooldown lets the key-rotation tests run without waiting
    # the default five minutes; the cooldown itself is tested on the cache.
    # Its data-plane lookups are kept (PostgreSQL) for 5 ms rather than 50, so that a test
    # waits that long after each change it commits (see live_server).
    server = start_server(
        settings,
        tmp_path_factory.mktemp("server") / "server.log",
        {
            "KEYSTEAD_JWKS_REFETCH_COOLDOWN_SECONDS": "1",
            "KEYSTEAD_LOOKUP_KEEP_MS": str(SERVER_KEEP_MS),
        },
    )
    yield server
    stop_server(server)


@pytest.fixture
def live_server(
    _session_server: LiveServer, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> LiveServer:
    """`keystead serve` on 127.0.0.1 (one per engine), over the emptied database."""
    if runtime.db.dialect == "postgresql":
        # The test process is another node of the server's: a change it commits is obeyed
        # by the server's data plane once the server's kept lookups may have expired
        # (storage.driver.KeptReader), so each commit here waits that long.
        commit = runtime.db.transaction

        @contextmanager
        def settled() -> Iterator[Connection]:
            with commit() as connection:
                yield connection
            time.sleep(SERVER_KEEP_MS / 1000)

        monkeypatch.setattr(runtime.db, "transaction", settled)
    return _session_server


@pytest.fixture
def admin_api(live_server: LiveServer, first_account: FirstAccount) -> Iterator[httpx.Client]:
    """An httpx client for the admin API, authenticated as the first account's admin."""
    with httpx.Client(
        base_url=f"{live_server.url}/api/admin/v1",
        headers={"Authorization": f"Bearer {first_account.admin_token}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def scim(live_server: LiveServer, runtime: Runtime, first_account: FirstAccount) -> Iterator[Scim]:
    """A SCIM client of the first account, its integration enabled and a token issued."""
    account_id = uuid.UUID(first_account.customer_id)
    with runtime.db.write() as s:
        account = accounts.get_account(s, account_id)
        token = idp.rotate_scim_token(s, account, actor=ACTOR).token
        idp.set_enabled(s, account, True, actor=ACTOR, master=runtime.master)
    base = f"{live_server.url}/{account_id}/api/v3/scim"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        yield Scim(client, account_id, token, base, runtime)
