"""Single statements run on the bare DBAPI connection, for the hottest paths.

A Core statement is compiled once for the engine's dialect, so the SQL still comes from the
one SQLAlchemy expression that defines it (the access rule stays in ``access.py``), and is
then executed without SQLAlchemy's per-execution machinery: parameters are bound the way
the driver wants them (positionally for sqlite3, by name for psycopg) and the row is
converted with the dialect's own result processors (UUIDs and booleans on SQLite). A
:class:`Reader` runs such statements: a thread's :class:`SQLiteReader` on a SQLite file, the
process's :class:`KeptReader` on PostgreSQL.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import Dialect, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from keystead.blocking import WouldWait, may_wait

logger = logging.getLogger(__name__)

Processor = Callable[[Any], Any] | None
Row = TypeVar("Row", bound=tuple[Any, ...])  # a NamedTuple class, one field per column


class DriverStatement:
    """``statement`` compiled for ``dialect``; :meth:`run_many` executes it on a DBAPI
    connection (a write, in the caller's transaction)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise TypeError("a column default would be computed per execution: bind its value")
        self.sql = compiled.string
        variables = {name for name, bind in compiled.binds.items() if bind.required}
        values = compiled.construct_params(dict.fromkeys(variables))
        processors: dict[str, Processor] = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        for name, value in values.items():  # the statement's own literals, bound once
            if name not in variables and (process := processors.get(name)) is not None:
                values[name] = process(value)
        positional = compiled.positiontup is not None
        names = list(compiled.positiontup if compiled.positiontup is not None else values)
        self._template: Any = [values[name] for name in names] if positional else values
        self._slots = [
            (i if positional else name, name, processors.get(name))
            for i, name in enumerate(names)
            if name in variables
        ]

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for one execution (``values`` holds every variable)."""
        bound = self._template.copy()
        for slot, name, process in self._slots:
            value = values[name]
            bound[slot] = value if process is None else process(value)
        return bound

    def run_many(self, connection: Any, rows: list[dict[str, Any]]) -> None:
        """Execute it once per row (one ``executemany``), in the caller's transaction."""
        with closing(connection.cursor()) as cursor:
            cursor.executemany(self.sql, [self.parameters(values) for values in rows])


class DriverQuery(DriverStatement, Generic[Row]):
    """A SELECT as a :class:`DriverStatement`; :meth:`first` answers a ``row`` (a NamedTuple
    whose fields are the selected columns, in order)."""

    def __init__(self, statement: Select[*tuple[Any, ...]], dialect: Dialect, row: type[Row]):
        columns = list(statement.selected_columns)
        fields = tuple(column.key for column in columns)
        if getattr(row, "_fields", None) != fields:
            raise TypeError(f"{row.__name__} must have the fields {fields}, in that order")
        super().__init__(statement, dialect)
        self._row = row
        self._processors: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self._converts = any(self._processors)

    def first(self, connection: Any, values: Mapping[str, Any]) -> Row | None:
        """The first row, its values converted as SQLAlchemy would, or None."""
        cursor = connection.cursor()
        try:
            cursor.execute(self.sql, self.parameters(values))
            raw = cursor.fetchone()
        finally:
            cursor.close()
        if raw is None:
            return None
        if self._converts:
            raw = [
                value if process is None or value is None else process(value)
                for process, value in zip(self._processors, raw, strict=True)
            ]
        return self._row._make(raw)  # type: ignore[attr-defined, no-any-return]


class Reader(Protocol):
    def first(self, query: DriverQuery[Row], values: Mapping[str, Any]) -> Row | None: ...


class ConnectionReader:
    """Runs :class:`DriverQuery` statements on one DBAPI connection, every time."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def first(self, query: DriverQuery[Row], values: Mapping[str, Any]) -> Row | None:
        return query.first(self.connection, values)


# How long a node may answer from what it read, on a database other nodes write to, unless
# the operator says otherwise (KEYSTEAD_LOOKUP_KEEP_MS, at most 100 ms).
KEEP_SECONDS = 0.05
LIMIT = 10_000  # answers a reader keeps at most; all are dropped when full


class KeptReader:
    """The process's reader on PostgreSQL: keeps each answer for at most ``keep`` seconds
    (:data:`KEEP_SECONDS` unless configured), counted from before its statement was sent,
    and drops every kept answer whenever this process commits (:meth:`changed`).

    A change committed through another node is therefore obeyed by every call that starts
    ``keep`` after it, and one made through this process at once; nothing needs to tell a
    node of changes, so no channel can break. A hot key's lookup costs the database about two
    statements per ``keep`` per node instead of one per call, and a kept answer is given
    without a thread or a connection: under :func:`keystead.blocking.no_waiting` a miss raises
    WouldWait, and the executor asks again on a thread. An answer past half its time is read
    again in the background (one thread) while it is still given, so a key in steady use never
    misses: misses would send every caller of that moment to a thread at once."""

    def __init__(self, connect: Callable[[], AbstractContextManager[Any]], keep: float) -> None:
        self.keep = keep
        self._connect = connect  # a pooled DBAPI connection, given back on exit
        self._generations = itertools.count()
        self._generation = next(self._generations)
        self._kept: dict[tuple[Any, ...], tuple[float, int, Any]] = {}
        self._refreshing: set[tuple[Any, ...]] = set()
        self._refresher = ThreadPoolExecutor(1, thread_name_prefix="keystead-kept")

    def changed(self) -> None:
        """This process committed: nothing read before may be given again."""
        self._generation = next(self._generations)  # next() on a count is atomic

    def first(self, query: DriverQuery[Row], values: Mapping[str, Any]) -> Row | None:
        key = (query, *values.values())
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[1] == self._generation and now - kept[0] < self.keep:
            if now - kept[0] >= self.keep / 2 and key not in self._refreshing:
                self._refreshing.add(key)
                self._refresher.submit(self._refresh, key, query, dict(values))
            row: Row | None = kept[2]
            return row
        if not may_wait():
            raise WouldWait("the answer is not kept: the database must be asked")
        return self._read(key, query, values)

    def _read(
        self, key: tuple[Any, ...], query: DriverQuery[Row], values: Mapping[str, Any]
    ) -> Row | None:
        started, generation = time.monotonic(), self._generation
        with self._connect() as connection:
            row = query.first(connection, values)
        if len(self._kept) >= LIMIT:
            self._kept.clear()
        self._kept[key] = (started, generation, row)
        return row

    def _refresh(
        self, key: tuple[Any, ...], query: DriverQuery[Any], values: dict[str, Any]
    ) -> None:
        try:
            self._read(key, query, values)
        except Exception as exc:  # the answer expires, and the next call asks itself
            logger.info("reading a kept answer again failed (%s)", type(exc).__name__)
        finally:
            self._refreshing.discard(key)

    def close(self) -> None:
        self._refresher.shutdown(wait=False, cancel_futures=True)


class SQLiteReader(ConnectionReader):
    """One thread's own connection to a SQLite file (autocommit, ``PRAGMA query_only``,
    never pooled), which keeps answers while the database is unchanged.

    ``PRAGMA data_version`` changes whenever another connection, of this process or of any
    other, has committed to the file since this connection last looked; this connection
    cannot write, so every commit is another connection's. A kept answer is therefore
    exactly what the statement would return now, and the first read after any commit (a
    revoked grant, a disabled key, anything else) runs the statement again. No statement
    is left open between calls (the PRAGMA's rows are fetched to the end), so no read
    transaction pins an old snapshot.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        super().__init__(connection)
        self._version: int | None = None
        self._kept: dict[tuple[Any, ...], Any] = {}

    def first(self, query: DriverQuery[Row], values: Mapping[str, Any]) -> Row | None:
        version = self.connection.execute("PRAGMA data_version").fetchall()[0][0]
        key = (query, *values.values())
        if version == self._version:
            kept: Row | None = self._kept.get(key, _MISSING)
            if kept is not _MISSING:
                return kept
        else:
            self._kept.clear()
            self._version = version
        row = query.first(self.connection, values)
        if len(self._kept) >= LIMIT:
            self._kept.clear()
        self._kept[key] = row
        return row


_MISSING = object()
