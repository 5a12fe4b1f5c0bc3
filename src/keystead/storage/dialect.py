"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_CHUNK = 500


def insert_ignoring_duplicates(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> int:
    """INSERT rows, skipping those that collide with an existing key; returns rows added.

    One statement whatever the number of rows: re-adding a present member is a no-op, and
    two concurrent adds of the same member cannot fail each other.
    """
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    first_key = next(iter(table.primary_key.columns))
    added = 0
    # RETURNING lists only the rows actually inserted (rowcount is -1 for multi-row
    # inserts on psycopg); chunks keep under SQLite's bound-parameter limit.
    for start in range(0, len(rows), _CHUNK):
        chunk = list(rows[start : start + _CHUNK])
        statement = builder(table).values(chunk).on_conflict_do_nothing().returning(first_key)
        added += len(session.execute(statement).all())
    return added
