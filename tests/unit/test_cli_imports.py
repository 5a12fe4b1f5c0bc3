"""The `keystead` command starts without the server's stack: the web framework, the HTTP
client, the JOSE library and the PostgreSQL driver are loaded only by the commands that use
them (`serve`, `doctor`, `idp test`, a PostgreSQL database), not by every call."""

from __future__ import annotations

import subprocess
import sys

SERVER_STACK = ("fastapi", "starlette", "uvicorn", "httpx", "httpcore", "joserfc", "psycopg")


def test_the_command_line_starts_without_the_servers_stack() -> None:
    probe = (
        "import sys, keystead.cli.main; "
        f"print(' '.join(m for m in {SERVER_STACK!r} if m in sys.modules))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert ran.stdout.split() == []


def test_a_postgresql_failure_is_mapped_once_its_driver_is_loaded() -> None:
    import psycopg

    from keystead.errors import Conflict, Unavailable
    from keystead.storage.failures import as_domain

    assert isinstance(as_domain(psycopg.errors.UniqueViolation("dup")), Conflict)
    assert isinstance(as_domain(psycopg.errors.DeadlockDetected("deadlock")), Conflict)
    assert isinstance(as_domain(psycopg.OperationalError("connection refused")), Unavailable)
