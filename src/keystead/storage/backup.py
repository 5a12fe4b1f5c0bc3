"""Copies of the embedded SQLite database: taking one while Keystead runs, checking one,
and putting one back.

A copy is taken with SQLite's online backup API from one read transaction: in WAL mode a
reader never blocks writers, and holding the transaction across the copy's steps keeps
the copy one consistent snapshot (without it, every commit of the running service would
restart the copy). Every write committed before the copy began is in it.

A copy is trusted only once it opens, passes SQLite's integrity check, is a Keystead
database of a schema this version knows, and is opened by the master key in use — the
same check value a start-up checks (``runtime.check_value_opens``). The master key is
never in the copy.

PostgreSQL has its own tools (pg_dump, pg_restore); both operations refuse and say so.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, inspect, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from keystead.crypto.masterkey import MasterKey
from keystead.errors import ConfigurationError, Conflict, InvalidInput, KeysteadError
from keystead.masterkey_rotation import census
from keystead.runtime import check_value_opens, stored_check_value
from keystead.settings import Settings
from keystead.storage import migrate, service_lock
from keystead.storage.engine import BUSY_TIMEOUT_MS, sqlite_file
from keystead.storage.models import Base
from keystead.storage.session import Database

POSTGRESQL_ADVICE = (
    "on PostgreSQL use its own tools instead: back up with "
    "`pg_dump --format=custom --file=keystead.dump DBNAME` (Keystead may run), restore with "
    "`pg_restore --clean --if-exists --dbname=DBNAME keystead.dump` (Keystead stopped); "
    "keep a copy of the master key (KEYSTEAD_MASTER_KEY or its key file) apart from the "
    "dump: every secret in it is wrapped under that key"
)
# Pages copied per step of the online backup (4 MiB at SQLite's default page size).
STEP_PAGES = 1024
_SQLITE_MAGIC = b"SQLite format 3\x00"


class CopyRefused(KeysteadError):
    """A file that is not a usable copy of this installation's database."""

    status = 400


@dataclass(frozen=True)
class CopySummary:
    """What a checked copy holds."""

    size_bytes: int
    schema_revision: str
    schema_current: bool
    master_key_id: str
    tables: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


@dataclass(frozen=True)
class Restored:
    summary: CopySummary
    database: Path
    set_aside: Path | None


def database_file(settings: Settings, operation: str) -> Path:
    """The embedded database's file, or a refusal saying what to do instead."""
    path = sqlite_file(settings.effective_database_url)
    if path is None:
        if settings.is_embedded:
            raise ConfigurationError(f"`keystead {operation}` needs a SQLite database file")
        raise ConfigurationError(
            f"`keystead {operation}` works on the embedded SQLite database; " + POSTGRESQL_ADVICE
        )
    return path


def back_up(database: Path, target: Path, master: MasterKey, *, force: bool) -> CopySummary:
    """Copy the live ``database`` to ``target`` and check the copy; ``target`` appears only
    once the copy has passed (it is written under a temporary name beside it)."""
    if not database.is_file():
        raise ConfigurationError(f"there is no database at {database}: nothing to back up")
    target = target.absolute()
    try:
        return _back_up(database, target, master, force=force)
    except OSError as exc:  # the target's side: a read-only, full or special filesystem…
        raise InvalidInput(f"cannot write {target}: {exc.strerror or exc}") from None


def _back_up(database: Path, target: Path, master: MasterKey, *, force: bool) -> CopySummary:
    if target.is_dir():
        raise InvalidInput(f"{target} is a directory; name the file to write")
    if target.exists() and not target.is_file():  # a FIFO would block the --force check
        raise InvalidInput(f"{target} is not a regular file; name a file to write")
    if not target.parent.is_dir():
        raise InvalidInput(f"the directory {target.parent} does not exist")
    if _database_files(database) & {Path(os.path.realpath(target))}:  # never raises on a loop
        raise InvalidInput(f"{target} is the database itself (or one of its journal files)")
    if target.exists() and not force:
        raise Conflict(f"{target} exists already; name another file, or pass --force to replace it")
    if target.exists() and not _is_sqlite(target):
        # --force replaces an older backup, never a key file or anything else.
        raise InvalidInput(f"{target} is not a database file; --force only replaces a backup")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        _copy_online(database, partial)
        summary = inspect_copy(partial, master)
        os.replace(partial, target)
    finally:
        with suppress(OSError):
            _remove_database(partial)
    return summary


def _copy_online(database: Path, partial: Path) -> None:
    _remove_database(partial)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # it holds secrets
    source = sqlite3.connect(database, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        with closing(source), closing(sqlite3.connect(partial, isolation_level=None)) as copy:
            # One snapshot for every step: the read transaction stays open until the end.
            source.execute("BEGIN")
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()
            source.backup(copy, pages=STEP_PAGES, sleep=0.001)
            source.execute("COMMIT")
            # A single self-contained file, whatever the database's journal mode.
            copy.execute("PRAGMA journal_mode=DELETE").fetchone()
    except sqlite3.Error as exc:
        raise ConfigurationError(f"could not copy the database {database}: {exc}") from exc


def inspect_copy(path: Path, master: MasterKey) -> CopySummary:
    """Check a copy this process owns (it is made a single file in rollback-journal mode)
    and summarise it; refuse it with the reason otherwise."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise CopyRefused(f"cannot read {path}: {exc.strerror}") from exc
    if header != _SQLITE_MAGIC:
        raise CopyRefused("the file is not a SQLite database, so not a Keystead backup")
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        return _summarise(engine, path, master)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unknown error"
        raise CopyRefused(f"the file cannot be read as a SQLite database ({reason})") from exc
    finally:
        engine.dispose()


def _summarise(engine: Engine, path: Path, master: MasterKey) -> CopySummary:
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE").fetchall()
        verdict = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check(5)")]
        if verdict != ["ok"]:
            raise CopyRefused("the file fails SQLite's integrity check: " + "; ".join(verdict))
        present = set(inspect(conn).get_table_names())
    if "alembic_version" not in present or "keystead_meta" not in present:
        raise CopyRefused("the file is a SQLite database but not a Keystead database")
    revision = migrate.current_revision(engine)
    if revision is None:
        raise CopyRefused("the file is a Keystead database with no schema revision recorded")
    if revision not in migrate.known_revisions():
        raise CopyRefused(
            f"the file was made by a newer Keystead (schema revision {revision}; this version "
            f"knows up to {migrate.HEAD}); restore it with that version or a newer one"
        )
    with Session(engine) as session:
        stored = stored_check_value(session)
        if stored is None:
            raise CopyRefused("the file is a Keystead database that never recorded its master key")
        try:
            check_value_opens(stored, master)
        except ConfigurationError as exc:
            raise CopyRefused(f"the file belongs to another master key: {exc.message}") from exc
        tables = {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if table.name in present
        }
    # The check value opens, but a copy taken during a master-key rotation may hold rows
    # under a key that has been retired since: every key id in it must be one held.
    unknown = set(census(Database(engine)).by_key()) - set(master.fingerprints)
    if unknown:
        raise CopyRefused(
            f"rows in the file are wrapped under master key id(s) {', '.join(sorted(unknown))}, "
            "which the master key in use does not hold (a copy taken during a key rotation): "
            "supply those keys too (KEYSTEAD_MASTER_KEY=NEW,OLD or a key file listing both)"
        )
    return CopySummary(
        size_bytes=path.stat().st_size,
        schema_revision=revision,
        schema_current=revision == migrate.HEAD,
        master_key_id=master.fingerprint,
        tables=dict(sorted(tables.items())),
    )


def restore(database: Path, source: Path, master: MasterKey, *, now: datetime) -> Restored:
    """Put the copy ``source`` in place of ``database`` once it has passed the checks; the
    database it replaces is kept beside it. Refused while a service uses the database."""
    try:
        if not source.is_file():
            raise InvalidInput(f"{source} is not a file")
        if _database_files(database) & {source.resolve()}:
            raise InvalidInput(f"{source} is the database itself (or one of its journal files)")
    except OSError as exc:  # a name too long, a loop of links…
        raise InvalidInput(f"cannot read {source}: {exc.strerror or exc}") from None
    with service_lock.exclusive(database):
        staging = database.with_name(database.name + ".restoring")
        _remove_database(staging)  # left by a restore that was interrupted
        try:
            try:
                shutil.copyfile(source, staging)
                os.chmod(staging, 0o600)
            except OSError as exc:  # unreadable source, or no room beside the database
                raise InvalidInput(
                    f"cannot copy {source} to {staging}: {exc.strerror or exc}"
                ) from None
            summary = inspect_copy(staging, master)
            set_aside = _set_aside(database, now)
            os.replace(staging, database)
        finally:
            _remove_database(staging)
    return Restored(summary, database, set_aside)


def _set_aside(database: Path, now: datetime) -> Path | None:
    """Move the database out of the way with what SQLite keeps beside it.

    Its WAL must not stay behind: SQLite would replay the old database's frames into the
    restored one. A healthy database is first checkpointed into its main file; one that
    cannot be opened keeps its WAL under the set-aside name, where SQLite finds it again.
    """
    wal, journal, shm = (_sidecar(database, s) for s in ("-wal", "-journal", "-shm"))
    if not database.exists():
        for stale in (wal, journal, shm):
            stale.unlink(missing_ok=True)
        return None
    with (  # a damaged database is set aside as it is, with its WAL
        suppress(sqlite3.Error),
        closing(sqlite3.connect(database, isolation_level=None, timeout=5)) as conn,
    ):
        conn.execute("PRAGMA journal_mode=DELETE").fetchone()
    stamp = f"{database.name}.before-restore-{now:%Y%m%dT%H%M%SZ}"
    aside, n = database.with_name(stamp), 1
    while aside.exists():  # two restores within a second keep both databases
        n += 1
        aside = database.with_name(f"{stamp}-{n}")
    os.replace(database, aside)
    for kept in (wal, journal):
        if kept.exists():
            os.replace(kept, _sidecar(aside, kept.name[len(database.name) :]))
    shm.unlink(missing_ok=True)  # an index of the WAL, rebuilt from it when needed
    return aside


def _sidecar(database: Path, suffix: str) -> Path:
    return database.with_name(database.name + suffix)


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _database_files(database: Path) -> set[Path]:
    return {database.resolve(), *(_sidecar(database, s).resolve() for s in ("-wal", "-shm"))}


def _remove_database(path: Path) -> None:
    for each in (path, *(_sidecar(path, s) for s in ("-wal", "-shm", "-journal"))):
        each.unlink(missing_ok=True)
