"""Engine construction: SQLite (WAL, foreign keys, explicit BEGIN) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

# Writers on SQLite take the write lock when the transaction starts (BEGIN IMMEDIATE):
# a deferred transaction that reads and then writes can fail at once with SQLITE_BUSY
# instead of waiting for busy_timeout. Readers keep plain BEGIN so they never queue.
SQLITE_BEGIN_OPTION = "keystead_sqlite_begin"
# The begin mode of a write that must not wait for another writer (Database.write_now).
NOWAIT = "IMMEDIATE NOWAIT"
BUSY_TIMEOUT_MS = 30_000


# PostgreSQL connections a worker keeps open. A connection beyond them (up to as many
# again) is closed when given back, and opening one costs PostgreSQL a process: the pool
# is sized above what a busy worker holds at once (a request takes at most two in turn).
POOL_SIZE = 16


def make_engine(url: str, *, pool_size: int = POOL_SIZE) -> Engine:
    """Build the engine for ``url``; creates the SQLite file's directory when needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # A database that does not answer is an outage (503) within seconds, not a hang:
        # a connection attempt gives up after 5 s, a wait for a pooled connection after 10.
        connect_args={"connect_timeout": 5},
        pool_timeout=10,
        hide_parameters=True,  # a failing statement never puts an attribute value in a log
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=16,
        max_overflow=16,
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # Autocommit at the driver so that SQLAlchemy's "begin" event below owns BEGIN;
        # this is SQLAlchemy's documented recipe for correct SQLite transactions.
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # On the driver: a statement through SQLAlchemy would cost more than BEGIN itself.
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        driver = conn.connection.driver_connection
        if mode == NOWAIT:
            # Take the write lock now or fail at once (SQLITE_BUSY) instead of waiting
            # out the busy timeout: the caller is an event loop that must not block.
            driver.execute("PRAGMA busy_timeout=0")
            try:
                driver.execute("BEGIN IMMEDIATE")
            finally:
                driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        elif mode != "NONE":  # NONE: each statement commits on its own (Database.autocommit)
            driver.execute(f"BEGIN {mode}")

    return engine


def sqlite_file(url: str) -> Path | None:
    """The database file a SQLite URL names; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()
