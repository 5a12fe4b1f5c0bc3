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
from collections.abc import Callable, Iterator
from pathlib import Path

from keystead.errors import Conflict


def lock_file(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def flocked(path: Path, *, shared: bool, refusal: Callable[[int], Exception]) -> Iterator[int]:
    """Hold an advisory lock on ``path`` (made 0600 if missing) for the block, or raise
    ``refusal(fd)`` at once when another process holds it in a conflicting mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise refusal(fd) from None
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def serving(database: Path | None) -> Iterator[None]:
    """Hold the shared lock while the service runs (nothing to hold off SQLite)."""
    if database is None:
        yield
        return
    restoring = Conflict(
        f"`keystead restore` is replacing the database {database}; start the service "
        "again when it has finished"
    )
    with flocked(lock_file(database), shared=True, refusal=lambda fd: restoring) as fd:
        # Which process holds it, for restore's refusal (the last of several services).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield


def exclusive(database: Path) -> contextlib.AbstractContextManager[int]:
    """Hold the lock alone, or refuse at once when a service holds it."""

    def in_use(fd: int) -> Exception:
        noted = os.pread(fd, 32, 0).decode(errors="replace").strip()
        which = f" (pid {noted})" if noted.isdigit() else ""
        return Conflict(
            f"a running `keystead serve` (or another keystead command){which} uses the "
            f"database {database}; stop it (and any other on this database) and run the "
            "command again"
        )

    return flocked(lock_file(database), shared=False, refusal=in_use)
