"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_duplicates(
    session: Session | Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> int:
    """INSERT rows, skipping those that collide with an existing key; returns rows added.

    One prebuilt statement, run for all rows at once (SQLAlchemy batches them into
    multi-row INSERTs within each engine's parameter limits): re-adding a present member
    is a no-op, and two concurrent adds of the same member cannot fail each other.
    """
    if not rows:
        return 0
    connection = session.connection() if isinstance(session, Session) else session
    statement = _statement(connection.dialect.name, table)
    # RETURNING lists only the rows actually inserted (rowcount is not reliable for
    # batched inserts on psycopg).
    return len(connection.execute(statement, list(rows)).all())


def insert_for(dialect: str) -> Any:
    """The INSERT construct that takes ON CONFLICT clauses, for the engine's dialect."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@functools.cache
def _statement(dialect: str, table: Table) -> Any:
    builder = insert_for(dialect)
    first_key = next(iter(table.primary_key.columns))
    return builder(table).on_conflict_do_nothing().returning(first_key)
