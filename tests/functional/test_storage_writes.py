"""Write transactions: `Database.write_now` (the event loop's write on SQLite) either starts
without waiting or says so before anything ran; `write` then waits its turn."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from keystead.runtime import Runtime
from keystead.storage.driver import DriverQuery
from keystead.storage.models import Account
from keystead.storage.session import WriterBusy
from tests.support.writers import writer_held


def _add_account(session: Session, name: str) -> uuid.UUID:
    account = Account(id=uuid.uuid4(), name=name, plan="enterprise", created_at=datetime.now(UTC))
    session.add(account)
    return account.id


class _Name(NamedTuple):
    name: str


def _names(runtime: Runtime) -> set[str]:
    with runtime.db.read() as session:
        return set(session.scalars(select(Account.name)))


def test_write_now_is_sqlite_only(runtime: Runtime, engine_name: str) -> None:
    assert runtime.db.writes_now is (engine_name == "sqlite")
    if engine_name != "sqlite":
        with pytest.raises(WriterBusy), runtime.db.write_now():
            pytest.fail("write_now started a transaction on PostgreSQL")


@pytest.mark.engines("sqlite")
def test_write_now_commits_and_rolls_back_like_write(runtime: Runtime) -> None:
    with runtime.db.write_now() as session:
        _add_account(session, "kept")

    def failing() -> None:
        with runtime.db.write_now() as session:
            _add_account(session, "rolled back")
            session.flush()
            raise RuntimeError("the operation failed")

    with pytest.raises(RuntimeError):
        failing()
    assert _names(runtime) == {"kept"}


@pytest.mark.engines("sqlite")
def test_write_now_does_not_wait_for_another_process(runtime: Runtime) -> None:
    other = sqlite3.connect(str(runtime.db.engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    try:
        started = time.monotonic()
        with pytest.raises(WriterBusy), runtime.db.write_now() as session:
            _add_account(session, "never")
        assert time.monotonic() - started < 1  # not the 30 s busy timeout
    finally:
        other.execute("ROLLBACK")
        other.close()
    # The pooled connection got its busy timeout back, and the next write goes through.
    with runtime.db.write_now() as session:
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
        _add_account(session, "after")
    assert _names(runtime) == {"after"}


@pytest.mark.engines("sqlite")
def test_write_now_does_not_wait_for_another_thread(runtime: Runtime) -> None:
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with runtime.db.write() as session:
            _add_account(session, "thread")
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        with pytest.raises(WriterBusy), runtime.db.write_now() as session:
            _add_account(session, "never")
    finally:
        release.set()
        thread.join(10)
    with runtime.db.write_now() as session:
        _add_account(session, "after")
    assert _names(runtime) == {"thread", "after"}


@pytest.mark.engines("sqlite")
def test_a_threads_first_read_does_not_wait_for_a_writer(runtime: Runtime) -> None:
    """A thread's first read opens its own SQLite reader. With another thread inside a
    long write, that read is answered at once (WAL readers never wait for the writer): on
    the event loop, waiting would have held every request until the write ended."""
    with runtime.db.write() as session:
        account_id = _add_account(session, "existing")
    query = DriverQuery(
        select(Account.name).where(Account.id == account_id), runtime.db.engine.dialect, _Name
    )
    answers: list[_Name | None] = []
    with writer_held(runtime.db):
        reader = threading.Thread(target=lambda: answers.append(runtime.db.first(query, {})))
        reader.start()
        reader.join(5)
        answered_while_writing = list(answers)
    reader.join(5)
    assert answered_while_writing == [_Name("existing")]
