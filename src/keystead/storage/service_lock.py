"""The advisory lock that says a service is using the embedded database.

`keystead serve` holds a shared ``flock`` on ``<database>.lock`` for as long as it runs
(several services on one database may hold it together); `keystead restore` takes it
exclusively without waiting, so it refuses while any service runs, and a service does
not start while a restore holds it. The kernel drops the lock when the process ends,
however it ends, so a crashed service never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from keystead.errors import Conflict


def lock_file(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def _open(database: Path) -> int:
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(lock_file(database), os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def serving(database: Path | None) -> Iterator[None]:
    """Hold the shared lock while the service runs (nothing to hold off SQLite)."""
    if database is None:
        yield
        return
    fd = _open(database)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(
                f"`keystead restore` is replacing the database {database}; start the service "
                "again when it has finished"
            ) from None
        # Which process holds it, for restore's refusal (the last of several services).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive(database: Path) -> Iterator[None]:
    """Hold the lock alone, or refuse at once when a service holds it."""
    fd = _open(database)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            noted = os.pread(fd, 32, 0).decode(errors="replace").strip()
            which = f" (pid {noted})" if noted.isdigit() else ""
            raise Conflict(
                f"a running `keystead serve`{which} uses the database {database}; stop it "
                "(and any other `keystead serve` on this database) and run the command again"
            ) from None
        yield
    finally:
        os.close(fd)
