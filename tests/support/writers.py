"""Another thread inside a write transaction, for tests of work that must not wait for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from keystead.storage.session import Database


@contextmanager
def writer_held(db: Database) -> Iterator[threading.Event]:
    """A thread of this process holds a write transaction (on SQLite, the write lock) until
    the block ends or the event it yields is set."""
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.transaction():
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    if not inside.wait(10):
        raise RuntimeError("the writing thread did not start its transaction")
    try:
        yield release
    finally:
        release.set()
        holder.join()
