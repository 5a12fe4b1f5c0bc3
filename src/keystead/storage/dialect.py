"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_duplicates(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> int:
    """INSERT rows, skipping those that collide with an existing key; returns rows added.

    One statement whatever the number of rows: re-adding a present member is a no-op, and
    two concurrent adds of the same member cannot fail each other.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = builder(table).values(list(rows)).on_conflict_do_nothing()
    result = session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
