"""`keystead backup` and `keystead restore` on the embedded SQLite database, against real
`keystead serve` processes: a copy taken under live SCIM writes holds every write
acknowledged before it began; a restore is refused while a service runs and serves its
data once started again; files that are not this installation's backups are refused.

These are SQLite operations: each test makes an embedded installation of its own (a data
directory and a master key) rather than using the shared test database.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from keystead import audit
from keystead.accounts import service as accounts
from keystead.crypto.masterkey import MasterKey
from keystead.idp import service as idp
from keystead.runtime import open_runtime
from keystead.settings import Settings
from keystead.storage import service_lock
from keystead.storage.backup import STEP_PAGES
from tests.conftest import DEFAULT_PG, LiveServer, start_server, stop_server
from tests.factories import ACTOR
from tests.functional.test_cli import Cli, clean_env
from tests.support import accounts as support_accounts
from tests.support.scim import entra_user


@dataclass
class Installation:
    """An embedded installation in a directory of its own, with an admin token and SCIM on."""

    root: Path
    settings: Settings
    master: MasterKey
    customer_id: str
    admin_token: str
    scim_token: str
    cli: Cli
    servers: list[LiveServer] = field(default_factory=list)

    @property
    def database(self) -> Path:
        return (self.settings.data_dir / "keystead.db").resolve()

    def serve(self) -> LiveServer:
        server = start_server(self.settings, self.root / f"serve-{len(self.servers)}.log")
        self.servers.append(server)
        return server

    def admin(self, server: LiveServer) -> httpx.Client:
        return httpx.Client(
            base_url=f"{server.url}/api/admin/v1",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )


def make_installation(root: Path, master: MasterKey | None = None) -> Installation:
    master = master or MasterKey.generate()
    settings = Settings(
        data_dir=root / "data",
        master_key=master.to_base64(),
        public_url="http://127.0.0.1:8080",
    )
    runtime = open_runtime(settings, create=True)
    try:
        first = support_accounts.first_account(runtime)
        with runtime.db.write() as session:
            account = accounts.get_account(session, uuid.UUID(first.customer_id))
            scim_token = idp.rotate_scim_token(session, account, actor=ACTOR).token
            idp.set_enabled(session, account, True, actor=ACTOR, master=runtime.master)
    finally:
        runtime.close()
    env = {
        **clean_env(),
        "KEYSTEAD_DATA_DIR": str(settings.data_dir),
        "KEYSTEAD_MASTER_KEY": master.to_base64(),
    }
    return Installation(
        root,
        settings,
        master,
        first.customer_id,
        first.admin_token,
        scim_token,
        Cli(cwd=root, env=env),
    )


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[Installation]:
    made = make_installation(tmp_path)
    yield made
    for server in made.servers:
        if server.process.poll() is None:
            stop_server(server)
    made.cli.assert_no_tracebacks()


def grow(settings: Settings, megabytes: int) -> None:
    """Audit events enough that a copy takes several steps of the online backup."""
    runtime = open_runtime(settings)
    try:
        with runtime.db.write() as session:
            for n in range(megabytes * 1024):
                audit.record(
                    session,
                    account_id=None,
                    actor=ACTOR,
                    action="test.filler",
                    detail={"n": n, "padding": "x" * 1000},
                )
    finally:
        runtime.close()


class ScimWriter(threading.Thread):
    """Creates directory users one after another; ``acknowledged``: those answered 201."""

    def __init__(self, server: LiveServer, inst: Installation) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(
            base_url=f"{server.url}/{inst.customer_id}/api/v3/scim",
            headers={
                "Authorization": f"Bearer {inst.scim_token}",
                "Content-Type": "application/scim+json",
            },
            timeout=30,
        )
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self.done = threading.Event()
        self.enough = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.done.is_set():
            name = f"user{n}@example.com"
            response = self.client.post("/Users", json=entra_user(name))
            if response.status_code == 201:
                self.acknowledged.append(name)
            else:
                self.failures.append(f"{response.status_code} {response.text}")
            if len(self.acknowledged) >= 30:
                self.enough.set()
            n += 1

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)
        self.client.close()


def column(database: Path, query: str) -> set[str]:
    """The first column of ``query``'s rows, read from ``database`` without changing it."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute(query)}
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def page_count(database: Path) -> int:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


# --- backup ----------------------------------------------------------------------------------


def test_a_backup_under_live_scim_writes_holds_every_write_acknowledged_before_it(
    installation: Installation,
) -> None:
    """The copy is one snapshot taken while the service keeps writing, and it passes the
    checks: every user whose creation was acknowledged before the backup began is in it."""
    grow(installation.settings, 6)
    assert page_count(installation.database) > 2 * STEP_PAGES  # the copy takes several steps
    server = installation.serve()
    writer = ScimWriter(server, installation)
    writer.start()
    try:
        assert writer.enough.wait(timeout=60), writer.failures
        before = list(writer.acknowledged)
        copy = installation.root / "keystead-backup.db"
        body = installation.cli.ok("backup", str(copy), "--json")
        after = len(writer.acknowledged)
    finally:
        writer.stop()
    assert writer.failures == []
    # The service went on answering writes while the backup ran.
    assert after > len(before)

    in_copy = column(copy, "SELECT user_name FROM directory_users")
    assert set(before) <= in_copy
    assert in_copy <= set(writer.acknowledged)
    assert body["tables"]["directory_users"] == len(in_copy)
    assert body["file"] == str(copy)
    assert body["size_bytes"] == copy.stat().st_size
    assert body["master_key_id"] == installation.master.fingerprint
    assert body["master_key_included"] is False
    assert body["schema_current"] is True
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    finally:
        conn.close()
    assert not list(installation.root.glob(".keystead-backup.db.partial-*"))


def test_backup_says_what_it_wrote_and_that_the_key_is_not_in_it(
    installation: Installation,
) -> None:
    copy = installation.root / "copy.db"
    shown = installation.cli.ok("backup", str(copy)).stdout
    flat = " ".join(shown.split())
    assert str(copy) in flat
    assert installation.master.fingerprint in flat
    assert f"{copy.stat().st_size:,} bytes" in flat
    assert "accounts 1" in flat
    assert "master key is NOT in this file" in flat


def test_backup_never_overwrites_a_file_unless_forced(installation: Installation) -> None:
    target = installation.root / "existing.db"
    target.write_text("keep me")  # say, a key file
    installation.cli.fails("backup", str(target), expect=["exists already", "--force"])
    assert target.read_text() == "keep me"
    installation.cli.fails("backup", str(installation.root), expect=["is a directory"])
    installation.cli.fails("backup", str(installation.database), expect=["is the database itself"])
    # --force replaces an older backup, never another kind of file (the master key above all).
    installation.cli.fails("backup", str(target), "--force", expect=["not a database file"])
    assert target.read_text() == "keep me"
    older = installation.root / "older.db"
    installation.cli.ok("backup", str(older), "--json")
    body = installation.cli.ok("backup", str(older), "--force", "--json")
    assert body["tables"]["accounts"] == 1
    assert older.read_bytes().startswith(b"SQLite format 3\x00")


# --- restore ---------------------------------------------------------------------------------


def test_restore_is_refused_while_serving_and_the_restored_data_serves(
    installation: Installation,
) -> None:
    server = installation.serve()
    with installation.admin(server) as admin:
        made = admin.post("/datasets", json={"name": "Before", "type": "unstructured"})
        assert made.status_code == 201, made.text
        copy = installation.root / "before.db"
        installation.cli.ok("backup", str(copy))
        made = admin.post("/datasets", json={"name": "After", "type": "unstructured"})
        assert made.status_code == 201, made.text

        refused = installation.cli.fails(
            "restore", str(copy), expect=["running `keystead serve`", "stop it"]
        )
        assert f"pid {server.process.pid}" in refused
        # Nothing was touched: the service still serves both datasets.
        listed = admin.get("/datasets").json()
        assert {d["name"] for d in listed} == {"Before", "After"}
    data = installation.settings.data_dir
    assert not list(data.glob("*before-restore*"))
    assert not list(data.glob("*.restoring*"))

    stop_server(server)
    assert (data / "keystead.db-wal").exists()  # what restore must not leave behind
    body = installation.cli.ok("restore", str(copy), "--json")
    assert body["database"] == str(installation.database)
    assert body["tables"]["datasets"] == 1
    assert body["master_key_id"] == installation.master.fingerprint
    set_aside = Path(body["set_aside"])
    assert set_aside.parent == data.resolve()
    assert set_aside.name.startswith("keystead.db.before-restore-")
    # The replaced database is whole on its own (its WAL checkpointed into it) and no
    # stale WAL or index of it sits beside the restored one.
    assert column(set_aside, "SELECT name FROM datasets") == {"Before", "After"}
    assert not (data / "keystead.db-wal").exists()
    assert not (data / "keystead.db-shm").exists()
    assert stat.S_IMODE(installation.database.stat().st_mode) == 0o600

    again = installation.serve()
    with installation.admin(again) as admin:
        listed = admin.get("/datasets")
        assert listed.status_code == 200, listed.text
        assert {d["name"] for d in listed.json()} == {"Before"}
        made = admin.post("/datasets", json={"name": "Later", "type": "unstructured"})
        assert made.status_code == 201, made.text


def test_serve_does_not_start_while_a_restore_holds_the_database(
    installation: Installation,
) -> None:
    with service_lock.exclusive(installation.database):
        result = installation.cli.run("serve", "--port", "1")
    assert result.returncode == 1, result.describe()
    assert "`keystead restore` is replacing the database" in " ".join(result.stderr.split())


def test_files_that_are_not_this_installations_backups_are_refused(
    installation: Installation, tmp_path: Path
) -> None:
    """Each is refused with its reason, and the database is left exactly as it was."""
    good = tmp_path / "good.db"
    installation.cli.ok("backup", str(good))
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database at all\n" * 100)
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(good.read_bytes()[: 16 * 4096])
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('hello')")
    conn.commit()
    conn.close()
    other = make_installation(tmp_path / "other")
    other_copy = tmp_path / "other.db"
    other.cli.ok("backup", str(other_copy))

    before = digest(installation.database)
    cases = {
        garbage: "not a SQLite database",
        truncated: "cannot be read as a SQLite database",
        foreign: "not a Keystead database",
        other_copy: "belongs to another master key",
        tmp_path / "missing.db": "is not a file",
    }
    for path, reason in cases.items():
        installation.cli.fails("restore", str(path), expect=[reason])
        assert digest(installation.database) == before
    installation.cli.fails("restore", str(truncated), "--json", expect=[cases[truncated]])
    data = installation.settings.data_dir
    assert not list(data.glob("*before-restore*"))
    assert not list(data.glob("*.restoring*"))
    other.cli.assert_no_tracebacks()


def test_the_named_database_of_a_sqlite_url_is_the_one_backed_up_and_locked(
    tmp_path: Path,
) -> None:
    """KEYSTEAD_DATABASE_URL=sqlite:///… works as the data directory's database does."""
    master = MasterKey.generate()
    database = tmp_path / "elsewhere" / "ks.db"
    url = f"sqlite:///{database}"
    open_runtime(
        Settings(data_dir=tmp_path / "data", database_url=url, master_key=master.to_base64())
    ).close()
    cli = Cli(
        cwd=tmp_path,
        env={
            **clean_env(),
            "KEYSTEAD_DATABASE_URL": url,
            "KEYSTEAD_MASTER_KEY": master.to_base64(),
            "KEYSTEAD_DATA_DIR": str(tmp_path / "data"),
        },
    )
    cli.ok("backup", str(tmp_path / "copy.db"))
    with service_lock.exclusive(database):
        cli.fails("restore", str(tmp_path / "copy.db"), expect=["running `keystead serve`"])
    body = cli.ok("restore", str(tmp_path / "copy.db"), "--json")
    assert body["database"] == str(database)
    cli.assert_no_tracebacks()


def test_postgresql_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    cli = Cli(
        cwd=tmp_path,
        env={
            **clean_env(),
            "KEYSTEAD_DATABASE_URL": DEFAULT_PG,
            "KEYSTEAD_MASTER_KEY": MasterKey.generate().to_base64(),
        },
    )
    (tmp_path / "copy.db").write_bytes(b"")
    expected = ["embedded SQLite database", "pg_dump", "pg_restore", "master key"]
    cli.fails("backup", str(tmp_path / "new.db"), expect=expected)
    cli.fails("restore", str(tmp_path / "copy.db"), expect=expected)
    assert not (tmp_path / "new.db").exists()
    cli.assert_no_tracebacks()


def test_a_target_or_source_the_system_refuses_is_a_clear_error(
    installation: Installation,
) -> None:
    """A name too long, a loop of links, a filesystem that takes no file: each a plain
    refusal naming the file, never an unexpected error."""
    too_long = installation.root / ("x" * 300 + ".db")
    installation.cli.fails("backup", str(too_long), expect=["cannot write", "too long"])
    installation.cli.fails("restore", str(too_long), expect=["cannot read", "too long"])
    installation.cli.fails("backup", "/proc/keystead.db", expect=["cannot write /proc/keystead.db"])
    loop = installation.root / "loop"
    loop.symlink_to(installation.root / "loop-too")
    (installation.root / "loop-too").symlink_to(loop)
    installation.cli.ok("backup", str(loop))  # the link is replaced, never written through
    assert loop.read_bytes().startswith(b"SQLite format 3\x00")
    assert not list(installation.root.glob(".*.partial-*"))
    fifo = installation.root / "fifo.db"
    os.mkfifo(fifo)  # --force looks inside what it replaces: a FIFO would block it for ever
    installation.cli.fails("backup", str(fifo), "--force", expect=["is not a regular file"])
