"""Units of work. The request or command boundary owns the transaction; services never commit.

A database failure inside a unit of work leaves it as a domain error (``storage.failures``):
a uniqueness collision with a concurrent write is a Conflict, an unreachable database is
Unavailable, on every surface alike."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from keystead.blocking import WouldWait, may_wait
from keystead.storage.driver import KEEP_SECONDS, DriverQuery, KeptReader, Reader, Row, SQLiteReader
from keystead.storage.engine import BUSY_TIMEOUT_MS, NOWAIT, SQLITE_BEGIN_OPTION
from keystead.storage.failures import TRANSLATED


class WriterBusy(WouldWait):
    """Another writer holds SQLite's write lock; nothing was done (see Database.write_now)."""


@contextmanager
def _orm(unit: AbstractContextManager[Connection]) -> Iterator[Session]:
    """An ORM session joined to a unit of work's transaction (SQLAlchemy's default for a
    connection in one: the session may roll it back, never commits it), flushed before the
    unit commits."""
    with unit as connection, Session(connection, expire_on_commit=False) as session:
        yield session
        session.flush()


class Database:
    """An engine plus the two kinds of unit of work Keystead uses."""

    def __init__(self, engine: Engine, *, keep_seconds: float = KEEP_SECONDS) -> None:
        self.engine = engine
        sqlite = engine.dialect.name == "sqlite"
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._writer = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        self._writer_now = (
            engine.execution_options(**{SQLITE_BEGIN_OPTION: NOWAIT}) if sqlite else None
        )
        self._write_lock: threading.RLock | contextlib.nullcontext[None] = (
            threading.RLock() if sqlite else contextlib.nullcontext()
        )
        self._autocommit = engine.execution_options(
            **({SQLITE_BEGIN_OPTION: "NONE"} if sqlite else {"isolation_level": "AUTOCOMMIT"})
        )
        self._readers = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        # Its own lock: a thread opening its reader must not wait for the write lock (on
        # the event loop, that would hold every request for as long as a write takes).
        self._reader_list_lock = threading.Lock()
        self._reader_args: tuple[list[Any], dict[str, Any]] | None = None
        if sqlite:  # a reader of its own per thread, on a file (not in memory)
            args, kwargs = engine.dialect.create_connect_args(engine.url)
            target = str(args[0]) if args else ":memory:"
            if target != ":memory:" and "mode=memory" not in target:
                self._reader_args = (list(args), dict(kwargs))
        # Across a network (PostgreSQL) the process shares one reader that keeps answers
        # briefly; every commit of this process drops them (see transaction()).
        self._kept = (
            KeptReader(self._driver_connection, keep_seconds)
            if not sqlite and keep_seconds > 0
            else None
        )

    def _waits_on_network(self) -> None:
        """On PostgreSQL every statement waits on the network: work on the event loop
        (:func:`keystead.blocking.no_waiting`) must move to a thread before it opens a
        connection."""
        if self._writer_now is None and not may_wait():
            raise WouldWait("a PostgreSQL statement waits on the network")

    @contextmanager
    def _driver_connection(self) -> Iterator[Any]:
        with TRANSLATED, self._autocommit.connect() as connection:
            yield connection.connection.driver_connection

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def write(self) -> AbstractContextManager[Session]:
        """:meth:`transaction` with an ORM session on its connection."""
        return _orm(self.transaction())

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """The unit of work of every write: a connection whose transaction commits on success
        and rolls back on any exception (Core statements; :meth:`write` adds the ORM). Under
        :func:`keystead.blocking.no_waiting` (work the executor runs on the event loop) it
        starts as :meth:`write_now` does: a write that would wait raises WriterBusy before
        doing anything."""
        if not may_wait() and self._writer_now is not None:
            with self._transaction_now() as connection:
                yield connection
            return
        self._waits_on_network()
        # SQLite has one writer at a time. Threads of this process queue on a lock, which
        # wakes the next one at once, instead of in SQLite's busy handler, which polls with
        # growing sleeps and turns contention into long tail latency. Other processes are
        # still ordered by BEGIN IMMEDIATE and the busy timeout.
        try:
            with TRANSLATED, self._write_lock, self._writer.begin() as connection:
                yield connection
        finally:
            if self._kept is not None:
                self._kept.changed()

    @property
    def writes_now(self) -> bool:
        """Whether :meth:`write_now` is available (SQLite: a write is local and brief)."""
        return self._writer_now is not None

    def write_now(self) -> AbstractContextManager[Session]:
        """:meth:`write`, for a caller on the event loop: the transaction starts only if it
        needs no wait, else :class:`WriterBusy` is raised before anything ran, and the
        caller retries with :meth:`write` on a thread. On SQLite the write lock, once held,
        is all a transaction waits for (WAL readers never block it), so a write that
        starts also finishes without blocking the loop on anyone else."""
        return _orm(self._transaction_now())

    @contextmanager
    def _transaction_now(self) -> Iterator[Connection]:
        lock = self._write_lock
        if self._writer_now is None or isinstance(lock, contextlib.nullcontext):
            raise WriterBusy("write_now needs SQLite")
        if not lock.acquire(blocking=False):
            raise WriterBusy("another thread of this process is writing")
        try:
            with TRANSLATED, self._writer_now.connect() as connection:
                try:
                    transaction = connection.begin()  # BEGIN IMMEDIATE, without waiting
                except (sqlite3.OperationalError, OperationalError) as exc:
                    # The begin hook runs BEGIN on the driver: its error arrives unwrapped.
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    raise WriterBusy("another process is writing") from exc
                with transaction:
                    yield connection
        finally:
            lock.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that is never committed (closing the session rolls it back,
        leaving the rows already read usable, unlike an explicit rollback)."""
        self._waits_on_network()
        with TRANSLATED, self._reader() as session:
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A bare connection without a transaction: for hot read paths whose every answer
        comes from a single statement (no ORM, no BEGIN/ROLLBACK round trips)."""
        self._waits_on_network()
        with TRANSLATED, self._autocommit.connect() as connection:
            yield connection

    def first(self, query: DriverQuery[Row], values: Mapping[str, Any]) -> Row | None:
        """One prebuilt single-statement read, outside any transaction: on a SQLite file
        this thread's reader answers, else a pooled connection's driver (never a kept
        answer: only the data plane's lookups take those, through :meth:`reader`)."""
        with TRANSLATED:
            reader = self._thread_reader()
            if reader is not None:
                return reader.first(query, values)
            self._waits_on_network()
            with self._autocommit.connect() as connection:
                return query.first(connection.connection.driver_connection, values)

    def reader(self) -> Reader | None:
        """The data plane's reader for its lookups (``storage.driver``). On a SQLite file,
        this thread's own: a bare sqlite3 connection, never pooled, so a read costs no
        checkout, and answers kept while the database is unchanged. On PostgreSQL, the
        process's :class:`KeptReader`. None for an in-memory SQLite database, or PostgreSQL
        with keeping turned off: use :meth:`autocommit` and its driver connection."""
        return self._kept if self._kept is not None else self._thread_reader()

    def _thread_reader(self) -> SQLiteReader | None:
        reader: SQLiteReader | None = getattr(self._readers, "reader", None)
        if reader is None and self._reader_args is not None:
            args, kwargs = self._reader_args
            with TRANSLATED:
                connection = sqlite3.connect(
                    *args, **{**kwargs, "check_same_thread": False, "isolation_level": None}
                )
                connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                connection.execute("PRAGMA query_only=1")
            with self._reader_list_lock:
                self._reader_connections.append(connection)
            reader = self._readers.reader = SQLiteReader(connection)
        return reader

    def dispose(self) -> None:
        with self._reader_list_lock:
            readers, self._reader_connections = self._reader_connections, []
        for connection in readers:
            connection.close()
        if self._kept is not None:
            self._kept.close()
        self.engine.dispose()
