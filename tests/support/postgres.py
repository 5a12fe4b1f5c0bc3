"""A PostgreSQL server of a test's own, which the test may stop and start (the suite's shared
server serves every other test and must stay up). Built with the machine's own PostgreSQL
binaries (`initdb`, `pg_ctl`) in a temporary directory, on a free loopback port, with trust
authentication; run as the `postgres` user when the tests run as root (PostgreSQL refuses
to run as root)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return on_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    def __init__(self) -> None:
        # Under /tmp itself: the postgres user cannot enter pytest's private directories.
        directory = self.directory = Path(tempfile.mkdtemp(prefix="keystead-pg-"))
        self.data = directory / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            directory.chmod(0o755)
            shutil.chown(directory, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args], check=True, capture_output=True, timeout=120, cwd=self.directory
        )

    def create(self) -> PrivatePostgres:
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
            str(self.directory / "server.log"), "-w", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop now: every connection is cut (`-m fast`), as a restart of the server does."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def private_schema(base_url: str, prefix: str) -> Iterator[str]:
    """A fresh schema on the PostgreSQL server at ``base_url``, dropped afterwards; yields
    the URL whose connections work in it (``search_path``)."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine("postgresql+psycopg://" + base_url.split("://", 1)[1])
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        try:
            yield f"{base_url}?options=-csearch_path%3D{name}"
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        admin.dispose()
