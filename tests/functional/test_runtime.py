"""Opening an installation: the embedded default, the master key check, migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from keystead.crypto.masterkey import MasterKey
from keystead.errors import ConfigurationError
from keystead.runtime import open_runtime
from keystead.settings import Settings
from keystead.storage import migrate
from keystead.storage.models import Base


def test_embedded_default_creates_data_dir_database_and_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """First start on SQLite makes everything it needs and says so loudly."""
    data = tmp_path / "keystead-data"
    runtime = open_runtime(Settings(data_dir=data), create=True)
    try:
        assert (data / "keystead.db").exists()
        assert (data / "master.key").stat().st_mode & 0o777 == 0o600
        assert data.stat().st_mode & 0o777 == 0o700
        assert runtime.db.dialect == "sqlite"
        journal = runtime.db.engine.connect().exec_driver_sql("PRAGMA journal_mode").scalar()
        assert journal == "wal"
    finally:
        runtime.close()
    assert "generated a new master key" in capsys.readouterr().err
    again = open_runtime(Settings(data_dir=data), create=True)
    again.close()
    assert "generated" not in capsys.readouterr().err


def test_wrong_master_key_is_a_clear_startup_error(tmp_path: Path) -> None:
    """A database set up under one key refuses another, naming both key ids."""
    first = MasterKey.generate()
    open_runtime(Settings(data_dir=tmp_path, master_key=first.to_base64())).close()
    other = MasterKey.generate()
    with pytest.raises(ConfigurationError, match=f"{other.fingerprint}.*{first.fingerprint}"):
        open_runtime(Settings(data_dir=tmp_path, master_key=other.to_base64()))


def test_missing_key_without_the_embedded_default_is_refused(tmp_path: Path) -> None:
    """On PostgreSQL no key is generated: the error names the settings to use."""
    settings = Settings(data_dir=tmp_path, database_url="postgresql://nobody@127.0.0.1:1/x")
    with pytest.raises(ConfigurationError, match="KEYSTEAD_MASTER_KEY"):
        open_runtime(settings)


def test_unreachable_database_is_a_clear_startup_error(tmp_path: Path) -> None:
    """A database that cannot be reached fails with the driver's reason, not a traceback."""
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql://nobody@127.0.0.1:1/x",
        master_key=MasterKey.generate().to_base64(),
    )
    with pytest.raises(ConfigurationError, match="cannot open the database"):
        open_runtime(settings)


@pytest.mark.usefixtures("session_runtime")
def test_migrations_produce_exactly_the_models(settings: Settings) -> None:
    """After upgrade, the schema has nothing the models lack and lacks nothing they have."""
    from keystead.storage.engine import make_engine

    engine = make_engine(settings.effective_database_url)
    try:
        migrate.upgrade(engine)
        heads = ScriptDirectory.from_config(migrate.alembic_config(engine)).get_heads()
        assert [migrate.current_revision(engine)] == heads
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diffs == []
    finally:
        engine.dispose()


def test_postgresql_url_gets_the_psycopg_driver() -> None:
    """postgresql:// and postgres:// select psycopg 3."""
    for url in ("postgresql://u@h/db", "postgres://u@h/db"):
        assert Settings(database_url=url).effective_database_url == "postgresql+psycopg://u@h/db"


def test_upgrading_keeps_every_row_that_references_a_rebuilt_table(tmp_path: Path) -> None:
    """Migrations that rebuild a table on SQLite must not cascade-delete its references."""
    from alembic import command
    from sqlalchemy import text

    from keystead.storage.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        command.upgrade(migrate.alembic_config(engine), "0001")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (id, name, plan, created_at) "
                    "VALUES ('00000000000000000000000000000001', 'a', 'enterprise', '2026-01-01')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO datasets (id, account_id, name, name_key, type, "
                    "current_key_number, created_at) VALUES ('00000000000000000000000000000002',"
                    " '00000000000000000000000000000001', 'SSN', 'ssn', 'structured', 0, "
                    "'2026-01-01')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, account_id, access_key_id, name, enabled, "
                    "auto_provisioned, wrapped_signing_key, created_at, updated_at) VALUES "
                    "('00000000000000000000000000000003', '00000000000000000000000000000001',"
                    " 'papi', 'k', 1, 0, x'00', '2026-01-01', '2026-01-01')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO api_key_dataset_grants (api_key_id, dataset_id, created_at) "
                    "VALUES ('00000000000000000000000000000003', "
                    "'00000000000000000000000000000002', '2026-01-01')"
                )
            )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            grants = conn.execute(text("SELECT count(*) FROM api_key_dataset_grants")).scalar()
            fk = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
        assert grants == 1
        assert fk == 1
    finally:
        engine.dispose()


def test_the_recorded_head_is_the_newest_migration(tmp_path: Path) -> None:
    """migrate.HEAD names the newest revision, so the fast current-schema check is right."""
    from alembic.script import ScriptDirectory

    from keystead.storage.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'heads.db'}")
    try:
        heads = ScriptDirectory.from_config(migrate.alembic_config(engine)).get_heads()
    finally:
        engine.dispose()
    assert heads == [migrate.HEAD]
