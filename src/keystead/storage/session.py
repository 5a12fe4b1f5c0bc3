"""Units of work. The request or command boundary owns the transaction; services never commit."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from keystead.storage.engine import SQLITE_BEGIN_OPTION


class Database:
    """An engine plus the two kinds of unit of work Keystead uses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._writer = sessionmaker(
            bind=engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}),
            expire_on_commit=False,
        )
        self._write_lock: threading.RLock | contextlib.nullcontext[None] = (
            threading.RLock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        self._autocommit = engine.execution_options(
            **(
                {SQLITE_BEGIN_OPTION: "NONE"}
                if engine.dialect.name == "sqlite"
                else {"isolation_level": "AUTOCOMMIT"}
            )
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception."""
        # SQLite has one writer at a time. Threads of this process queue on a lock, which
        # wakes the next one at once, instead of in SQLite's busy handler, which polls with
        # growing sleeps and turns contention into long tail latency. Other processes are
        # still ordered by BEGIN IMMEDIATE and the busy timeout.
        with self._write_lock, self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that is never committed (closing the session rolls it back,
        leaving the rows already read usable, unlike an explicit rollback)."""
        with self._reader() as session:
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A bare connection without a transaction: for hot read paths whose every answer
        comes from a single statement (no ORM, no BEGIN/ROLLBACK round trips)."""
        with self._autocommit.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
