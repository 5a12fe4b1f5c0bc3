"""Alembic environment: runs against the engine handed in by keystead.storage.migrate."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Engine

from keystead.storage.models import Base

config = context.config
engine: Engine = config.attributes["engine"]


def _sqlite_foreign_keys(connection: Any, on: bool) -> None:
    # SQLite's batch migrations copy a table, drop the original and rename the copy; with
    # foreign keys enforced, dropping the original would run ON DELETE CASCADE on every
    # referencing row. The pragma only takes effect outside a transaction, so it goes
    # straight to the driver before SQLAlchemy begins one.
    connection.connection.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(connection, on=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left dangling references: {broken[:5]}")
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            _sqlite_foreign_keys(connection, on=True)
