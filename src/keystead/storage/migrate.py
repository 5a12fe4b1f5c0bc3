"""Alembic, driven from code: ``upgrade(engine)`` brings any database to the current schema.

Alembic is imported only when there is something to do: every CLI command opens the
database, and a current schema is recognised with one query against ``alembic_version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions; a test keeps the two in step.
HEAD = "0010"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Apply every pending migration (idempotent)."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def known_revisions() -> set[str]:
    """Every revision in this Keystead's migration history (a database at another one was
    made by a newer Keystead)."""
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
