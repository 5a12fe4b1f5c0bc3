"""The data plane's lookup at driver level (storage/driver.py) on both engines: the same
answers as SQLAlchemy's execution of the same statement; on SQLite, kept answers that give
way to the very next read after any commit, from this process or another; on PostgreSQL,
kept answers that give way at once to a commit of this process and within the time it keeps
them to anyone else's."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from keystead.apikeys import service as apikeys
from keystead.blocking import WouldWait, no_waiting
from keystead.dataplane.service import _LOOKUP, Caller
from keystead.runtime import Runtime
from keystead.storage import driver
from keystead.storage.driver import (
    ConnectionReader,
    DriverQuery,
    KeptReader,
    Reader,
    SQLiteReader,
)
from keystead.storage.session import Database
from tests import factories
from tests.factories import ACTOR


def _first(reader: Reader, query: DriverQuery[Caller], values: dict[str, Any]) -> Caller:
    row = reader.first(query, values)
    assert row is not None, "the key was looked up and found"
    return row


def setup_key(runtime: Runtime) -> tuple[uuid.UUID, str]:
    """An account with datasets SSN (granted) and Cards (not granted); the key's papi."""
    with runtime.db.write() as session:
        account_id = factories.account(session)
        factories.dataset(session, account_id, "SSN", runtime.master)
        factories.dataset(session, account_id, "Cards", runtime.master)
        created = factories.manual_key(session, account_id, runtime.master, datasets=("SSN",))
        return account_id, created.key.access_key_id


def revoke_ssn(runtime: Runtime, account_id: uuid.UUID, papi: str) -> None:
    with runtime.db.write() as session:
        key = apikeys.find_api_key(session, account_id, papi)
        apikeys.revoke(session, key, datasets=("SSN",), actor=ACTOR)


def via_sqlalchemy(runtime: Runtime, values: dict[str, str]) -> tuple[Any, ...] | None:
    with runtime.db.autocommit() as connection:
        row = connection.execute(_LOOKUP, values).first()
        return None if row is None else tuple(row)


def test_driver_lookup_answers_as_sqlalchemy_does(runtime: Runtime) -> None:
    _, papi = setup_key(runtime)
    query = DriverQuery(_LOOKUP, runtime.db.engine.dialect, Caller)
    cases = [
        {"papi": papi, "name_key": "ssn"},  # granted
        {"papi": papi, "name_key": "cards"},  # not granted
        {"papi": papi, "name_key": "nothing"},  # no such dataset
        {"papi": papi, "name_key": ""},  # no dataset named
        {"papi": "unknown", "name_key": "ssn"},  # no such key
    ]
    with runtime.db.autocommit() as connection:
        reader = ConnectionReader(connection.connection.driver_connection)
        answers = [reader.first(query, values) for values in cases]
    assert [None if a is None else tuple(a) for a in answers] == [
        via_sqlalchemy(runtime, values) for values in cases
    ]
    granted, refused, missing, unnamed, unknown = answers
    assert granted is not None
    assert refused is not None
    assert missing is not None
    assert unnamed is not None
    assert isinstance(granted.key_id, uuid.UUID)
    assert isinstance(granted.dataset_id, uuid.UUID)
    assert granted.allowed is True
    assert granted.enabled is True
    assert refused.allowed is False
    assert missing.dataset_id is None
    assert unnamed.dataset_id is None
    assert unknown is None


@pytest.fixture
def sqlite_reader(runtime: Runtime) -> SQLiteReader:
    reader = runtime.db.reader()
    assert isinstance(reader, SQLiteReader)
    return reader


@pytest.mark.engines("sqlite")
def test_sqlite_reader_cannot_write(sqlite_reader: SQLiteReader) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        sqlite_reader.connection.execute("DELETE FROM api_key_dataset_grants")


@pytest.mark.engines("sqlite")
def test_revocation_in_this_process_holds_for_the_very_next_read(
    runtime: Runtime, sqlite_reader: SQLiteReader
) -> None:
    account_id, papi = setup_key(runtime)
    query = DriverQuery(_LOOKUP, runtime.db.engine.dialect, Caller)
    values = {"papi": papi, "name_key": "ssn"}
    assert _first(sqlite_reader, query, values).allowed is True
    assert _first(sqlite_reader, query, values).allowed is True  # kept
    revoke_ssn(runtime, account_id, papi)
    assert _first(sqlite_reader, query, values).allowed is False


@pytest.mark.engines("sqlite")
def test_a_commit_of_another_process_holds_for_the_very_next_read(
    runtime: Runtime, sqlite_reader: SQLiteReader
) -> None:
    _, papi = setup_key(runtime)
    query = DriverQuery(_LOOKUP, runtime.db.engine.dialect, Caller)
    values = {"papi": papi, "name_key": "ssn"}
    assert _first(sqlite_reader, query, values).enabled is True
    database = runtime.db.engine.url.database
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
        "c.execute('UPDATE api_keys SET enabled = 0 WHERE access_key_id = ?', (sys.argv[2],))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(database), papi], check=True)
    assert _first(sqlite_reader, query, values).enabled is False


@dataclass
class Kept:
    """The process's kept reader on a clock the test moves, and one key's lookup."""

    runtime: Runtime
    reader: KeptReader
    account_id: uuid.UUID
    papi: str
    query: DriverQuery[Caller]  # one statement: answers are kept per statement
    now: float = 0.0

    def monotonic(self) -> float:  # the reader's clock (it stands in for its time module)
        return self.now

    def ask(self) -> Caller:
        return _first(self.reader, self.query, {"papi": self.papi, "name_key": "ssn"})

    def elsewhere(self, sql: str) -> None:
        """Run ``sql`` (with the key's papi as its one parameter) on a connection of its
        own, as another node would: this process sees no commit of its own."""
        url = self.runtime.db.engine.url.set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(url, autocommit=True) as other:
            other.execute(sql.encode(), (self.papi,))


@pytest.fixture
def kept(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Kept:
    reader = runtime.db.reader()
    assert isinstance(reader, KeptReader)
    account_id, papi = setup_key(runtime)
    query = DriverQuery(_LOOKUP, runtime.db.engine.dialect, Caller)
    case = Kept(runtime, reader, account_id, papi, query)
    monkeypatch.setattr(driver, "time", case)
    return case


@pytest.mark.engines("postgresql")
def test_a_kept_answer_gives_way_to_a_commit_of_this_process_at_once(kept: Kept) -> None:
    assert kept.ask().allowed is True
    revoke_ssn(kept.runtime, kept.account_id, kept.papi)  # the clock has not moved
    assert kept.ask().allowed is False


@pytest.mark.engines("postgresql")
def test_a_commit_of_another_process_is_obeyed_once_keep_seconds_have_passed(
    kept: Kept,
) -> None:
    assert kept.ask().enabled is True
    kept.elsewhere("UPDATE api_keys SET enabled = false WHERE access_key_id = %s")
    kept.now = kept.reader.keep * 0.9
    assert kept.ask().enabled is True  # kept, within the bound
    kept.now = kept.reader.keep
    assert kept.ask().enabled is False


@pytest.mark.engines("postgresql")
def test_on_the_event_loop_a_kept_answer_is_given_and_a_miss_would_wait(kept: Kept) -> None:
    with no_waiting(), pytest.raises(WouldWait):
        kept.ask()
    assert kept.ask().allowed is True
    with no_waiting():
        assert kept.ask().allowed is True
        with pytest.raises(WouldWait):  # nor does anything else reach the network there
            kept.runtime.db.autocommit().__enter__()


@pytest.mark.engines("postgresql")
def test_an_answer_past_half_its_time_is_read_again_while_it_is_given(kept: Kept) -> None:
    """A key in steady use never misses on the event loop: its answer is renewed in the
    background before it expires, and the renewal is what the database says now."""
    assert kept.ask().allowed is True
    with no_waiting():
        kept.now = kept.reader.keep * 0.4
        assert kept.ask().allowed is True  # young: nothing read
        kept.elsewhere(
            "DELETE FROM api_key_dataset_grants WHERE api_key_id ="
            " (SELECT id FROM api_keys WHERE access_key_id = %s)"
        )
        kept.now = kept.reader.keep * 0.6
        assert kept.ask().allowed is True  # given, and renewed
        kept.now = kept.reader.keep * 1.2  # the first answer has expired
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if kept.ask().allowed is False:
                    break
            except WouldWait:  # the renewal has not landed yet
                time.sleep(0.01)
        else:
            pytest.fail("the answer was not renewed in the background")


@pytest.mark.engines("postgresql")
def test_keeping_can_be_turned_off(runtime: Runtime) -> None:
    """KEYSTEAD_LOOKUP_KEEP_MS=0: the data plane asks the database on every call."""
    database = Database(runtime.db.engine, keep_seconds=0)
    assert database.reader() is None
    assert isinstance(Database(runtime.db.engine, keep_seconds=0.01).reader(), KeptReader)
