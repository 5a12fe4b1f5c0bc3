"""`keystead master-key rotate` on a fresh installation per test, both engines: every wrapped
secret moves to a new key, a server started before the rotation keeps serving the official
Ubiq client throughout, an interrupted run (stopped after some batches, or killed) leaves
every secret readable and a rerun finishes, and keys kept in KEYSTEAD_MASTER_KEY are
rotated by the documented procedure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ubiq_security
from pydantic import SecretStr
from sqlalchemy import LargeBinary, select
from ubiq_security import structured

from keystead import masterkey_rotation as rotation
from keystead.accounts import service as accounts
from keystead.catalog import datasets as catalog
from keystead.crypto.masterkey import (
    Kek,
    MasterKey,
    UnwrapError,
    read_key_file,
    replace_key_file,
    write_key_file,
)
from keystead.errors import ConfigurationError
from keystead.idp import service as idp
from keystead.runtime import Runtime, open_runtime
from keystead.settings import Settings
from keystead.storage.models import Base, IdpSettings
from tests import factories as f
from tests.conftest import LiveServer, free_port, keystead_command, serve, stop_server
from tests.factories import ACTOR
from tests.support.postgres import private_schema
from tests.support.ubiq import uncached_config

SSN = "123-45-6789"
CARD = "4111111111111111"

# --- an installation of its own ------------------------------------------------------------


@dataclass
class Installation:
    settings: Settings
    key_file: Path
    env: dict[str, str]  # what a `keystead` process of this installation is started with

    def open(self) -> Runtime:
        return open_runtime(self.settings, create=False)

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [keystead_command(), *args],
            env=env or self.env,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def rotate(self, *args: str) -> dict[str, object]:
        done = self.cli("master-key", "rotate", "--json", "--settle-seconds", "0", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        result: dict[str, object] = json.loads(done.stdout)
        return result


@pytest.fixture
def database(engine_name: str, tmp_path: Path, postgres_base_url: str) -> Iterator[str]:
    """An empty database for this test alone."""
    if engine_name == "sqlite":
        yield f"sqlite:///{tmp_path / 'keystead.db'}"
        return
    with private_schema(postgres_base_url, "ks_rotation") as url:
        yield url


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}


@pytest.fixture
def installation(database: str, tmp_path: Path) -> Installation:
    """A database bound to a master key kept in a key file (mode 0600)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    key_file = data_dir / "master.key"
    write_key_file(key_file, MasterKey.generate())
    settings = Settings(
        database_url=database,
        data_dir=data_dir,
        master_key_file=key_file,
        public_url="http://127.0.0.1:8080",
    )
    open_runtime(settings, create=False).close()  # migrates and binds the key
    env = {
        **_base_env(),
        "KEYSTEAD_DATABASE_URL": database,
        "KEYSTEAD_DATA_DIR": str(data_dir),
        "KEYSTEAD_MASTER_KEY_FILE": str(key_file),
    }
    return Installation(settings, key_file, env)


@pytest.fixture
def server(installation: Installation, tmp_path: Path) -> Iterator[LiveServer]:
    """`keystead serve` on this installation, started before anything is rotated."""
    port = free_port()
    env = {**installation.env, "KEYSTEAD_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    started = serve(env, tmp_path / "server.log", port)
    yield started
    stop_server(started)


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    return uncached_config(tmp_path)


# --- data in every wrapped table ----------------------------------------------------------


@dataclass
class Stored:
    account_id: uuid.UUID
    access_key_id: str
    signing_key: str
    crypto_key: str


def populate(runtime: Runtime, *, extra_keys: int = 0) -> Stored:
    """Dataset keys (SSN has two versions; Cards is never used before the rotation), API
    key signing secrets and an SSO certificate authority's key."""
    with runtime.db.write() as s:
        account_id = f.account(s)
        ssn = f.dataset(s, account_id, "SSN", runtime.master, template="ssn")
        catalog.rotate_key(s, ssn, master=runtime.master, actor=ACTOR)
        f.dataset(s, account_id, "Cards", runtime.master, template="digits")
        f.dataset(s, account_id, "Files", runtime.master, template="text")
        created = f.manual_key(
            s, account_id, runtime.master, "app", datasets=("SSN", "Cards", "Files")
        )
        for n in range(extra_keys):
            f.manual_key(s, account_id, runtime.master, f"extra-{n}", datasets=("SSN",))
        idp.set_enabled(
            s, accounts.get_account(s, account_id), True, actor=ACTOR, master=runtime.master
        )
    secrets_ = created.secrets
    return Stored(
        account_id,
        secrets_.access_key_id,
        secrets_.secret_signing_key,
        secrets_.secret_crypto_access_key,
    )


def creds(stored: Stored, server: LiveServer, config_file: str) -> object:
    return ubiq_security.credentials(
        stored.access_key_id,
        stored.signing_key,
        stored.crypto_key,
        host=server.url,
        config_file=config_file,
    )


def unreadable(runtime: Runtime, keyring: MasterKey) -> list[str]:
    """Every wrapped secret that ``keyring`` cannot unwrap (should be none)."""
    failed = []
    with runtime.db.read() as session:
        for column in rotation.EVERY_WRAPPED:
            query = select(*column.keys, column.column).where(rotation._rows(column))
            for row in session.execute(query):
                try:
                    keyring.unwrap(bytes(row[-1]), column.context(row))
                except UnwrapError:
                    failed.append(f"{column.label} {tuple(row[:-1])}")
    return failed


def assert_all_under(installation: Installation, key_id: str, key: MasterKey | None = None) -> None:
    """Every wrapped secret is under ``key_id`` and opens with ``key`` (default: the keys
    the installation loads)."""
    runtime = installation.open()
    try:
        assert key_ids_in_use(runtime) == {key_id}
        assert unreadable(runtime, key or runtime.master) == []
    finally:
        runtime.close()


def key_ids_in_use(runtime: Runtime) -> set[str]:
    return set(rotation.census(runtime.db).by_key())


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout + done.stderr


# --- tests ----------------------------------------------------------------------------------


def test_rotation_moves_every_secret_and_a_server_started_before_keeps_serving(
    installation: Installation, server: LiveServer, config_file: str
) -> None:
    runtime = installation.open()
    stored = populate(runtime)
    old = read_key_file(installation.key_file)
    counted = rotation.census(runtime.db)
    assert all(counted.rows[c.label] for c in rotation.EVERY_WRAPPED), counted.rows
    app = creds(stored, server, config_file)
    ssn_before = structured.Encrypt(app, "SSN", SSN)
    file_before = ubiq_security.encrypt(app, b"written before the rotation")
    runtime.close()

    result = installation.rotate()

    assert result["retired_key_ids"] == [old.fingerprint]
    assert result["new_key_id"] != old.fingerprint
    assert result["rewrapped"] == sum(sum(counted.rows[c.label].values()) for c in rotation.SECRETS)
    assert result["continued"] is False
    new = read_key_file(installation.key_file)
    assert new.fingerprints == [result["new_key_id"]]
    assert installation.key_file.stat().st_mode & 0o777 == 0o600

    runtime = installation.open()
    try:
        assert key_ids_in_use(runtime) == {new.fingerprint}
        assert unreadable(runtime, new) == []
        assert len(unreadable(runtime, MasterKey(old.key))) == sum(counted.by_key().values())
        with runtime.db.read() as s:
            settings = s.get(IdpSettings, stored.account_id)
            assert settings is not None
            assert idp.authority_of(settings, runtime.master) is not None
        # Written after the rotation by another process: under the new key.
        with runtime.db.write() as s:
            later = f.manual_key(s, stored.account_id, runtime.master, "later", datasets=("SSN",))
    finally:
        runtime.close()

    # The server started under the old key: old ciphertexts, a dataset key it never read
    # before (re-wrapped), and an API key made after the rotation (new key only).
    assert structured.Decrypt(app, "SSN", ssn_before) == SSN
    assert ubiq_security.decrypt(app, file_before) == b"written before the rotation"
    cards = structured.Encrypt(app, "Cards", CARD)
    assert structured.Decrypt(app, "Cards", cards) == CARD
    newcomer = creds(
        Stored(
            stored.account_id,
            later.secrets.access_key_id,
            later.secrets.secret_signing_key,
            later.secrets.secret_crypto_access_key,
        ),
        server,
        config_file,
    )
    assert structured.Decrypt(newcomer, "SSN", ssn_before) == SSN
    assert server.process.poll() is None

    with pytest.raises(ConfigurationError, match="does not open this database"):
        open_runtime(
            installation.settings.model_copy(
                update={"master_key_file": None, "master_key": SecretStr(old.to_base64())}
            ),
            create=False,
        )
    with_old = installation.cli(
        "master-key", "status", env={**installation.env, "KEYSTEAD_MASTER_KEY": old.to_base64()}
    )
    assert with_old.returncode == 1
    assert "does not open this database" in with_old.stderr
    no_traceback(with_old)


def test_a_stopped_rotation_leaves_every_secret_readable_and_a_rerun_finishes(
    installation: Installation, server: LiveServer, config_file: str
) -> None:
    runtime = installation.open()
    stored = populate(runtime, extra_keys=20)
    old = read_key_file(installation.key_file)
    runtime.close()

    stopped = installation.cli(
        "master-key", "rotate", "--batch-size", "3", "--stop-after-batches", "2"
    )
    assert stopped.returncode == 1
    assert "run the command again" in stopped.stderr
    no_traceback(stopped)

    during = read_key_file(installation.key_file)
    assert len(during.keks) == 2
    assert during.fingerprints[1] == old.fingerprint
    runtime = installation.open()  # a process started mid-rotation opens the database
    try:
        census = rotation.census(runtime.db).by_key()
        moved = census[during.fingerprint]
        assert 0 < moved <= 6  # two batches of at most three
        assert census[old.fingerprint] > 1
        assert moved + census[old.fingerprint] == sum(census.values())
        assert unreadable(runtime, during) == []
        # New secrets are wrapped under the new key.
        with runtime.db.write() as s:
            f.manual_key(s, stored.account_id, runtime.master, "mid", datasets=("SSN",))
        assert rotation.census(runtime.db).by_key()[during.fingerprint] == moved + 1
    finally:
        runtime.close()
    app = creds(stored, server, config_file)
    assert structured.Decrypt(app, "Cards", structured.Encrypt(app, "Cards", CARD)) == CARD

    status = installation.cli("master-key", "status", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["rotation_under_way"] is True
    assert shown["key_ids"] == during.fingerprints
    assert shown["database_key_id"] == old.fingerprint

    result = installation.rotate()
    assert result["continued"] is True
    assert result["new_key_id"] == during.fingerprint
    assert result["retired_key_ids"] == [old.fingerprint]
    assert_all_under(installation, during.fingerprint, MasterKey(during.key))
    assert read_key_file(installation.key_file).fingerprints == [during.fingerprint]
    assert structured.Decrypt(app, "SSN", structured.Encrypt(app, "SSN", SSN)) == SSN


def test_a_killed_rotation_leaves_every_secret_readable_and_a_rerun_finishes(
    installation: Installation,
) -> None:
    runtime = installation.open()
    populate(runtime, extra_keys=30)
    old = read_key_file(installation.key_file)
    runtime.close()
    # A long settling wait keeps the process alive after the re-wrapping: it is killed
    # somewhere in steps 2-3, whatever the machine's speed.
    command = [keystead_command(), "master-key", "rotate", "--batch-size", "1"]
    process = subprocess.Popen(
        [*command, "--settle-seconds", "60"],
        env=installation.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(read_key_file(installation.key_file).keks) < 2:
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL

    during = read_key_file(installation.key_file)
    runtime = installation.open()
    try:
        assert key_ids_in_use(runtime) <= {old.fingerprint, during.fingerprint}
        assert unreadable(runtime, during) == []
    finally:
        runtime.close()

    result = installation.rotate()
    assert result["continued"] is True
    assert result["new_key_id"] == during.fingerprint
    assert_all_under(installation, during.fingerprint, MasterKey(during.key))


def test_a_rerun_with_nothing_left_only_retires_the_old_key(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = installation.open()
    populate(runtime)
    old = read_key_file(installation.key_file)

    # Interrupted after the database recorded the new key, before the file lost the old.
    calls: list[int] = []

    def replace_then_die(path: Path, keks: tuple[Kek, ...]) -> None:
        calls.append(len(keks))
        if len(calls) == 2:
            raise KeyboardInterrupt
        replace_key_file(path, keks)

    monkeypatch.setattr("keystead.masterkey_rotation.replace_key_file", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        rotation.Rotation(runtime.db, settle_seconds=0).rotate_file(installation.key_file)
    monkeypatch.undo()
    runtime.close()
    during = read_key_file(installation.key_file)
    assert during.fingerprints[1:] == [old.fingerprint]
    assert rotation.census(installation.open().db).bound_to == during.fingerprint

    result = installation.rotate()
    assert result == {
        "key_source": str(installation.key_file),
        "new_key_id": during.fingerprint,
        "retired_key_ids": [old.fingerprint],
        "rewrapped": 0,
        "continued": True,
    }
    assert read_key_file(installation.key_file).fingerprints == [during.fingerprint]

    # Run again on a finished rotation: a rotation of its own, nothing lost.
    again = installation.rotate()
    assert again["retired_key_ids"] == [during.fingerprint]
    assert_all_under(installation, str(again["new_key_id"]))


def test_keys_in_the_environment_are_rotated_by_the_documented_steps(
    installation: Installation,
) -> None:
    runtime = installation.open()
    populate(runtime)
    runtime.close()
    old = read_key_file(installation.key_file).to_base64()
    env = {**installation.env, "KEYSTEAD_MASTER_KEY": old}
    del env["KEYSTEAD_MASTER_KEY_FILE"]

    refused = installation.cli("master-key", "rotate", env=env)
    assert refused.returncode == 1
    assert "KEYSTEAD_MASTER_KEY" in refused.stderr
    assert "keystead master-key generate" in refused.stderr
    no_traceback(refused)
    as_json = installation.cli("master-key", "rotate", "--json", env=env)
    assert as_json.returncode == 1
    assert "NEW,OLD" in json.loads(as_json.stdout)["message"]

    generated = installation.cli("master-key", "generate", env=env)
    assert generated.returncode == 0
    new = MasterKey.from_base64(generated.stdout, source="generate")
    both = {**env, "KEYSTEAD_MASTER_KEY": f"{new.to_base64()},{old}"}
    done = installation.cli("master-key", "rotate", "--json", "--settle-seconds", "0", env=both)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new_key_id"] == new.fingerprint

    with_old = installation.cli("master-key", "status", env=env)
    assert with_old.returncode == 1
    assert "does not open this database" in with_old.stderr
    with_new = installation.cli(
        "master-key", "status", "--json", env={**env, "KEYSTEAD_MASTER_KEY": new.to_base64()}
    )
    assert with_new.returncode == 0, with_new.stderr
    shown = json.loads(with_new.stdout)
    assert shown["database_key_id"] == new.fingerprint
    assert all(set(rows) <= {new.fingerprint} for rows in shown["rows"].values())


def test_a_keyring_follows_its_key_file(tmp_path: Path) -> None:
    """A process reads the file again when it meets a key it lacks or wraps after the file
    was replaced; keys the file drops still unwrap what they wrapped."""
    path = tmp_path / "master.key"
    first, second = Kek.generate(), Kek.generate()
    replace_key_file(path, (first,))
    ring = read_key_file(path)
    under_first = ring.wrap(b"one", "ctx")
    under_second = MasterKey(second.key).wrap(b"two", "ctx")
    with pytest.raises(UnwrapError, match="was wrapped under master key"):
        ring.unwrap(under_second, "ctx")

    replace_key_file(path, (second, first))
    assert ring.unwrap(under_second, "ctx") == b"two"
    assert ring.fingerprint == second.key_id.hex()
    replace_key_file(path, (second,))
    assert ring.wrap(b"three", "ctx")[2:6] == second.key_id
    assert ring.unwrap(under_first, "ctx") == b"one"

    # An unreadable replacement is ignored: the keys held keep working.
    path.write_text("not base64\n")
    assert ring.unwrap(ring.wrap(b"four", "ctx"), "ctx") == b"four"
    with pytest.raises(UnwrapError):
        ring.unwrap(MasterKey.generate().wrap(b"five", "ctx"), "ctx")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_replaced_key_file_keeps_its_owner_and_mode(tmp_path: Path) -> None:
    """The service reads the key file as its own user; an operator rotating as root must not
    leave it a file only root can read."""
    path = tmp_path / "master.key"
    first, second = Kek.generate(), Kek.generate()
    replace_key_file(path, (first,))
    os.chown(path, 65534, 65534)  # nobody, as a service user would own it
    replace_key_file(path, (second, first))
    after = path.stat()
    assert (after.st_uid, after.st_gid) == (65534, 65534)
    assert after.st_mode & 0o777 == 0o600
    assert read_key_file(path).fingerprint == second.key_id.hex()


def test_every_binary_column_is_known_to_the_rotation() -> None:
    """Wrapped secrets are kept in binary columns; one the rotation does not list would keep
    rows under a key it retires."""
    binary = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    listed = {f"{c.column.table.name}.{c.column.key}" for c in rotation.EVERY_WRAPPED}
    assert binary == listed


def test_secrets_written_under_the_old_key_during_the_rotation_are_caught(
    installation: Installation,
) -> None:
    """A process that has not yet noticed the new key writes under the old one while the
    rows are being re-wrapped: the rotation goes round again before recording the new key."""
    runtime = installation.open()
    stored = populate(runtime, extra_keys=4)
    unaware = MasterKey(runtime.master.key)  # the old key alone, following no file
    written: list[str] = []

    def write_meanwhile(n: int) -> None:
        if len(written) < 3:
            with runtime.db.write() as s:
                name = f"meanwhile-{len(written)}"
                f.manual_key(s, stored.account_id, unaware, name, datasets=("SSN",))
            written.append(name)

    try:
        outcome = rotation.Rotation(
            runtime.db, batch_size=2, settle_seconds=0, advance=write_meanwhile
        ).rotate_file(installation.key_file)
        assert len(written) == 3
        assert key_ids_in_use(runtime) == {outcome.new_key_id}
        assert unreadable(runtime, read_key_file(installation.key_file)) == []
    finally:
        runtime.close()


def test_ctrl_c_stops_with_a_message_and_a_rerun_finishes(installation: Installation) -> None:
    runtime = installation.open()
    populate(runtime)
    runtime.close()
    # The command as a terminal runs it: a child of a shell without job control would
    # inherit SIGINT ignored, so the wrapper gives it Python's usual handler back.
    interruptible = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from keystead.cli.main import main; main()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", interruptible, "master-key", "rotate", "--settle-seconds", "60"],
        env=installation.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(read_key_file(installation.key_file).keks) < 2:
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "run `keystead master-key rotate` again" in " ".join(err.split())
    assert "Traceback" not in out + err

    during = read_key_file(installation.key_file)
    result = installation.rotate()
    assert result["continued"] is True
    assert result["new_key_id"] == during.fingerprint


def test_a_second_rotation_at_the_same_time_is_refused(installation: Installation) -> None:
    """Two runs would each add a key and the second rename would drop the first's."""
    before = read_key_file(installation.key_file)
    with rotation._exclusive(installation.key_file):
        second = installation.cli("master-key", "rotate")
    assert second.returncode == 1
    assert "another `keystead master-key rotate` is running" in " ".join(second.stderr.split())
    no_traceback(second)
    assert read_key_file(installation.key_file) == before


def test_a_key_file_that_is_not_a_regular_file_is_refused_unread(tmp_path: Path) -> None:
    """A FIFO would block every start (and `master-key status`) for ever."""
    fifo = tmp_path / "master.key"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        read_key_file(fifo)
