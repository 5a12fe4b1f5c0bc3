"""The installed `keystead` command, run as a subprocess the way an operator or script would.

Two kinds of tests:

* the embedded default (SQLite in ./keystead-data, generated master key) on a fresh
  directory with no ``KEYSTEAD_*`` variables at all;
* the full operator flow against the test database of each engine (``runtime`` empties
  the tables first), with ``--json`` output checked at every step.

Every command's output is kept; each test ends by checking that none of it held a
Python traceback (an operator must only ever see a message and exit code 1).
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import secrets
import stat
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ubiq_security

from keystead.directory import service as directory
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage.models import ApiKey
from tests import factories as f
from tests.conftest import keystead_command

DEFAULT_ADMIN = "admin@keystead.local"


# --- running the command -------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """This process's environment without any KEYSTEAD_* setting (a fresh operator shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env["COLUMNS"] = "250"  # rich wraps stderr at the terminal width; keep messages whole
    return env


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return (
            f"keystead {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not JSON ({exc})\n{self.describe()}") from exc


@dataclass
class Cli:
    """Runs `keystead` in one working directory with one environment; keeps every result."""

    cwd: Path
    env: dict[str, str]
    transcript: list[Result] = field(default_factory=list)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        completed = subprocess.run(
            [keystead_command(), *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        result = Result(args, completed.returncode, completed.stdout, completed.stderr)
        self.transcript.append(result)
        return result

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run a command that must succeed; its parsed JSON when --json was given."""
        result = self.run(*args, env=env)
        assert result.returncode == 0, result.describe()
        assert "Traceback" not in result.output, result.describe()
        return result.json() if "--json" in args else result

    def fails(
        self,
        *args: str,
        expect: list[str],
        status: int | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run a command that must fail with exit code 1 and a message holding ``expect``.

        With --json the message must be the JSON object {"message", "status"} on stdout;
        without, it goes to stderr and stdout stays empty. Returns the message.
        """
        result = self.run(*args, env=env)
        assert result.returncode == 1, result.describe()
        if "--json" in args:
            body = result.json()
            assert set(body) == {"message", "status"}, result.describe()
            message = body["message"]
            if status is not None:
                assert body["status"] == status, result.describe()
        else:
            assert result.stdout.strip() == "", result.describe()
            message = result.stderr
        flat = " ".join(message.split())
        for phrase in expect:
            assert phrase in flat, f"{phrase!r} not in the message\n{result.describe()}"
        return flat

    def assert_no_tracebacks(self) -> None:
        """No command of this test printed a Python traceback."""
        bad = [r.describe() for r in self.transcript if "Traceback" in r.output]
        assert not bad, f"{len(bad)} command(s) printed a traceback:\n\n" + "\n\n".join(bad)


def embedded_cli(cwd: Path) -> Cli:
    return Cli(cwd=cwd, env=clean_env())


@pytest.fixture
def cli(runtime: Runtime, settings: Settings, tmp_path: Path) -> Cli:
    """`keystead` pointed at this engine's (emptied) test database."""
    assert settings.master_key is not None
    env = {
        **clean_env(),
        "KEYSTEAD_DATABASE_URL": settings.database_url or "",
        "KEYSTEAD_MASTER_KEY": settings.master_key.get_secret_value(),
        "KEYSTEAD_DATA_DIR": str(tmp_path),
    }
    return Cli(cwd=tmp_path, env=env)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def names(rows: list[dict[str, Any]], key: str = "name") -> list[str]:
    return [row[key] for row in rows]


def access_map(access: dict[str, Any]) -> dict[str, list[tuple[str, str | None]]]:
    """{dataset: [(via, dataset_group), …]} from `api-key access --json`."""
    return {
        entry["dataset"]: [(r["via"], r["dataset_group"]) for r in entry["reasons"]]
        for entry in access["datasets"]
    }


def random_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


# --- embedded default, fresh install -------------------------------------------------------


def test_init_creates_the_embedded_installation_once(tmp_path: Path) -> None:
    """`init` makes ./keystead-data (db + 0600 key) and the first admin; a rerun changes nothing."""
    cli = embedded_cli(tmp_path)
    data = tmp_path / "keystead-data"

    first = cli.run("init", "--json")
    assert first.returncode == 0, first.describe()
    body = first.json()
    assert body["created"] is True
    assert body["database"] == "sqlite"
    assert Path(body["data_dir"]) == data.resolve()
    assert uuid.UUID(body["customer_id"])
    assert body["admin_email"] == DEFAULT_ADMIN
    assert len(body["admin_password"]) >= 12
    assert "admin_token" not in body  # the admin makes tokens once past the one-time password
    assert "master.key" in first.stderr  # the operator is told to back the new key up

    assert data.is_dir()
    assert mode_of(data) == 0o700
    assert (data / "keystead.db").is_file()
    key_file = data / "master.key"
    assert mode_of(key_file) == 0o600
    key_text = key_file.read_text()
    assert len(base64.b64decode(key_text.strip(), validate=True)) == 32

    accounts_before = cli.ok("account", "list", "--json")
    assert names(accounts_before, "customer_id") == [body["customer_id"]]

    again = cli.ok("init", "--json")
    assert again["created"] is False
    assert again["master_key_id"] == body["master_key_id"]
    for secret in ("admin_password", "admin_token", "customer_id"):
        assert secret not in again
    assert key_file.read_text() == key_text
    assert mode_of(key_file) == 0o600
    assert cli.ok("account", "list", "--json") == accounts_before
    admins = cli.ok("admin", "list", "--json")
    assert names(admins, "email") == [DEFAULT_ADMIN]

    human = cli.ok("init")
    assert "already initialised" in human.stdout
    cli.assert_no_tracebacks()


def test_data_dir_option_and_environment_choose_the_directory(tmp_path: Path) -> None:
    """`--data-dir` and KEYSTEAD_DATA_DIR put the installation elsewhere than ./keystead-data."""
    cli = embedded_cli(tmp_path)

    by_option = cli.ok("--data-dir", "by-option", "init", "--json")
    assert by_option["created"] is True
    assert Path(by_option["data_dir"]) == (tmp_path / "by-option").resolve()
    assert (tmp_path / "by-option" / "keystead.db").is_file()
    assert mode_of(tmp_path / "by-option" / "master.key") == 0o600

    elsewhere = tmp_path / "elsewhere" / "nested"
    by_env = cli.ok("init", "--json", env={"KEYSTEAD_DATA_DIR": str(elsewhere)})
    assert by_env["created"] is True
    assert Path(by_env["data_dir"]) == elsewhere.resolve()
    assert (elsewhere / "keystead.db").is_file()
    assert mode_of(elsewhere) == 0o700
    assert mode_of(elsewhere / "master.key") == 0o600

    assert not (tmp_path / "keystead-data").exists()
    # Two separate installations: separate accounts and separate master keys.
    assert by_env["customer_id"] != by_option["customer_id"]
    assert by_env["master_key_id"] != by_option["master_key_id"]
    listed = cli.ok("account", "list", "--json", env={"KEYSTEAD_DATA_DIR": str(elsewhere)})
    assert names(listed, "customer_id") == [by_env["customer_id"]]
    cli.assert_no_tracebacks()


def test_wrong_master_key_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    """A different valid master key for an initialised data dir: exit 1, a clear message."""
    cli = embedded_cli(tmp_path)
    body = cli.ok("init", "--json")
    wrong = {"KEYSTEAD_MASTER_KEY": random_master_key()}

    message = cli.fails(
        "dataset", "list", "--json", env=wrong, expect=["does not open this database"]
    )
    assert body["master_key_id"] in message  # names the key the database wants
    cli.fails("dataset", "list", env=wrong, expect=["does not open this database"])
    cli.fails("init", env=wrong, expect=["does not open this database"])
    # The right key (from the file) still works afterwards.
    assert cli.ok("dataset", "list", "--json") == []
    cli.assert_no_tracebacks()


def test_master_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A master key file with mode 0644: exit 1 and an instruction to chmod 600 it."""
    cli = embedded_cli(tmp_path)
    cli.ok("init", "--json")
    key_file = tmp_path / "keystead-data" / "master.key"
    key_file.chmod(0o644)

    cli.fails("dataset", "list", expect=["chmod 600", "master.key"])
    cli.fails("dataset", "list", "--json", expect=["chmod 600"])
    key_file.chmod(0o600)
    assert cli.ok("dataset", "list", "--json") == []
    cli.assert_no_tracebacks()


def test_malformed_master_key_in_the_environment_is_a_clear_error(tmp_path: Path) -> None:
    """Garbage or short base64 in KEYSTEAD_MASTER_KEY: exit 1 naming the variable and the fault."""
    cli = embedded_cli(tmp_path)
    cli.ok("init", "--json")

    garbage = {"KEYSTEAD_MASTER_KEY": "this is not base64!!"}
    cli.fails("dataset", "list", env=garbage, expect=["KEYSTEAD_MASTER_KEY", "not valid base64"])
    cli.fails("dataset", "list", "--json", env=garbage, expect=["KEYSTEAD_MASTER_KEY", "base64"])
    short = {"KEYSTEAD_MASTER_KEY": base64.b64encode(b"too short").decode()}
    cli.fails("dataset", "list", env=short, expect=["KEYSTEAD_MASTER_KEY", "32"])
    cli.assert_no_tracebacks()


# --- the operator flow, on both engines ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("datset", "list"), ["No such command 'datset'", "Did you mean 'dataset'"]),
        (("doctorr",), ["No such command 'doctorr'", "'doctor'"]),
        (("dataset", "list", "--bogus"), ["No such option: --bogus"]),
        (("--nope",), ["No such option: --nope"]),
        (("serve", "--port", "abc"), ["Invalid value for '--port'"]),
        (("serve", "--workers", "0"), ["Invalid value for '--workers'"]),
        (("api-key", "create"), ["Missing argument"]),
        (("dataset", "create", "x"), ["Missing option '--type'"]),
        (("usage", "summary", "--days", "x"), ["No such option: --days"]),
    ],
)
def test_usage_errors_print_usage_and_exit_2_without_a_traceback(
    tmp_path: Path, args: tuple[str, ...], expect: list[str]
) -> None:
    """A typo is a usage error, as click shows it: the usage line, the error and its
    suggestion, exit code 2, and never a Python traceback (typer may carry its own copy of
    click, whose errors are not click's own classes)."""
    result = embedded_cli(tmp_path).run(*args)
    assert result.returncode == 2, result.describe()
    assert "Traceback" not in result.output, result.describe()
    assert "Usage: keystead" in result.stderr, result.describe()
    for phrase in expect:
        assert phrase in result.stderr, result.describe()
    assert not (tmp_path / "keystead-data").exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("env", "expect"),
    [
        ({"KEYSTEAD_PORT": "abc"}, ["invalid setting: KEYSTEAD_PORT", "valid integer"]),
        ({"KEYSTEAD_LOG_LEVEL": "loud"}, ["invalid setting: KEYSTEAD_LOG_LEVEL"]),
        ({"KEYSTEAD_CONFIG_FILE": "missing.toml"}, ["names missing.toml: no such file"]),
        ({"KEYSTEAD_CONFIG_FILE": "bad.toml"}, ["cannot read config file bad.toml"]),
        ({"KEYSTEAD_CONFIG_FILE": "typo.toml"}, ["'metric_token' in the config file is not"]),
        ({"KEYSTEAD_TRUSTED_PROXIES": "lb.internal"}, ["'lb.internal' is not an IP address"]),
        ({"KEYSTEAD_DATABASE_URL": "postgresql://u:pw@h:port/db"}, ["not a database URL"]),
        ({"KEYSTEAD_RETENTION_AUDIT_DAYS": "1000000"}, ["KEYSTEAD_RETENTION_AUDIT_DAYS"]),
        ({"KEYSTEAD_LOOKUP_KEEP_MS": "500"}, ["KEYSTEAD_LOOKUP_KEEP_MS", "100"]),
    ],
)
def test_a_bad_setting_is_named_without_a_traceback(
    tmp_path: Path, env: dict[str, str], expect: list[str]
) -> None:
    (tmp_path / "bad.toml").write_text("port = [\n")
    (tmp_path / "typo.toml").write_text('metrics = true\nmetric_token = "s3cret"\n')
    cli = embedded_cli(tmp_path)
    cli.fails("dataset", "list", expect=expect, env=env)
    cli.fails("dataset", "list", "--json", expect=expect, env=env)
    cli.assert_no_tracebacks()


def test_dataset_and_dataset_group_lifecycle(cli: Cli) -> None:
    """Datasets (create/list/show/rotate/delete) and dataset groups (create … delete) via --json."""
    first = cli.ok("init", "--json")
    assert first["created"] is True
    assert first["admin_email"] == DEFAULT_ADMIN
    assert first["admin_password"]

    ssn = cli.ok("dataset", "create", "SSN", "--type", "structured", "--template", "ssn", "--json")
    assert ssn["name"] == "SSN"
    assert ssn["type"] == "structured"
    assert ssn["template"] == "ssn"
    assert ssn["current_key_number"] == 0
    assert [k["key_number"] for k in ssn["keys"]] == [0]
    assert ssn["dataset_groups"] == []
    assert ssn["definition"]["input_character_set"] == "0123456789"
    assert ssn["definition"]["passthrough"] == "-"
    assert isinstance(ssn["max_key_number"], int)
    assert ssn["max_key_number"] >= 1

    notes = cli.ok("dataset", "create", "Notes", "--type", "unstructured", "--json")
    assert notes["type"] == "unstructured"
    assert notes["template"] == "text"
    assert notes["definition"] is None
    assert notes["max_key_number"] is None

    cards = cli.ok(
        "dataset", "create", "Cards", "--type", "structured", "--template", "digits", "--json"
    )
    assert cards["template"] == "digits"
    assert cards["definition"]["input_character_set"] == "0123456789"

    listed = cli.ok("dataset", "list", "--json")
    assert names(listed) == ["Cards", "Notes", "SSN"]
    assert {d["name"]: d["id"] for d in listed} == {
        "Cards": cards["id"],
        "Notes": notes["id"],
        "SSN": ssn["id"],
    }
    table = cli.ok("dataset", "list").stdout
    assert all(name in table for name in ("Cards", "Notes", "SSN"))

    shown = cli.ok("dataset", "show", "SSN", "--json")
    assert shown["id"] == ssn["id"]
    assert shown["current_key_number"] == 0
    assert cli.ok("dataset", "show", "ssn", "--json")["id"] == ssn["id"]  # case-insensitive

    rotated = cli.ok("dataset", "rotate-key", "SSN", "--json")
    assert rotated["current_key_number"] == 1
    assert [k["key_number"] for k in rotated["keys"]] == [0, 1]
    assert cli.ok("dataset", "show", "SSN", "--json")["current_key_number"] == 1

    templates = {t["name"]: t for t in cli.ok("dataset", "templates", "--json")}
    assert {"ssn", "digits", "alnum", "alnum-upper", "text"} <= set(templates)
    assert templates["ssn"]["type"] == "structured"
    assert templates["ssn"]["max_key_number"] == ssn["max_key_number"]
    assert templates["text"]["type"] == "unstructured"
    assert templates["text"]["max_key_number"] is None

    group = cli.ok(
        "dataset-group", "create", "HR Team", "--dataset", "SSN", "--dataset", "Notes", "--json"
    )
    assert group["name"] == "HR Team"
    assert group["datasets"] == ["Notes", "SSN"]
    uuid.UUID(group["id"])

    added = cli.ok("dataset-group", "add", "HR Team", "Cards", "--json")
    assert added["datasets"] == ["Cards", "Notes", "SSN"]
    # Adding what is already there changes nothing.
    assert cli.ok("dataset-group", "add", "HR Team", "SSN", "--json")["datasets"] == [
        "Cards",
        "Notes",
        "SSN",
    ]
    removed = cli.ok("dataset-group", "remove", "HR Team", "Cards", "--json")
    assert removed["datasets"] == ["Notes", "SSN"]
    # One unknown dataset in the list: nothing at all is added.
    cli.fails("dataset-group", "add", "HR Team", "Cards", "Nope", expect=["Nope"])
    assert cli.ok("dataset-group", "show", "HR Team", "--json")["datasets"] == ["Notes", "SSN"]
    cli.fails("dataset-group", "remove", "HR Team", "Cards", "--json", status=404, expect=["Cards"])
    assert cli.ok("dataset", "show", "SSN", "--json")["dataset_groups"] == ["HR Team"]

    renamed = cli.ok("dataset-group", "rename", "HR Team", "People Ops", "--json")
    assert renamed["name"] == "People Ops"
    assert renamed["id"] == group["id"]
    assert renamed["datasets"] == ["Notes", "SSN"]
    cli.fails("dataset-group", "show", "HR Team", "--json", status=404, expect=["HR Team"])
    assert cli.ok("dataset", "show", "Notes", "--json")["dataset_groups"] == ["People Ops"]

    finance = cli.ok("dataset-group", "create", "Finance", "--dataset", "Cards", "--json")
    assert finance["datasets"] == ["Cards"]
    cli.fails(
        "dataset-group",
        "rename",
        "People Ops",
        "finance",
        "--json",
        status=409,
        expect=["already exists"],
    )
    groups = cli.ok("dataset-group", "list", "--json")
    assert [(g["name"], g["datasets"]) for g in groups] == [
        ("Finance", ["Cards"]),
        ("People Ops", ["Notes", "SSN"]),
    ]
    shown_group = cli.ok("dataset-group", "show", "people ops", "--json")
    assert shown_group["id"] == group["id"]

    assert cli.ok("dataset-group", "delete", "Finance", "--json") == {"deleted": "Finance"}
    assert names(cli.ok("dataset-group", "list", "--json")) == ["People Ops"]
    assert names(cli.ok("dataset", "list", "--json")) == ["Cards", "Notes", "SSN"]  # kept

    cli.fails("dataset", "delete", "SSN", expect=["--yes"])
    cli.fails("dataset", "delete", "SSN", "--json", expect=["--yes"])
    assert names(cli.ok("dataset", "list", "--json")) == ["Cards", "Notes", "SSN"]
    deleted = cli.ok("dataset", "delete", "SSN", "--yes", "--json")
    assert deleted == {
        "deleted": "SSN",
        "removed_from_dataset_groups": ["People Ops"],
        "removed_grants": 0,
    }
    assert names(cli.ok("dataset", "list", "--json")) == ["Cards", "Notes"]
    assert cli.ok("dataset-group", "show", "People Ops", "--json")["datasets"] == ["Notes"]
    cli.fails("dataset", "show", "SSN", "--json", status=404, expect=["SSN"])
    cli.assert_no_tracebacks()


def test_api_key_lifecycle_access_and_credentials_file(cli: Cli, tmp_path: Path) -> None:
    """An API key's credentials file, access, explain and every edit, through the CLI."""
    public_url = "http://keystead.test:8443"
    cli.env["KEYSTEAD_PUBLIC_URL"] = public_url + "/"
    cli.ok("init", "--json")
    cli.ok("dataset", "create", "SSN", "--type", "structured", "--template", "ssn", "--json")
    cli.ok("dataset", "create", "Notes", "--type", "unstructured", "--json")
    cli.ok("dataset", "create", "Cards", "--type", "structured", "--template", "digits", "--json")
    cli.ok("dataset-group", "create", "HR Team", "--dataset", "SSN", "--dataset", "Notes", "--json")

    creds = tmp_path / "app1.credentials"
    created = cli.ok(
        "api-key",
        "create",
        "app1",
        "--dataset",
        "Cards",
        "--dataset-group",
        "HR Team",
        "--credentials-file",
        str(creds),
        "--json",
    )
    key = created["access_key_id"]
    assert created["name"] == "app1"
    assert created["enabled"] is True
    assert created["auto_provisioned"] is False
    assert created["grants"] == {"datasets": ["Cards"], "dataset_groups": ["HR Team"]}
    assert created["secret_signing_key"]
    assert created["secret_crypto_access_key"]

    assert creds.is_file()
    assert mode_of(creds) == 0o600
    assert creds.read_text() == created["credentials_file"]
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(creds)
    assert ini.sections() == ["default"]
    assert dict(ini["default"]) == {
        "access_key_id": key,
        "secret_signing_key": created["secret_signing_key"],
        "secret_crypto_access_key": created["secret_crypto_access_key"],
        "server": public_url,
    }
    # Synchronous events: otherwise the client starts a reporter thread that would later
    # try to reach keystead.test (which does not resolve) in the middle of another test.
    config = tmp_path / "ubiq-configuration.json"
    config.write_text(json.dumps({"event_reporting": {"synchronous": True}}))
    ubiq = ubiq_security.configCredentials(str(creds), config_file=str(config))
    assert ubiq.access_key_id == key
    assert ubiq.secret_signing_key == created["secret_signing_key"]
    assert ubiq.secret_crypto_access_key == created["secret_crypto_access_key"]
    assert ubiq.host == public_url
    assert ubiq.set()

    access = cli.ok("api-key", "access", key, "--json")
    assert access["access_key_id"] == key
    assert access["enabled"] is True
    assert access_map(access) == {
        "Cards": [("direct", None)],
        "Notes": [("dataset_group", "HR Team")],
        "SSN": [("dataset_group", "HR Team")],
    }
    assert [e["type"] for e in access["datasets"]] == ["structured", "unstructured", "structured"]

    explained = cli.ok("api-key", "explain", key, "SSN", "--json")
    assert explained["allowed"] is True
    assert explained["dataset"] == "SSN"
    assert explained["key_enabled"] is True
    assert [(r["via"], r["dataset_group"]) for r in explained["reasons"]] == [
        ("dataset_group", "HR Team")
    ]
    assert "HR Team" in explained["summary"]

    cli.ok("dataset-group", "remove", "HR Team", "SSN", "--json")
    denied = cli.ok("api-key", "explain", key, "SSN", "--json")
    assert denied["allowed"] is False
    assert denied["reasons"] == []
    assert sorted(access_map(cli.ok("api-key", "access", key, "--json"))) == ["Cards", "Notes"]

    disabled = cli.ok("api-key", "disable", key, "--json")
    assert disabled["enabled"] is False
    assert cli.ok("api-key", "access", key, "--json")["enabled"] is False
    assert cli.ok("api-key", "explain", key, "Cards", "--json")["key_enabled"] is False
    assert cli.ok("api-key", "enable", key, "--json")["enabled"] is True

    renamed = cli.ok("api-key", "rename", key, "app-one", "--json")
    assert renamed["name"] == "app-one"
    assert renamed["access_key_id"] == key

    granted = cli.ok("api-key", "grant", key, "--dataset", "SSN", "--json")
    assert granted["grants"] == {"datasets": ["Cards", "SSN"], "dataset_groups": ["HR Team"]}
    assert access_map(cli.ok("api-key", "access", key, "--json"))["SSN"] == [("direct", None)]
    cli.fails("api-key", "grant", key, "--json", expect=["--dataset"])

    revoked = cli.ok("api-key", "revoke", key, "--dataset-group", "HR Team", "--json")
    assert revoked["grants"] == {"datasets": ["Cards", "SSN"], "dataset_groups": []}
    assert access_map(cli.ok("api-key", "access", key, "--json")) == {
        "Cards": [("direct", None)],
        "SSN": [("direct", None)],
    }
    cli.fails("api-key", "revoke", key, "--dataset", "Notes", "--json", expect=["Notes"])
    assert cli.ok("api-key", "show", key, "--json")["grants"]["datasets"] == ["Cards", "SSN"]

    shown = cli.ok("api-key", "show", key, "--json")
    assert shown["name"] == "app-one"
    assert shown["enabled"] is True
    assert "secret_signing_key" not in shown
    assert "secret_crypto_access_key" not in shown

    listing = cli.run("api-key", "list", "--json")
    assert listing.returncode == 0, listing.describe()
    assert [(k["access_key_id"], k["name"]) for k in listing.json()] == [(key, "app-one")]
    assert created["secret_signing_key"] not in listing.stdout
    assert created["secret_crypto_access_key"] not in listing.stdout

    assert cli.ok("api-key", "delete", key, "--json") == {"deleted": key}
    assert cli.ok("api-key", "list", "--json") == []
    cli.fails("api-key", "show", key, "--json", status=404, expect=[key])
    cli.assert_no_tracebacks()


def test_api_key_create_never_leaves_a_key_without_its_credentials_file(
    cli: Cli, tmp_path: Path
) -> None:
    """A credentials file that exists or cannot be written: exit 1 and no API key is created."""
    cli.ok("init", "--json")
    cli.ok("dataset", "create", "Cards", "--type", "structured", "--template", "digits", "--json")

    existing = tmp_path / "taken.credentials"
    existing.write_text("keep me\n")
    cli.fails(
        "api-key",
        "create",
        "app-taken",
        "--dataset",
        "Cards",
        "--credentials-file",
        str(existing),
        "--json",
        status=409,
        expect=["exists"],
    )
    assert existing.read_text() == "keep me\n"
    assert cli.ok("api-key", "list", "--json") == []

    unwritable = tmp_path / "no-such-directory" / "app.credentials"
    cli.fails(
        "api-key",
        "create",
        "app-lost",
        "--dataset",
        "Cards",
        "--credentials-file",
        str(unwritable),
        expect=[str(unwritable)],
    )
    assert not unwritable.exists()
    # The secrets were never shown to anyone, so a key must not have been created.
    assert cli.ok("api-key", "list", "--json") == []
    cli.assert_no_tracebacks()


def test_audit_admins_tokens_and_account(cli: Cli) -> None:
    """audit list, admin create/list/reset-password, admin tokens and account show/list."""
    first = cli.ok("init", "--json")
    cli.ok("dataset", "create", "Cards", "--type", "structured", "--template", "digits", "--json")
    cli.ok("dataset", "rotate-key", "Cards", "--json")

    viewer = cli.ok("admin", "create", "ops@example.com", "--role", "viewer", "--json")
    assert viewer["email"] == "ops@example.com"
    assert viewer["role"] == "viewer"
    assert viewer["password_change_required"] is True
    assert viewer["one_time_password"]
    cli.fails("admin", "create", "ops@example.com", "--json", status=409, expect=["already exists"])

    admins = cli.ok("admin", "list", "--json")
    assert [(a["email"], a["role"]) for a in admins] == [
        (DEFAULT_ADMIN, "admin"),
        ("ops@example.com", "viewer"),
    ]
    assert all("one_time_password" not in a for a in admins)

    token = cli.ok("admin", "token", "create", "ci", "--admin", DEFAULT_ADMIN, "--json")
    assert token["name"] == "ci"
    assert token["admin_email"] == DEFAULT_ADMIN
    assert token["token"]
    assert token["expires_at"] is None
    assert token["token"].startswith(token["hint"].rstrip("…"))

    listed = cli.run("admin", "token", "list", "--json")
    assert listed.returncode == 0, listed.describe()
    tokens = listed.json()
    assert sorted(t["name"] for t in tokens) == ["ci"]
    assert all("token" not in t for t in tokens)
    assert token["token"] not in listed.stdout

    assert cli.ok("admin", "token", "revoke", token["id"], "--json") == {"revoked": token["id"]}
    assert names(cli.ok("admin", "token", "list", "--json")) == []
    cli.fails("admin", "token", "revoke", token["id"], "--json", status=404, expect=[token["id"]])
    cli.fails("admin", "token", "revoke", "not-a-token-id", expect=["not-a-token-id"])
    # Text output of revoke, for people.
    other = cli.ok("admin", "token", "create", "other", "--admin", DEFAULT_ADMIN, "--json")
    assert other["id"] in cli.ok("admin", "token", "revoke", other["id"]).stdout

    reset = cli.ok("admin", "reset-password", "ops@example.com", "--json")
    assert reset["email"] == "ops@example.com"
    assert reset["one_time_password"]
    assert reset["one_time_password"] != viewer["one_time_password"]
    cli.fails("admin", "reset-password", "nobody@example.com", expect=["nobody@example.com"])

    account = cli.ok("account", "show", "--json")
    assert account["customer_id"] == first["customer_id"]
    assert account["name"] == "Default account"
    assert account["plan"] == "enterprise"
    accounts = cli.ok("account", "list", "--json")
    assert accounts == [account]

    events = cli.ok("audit", "list", "--limit", "100", "--json")
    assert events
    assert {e["actor_type"] for e in events} == {"cli"}
    assert all(e["actor"].startswith("cli:") for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True)  # newest first
    actions = {e["action"] for e in events}
    assert {
        "account.created",
        "admin.created",
        "admin_token.created",
        "admin_token.revoked",
        "admin.password_reset",
        "dataset.created",
        "dataset.key_rotated",
    } <= actions
    rotated = [e for e in events if e["action"] == "dataset.key_rotated"]
    assert [(e["subject"], e["subject_type"]) for e in rotated] == [("Cards", "dataset")]
    only_datasets = cli.ok("audit", "list", "--action", "dataset.", "--json")
    assert {e["action"] for e in only_datasets} == {"dataset.created", "dataset.key_rotated"}
    assert not any(token["token"] in json.dumps(e) for e in events)
    cli.assert_no_tracebacks()


def test_errors_name_the_object_and_exit_1(cli: Cli) -> None:
    """Unknown and duplicate objects: exit 1 with a message (JSON {message, status} with --json)."""
    cli.ok("init", "--json")
    cli.ok("dataset", "create", "SSN", "--type", "structured", "--template", "ssn", "--json")

    cli.fails("dataset", "show", "Payroll", "--json", status=404, expect=["Payroll"])
    message = cli.fails("dataset", "show", "Payroll", expect=["Payroll"])
    assert "error" in message
    cli.fails("dataset", "rotate-key", "Payroll", "--json", status=404, expect=["Payroll"])
    cli.fails("dataset", "delete", "Payroll", "--yes", "--json", status=404, expect=["Payroll"])
    cli.fails("dataset-group", "show", "Nobody", "--json", status=404, expect=["Nobody"])
    cli.fails("api-key", "show", "no-such-key", "--json", status=404, expect=["no-such-key"])
    cli.fails(
        "dataset-group",
        "create",
        "G",
        "--dataset",
        "Payroll",
        "--json",
        status=404,
        expect=["Payroll"],
    )
    assert cli.ok("dataset-group", "list", "--json") == []
    cli.fails(
        "api-key", "create", "k", "--dataset", "Payroll", "--json", status=404, expect=["Payroll"]
    )
    assert cli.ok("api-key", "list", "--json") == []

    dup = ("dataset", "create", "SSN", "--type", "structured", "--template", "ssn")
    cli.fails(*dup, expect=["already exists", "SSN"])
    cli.fails(*dup, "--json", status=409, expect=["already exists"])
    cli.fails(
        "dataset",
        "create",
        "ssn",
        "--type",
        "unstructured",
        "--json",
        status=409,
        expect=["already exists"],
    )
    cli.fails(
        "dataset",
        "create",
        "Other",
        "--type",
        "structured",
        "--json",
        status=422,
        expect=["template"],
    )
    cli.fails("dataset", "create", "Other", "--type", "blob", "--json", expect=["blob"])
    assert names(cli.ok("dataset", "list", "--json")) == ["SSN"]
    cli.assert_no_tracebacks()


def test_account_option_scopes_every_command(cli: Cli) -> None:
    """With two accounts, commands need --account; each account sees only its own datasets."""
    first = cli.ok("init", "--json")["customer_id"]
    cli.ok("dataset", "create", "Alpha", "--type", "unstructured", "--json")

    second_body = cli.ok("account", "create", "Second", "--json")
    assert second_body["account"]["name"] == "Second"
    assert second_body["admin"] is None
    second = second_body["account"]["customer_id"]
    assert second != first

    message = cli.fails("dataset", "list", "--json", expect=["--account"])
    assert first in message
    assert second in message
    cli.fails("dataset", "list", expect=["--account"])
    cli.fails("account", "show", expect=["--account"])

    cli.ok("--account", second, "dataset", "create", "Beta", "--type", "unstructured", "--json")
    assert names(cli.ok("--account", first, "dataset", "list", "--json")) == ["Alpha"]
    assert names(cli.ok("--account", second, "dataset", "list", "--json")) == ["Beta"]
    cli.fails(
        "--account", second, "dataset", "show", "Alpha", "--json", status=404, expect=["Alpha"]
    )
    # The same name may exist once in each account.
    cli.ok("--account", second, "dataset", "create", "Alpha", "--type", "unstructured", "--json")
    assert names(cli.ok("--account", second, "dataset", "list", "--json")) == ["Alpha", "Beta"]
    assert names(cli.ok("--account", first, "dataset", "list", "--json")) == ["Alpha"]

    assert cli.ok("--account", second, "account", "show", "--json")["name"] == "Second"
    listed = cli.ok("account", "list", "--json")
    assert sorted(a["customer_id"] for a in listed) == sorted([first, second])

    cli.fails("--account", "not-a-uuid", "dataset", "list", expect=["--account", "not-a-uuid"])
    stranger = str(uuid.uuid4())
    cli.fails("--account", stranger, "dataset", "list", "--json", status=404, expect=[stranger])

    assert cli.ok("init", "--json")["created"] is False
    cli.assert_no_tracebacks()


def test_auto_provisioned_key_cannot_be_edited_by_hand(cli: Cli, runtime: Runtime) -> None:
    """disable/rename/delete/grant of an auto-provisioned key: exit 1, 'follows the directory'."""
    customer_id = cli.ok("init", "--json")["customer_id"]
    cli.ok("dataset", "create", "Cards", "--type", "structured", "--template", "digits", "--json")
    access_key_id = "auto" + secrets.token_hex(10)
    with runtime.db.write() as session:
        session.add(
            ApiKey(
                account_id=uuid.UUID(customer_id),
                access_key_id=access_key_id,
                name="alice@example.com",
                auto_provisioned=True,
                wrapped_signing_key=b"x",
            )
        )

    before = cli.ok("api-key", "show", access_key_id, "--json")
    assert before["auto_provisioned"] is True
    assert before["enabled"] is True

    cli.fails("api-key", "disable", access_key_id, expect=["follows the directory"])
    cli.fails(
        "api-key", "disable", access_key_id, "--json", status=409, expect=["follows the directory"]
    )
    cli.fails("api-key", "rename", access_key_id, "mallory", expect=["follows the directory"])
    cli.fails("api-key", "delete", access_key_id, expect=["follows the directory"])
    cli.fails(
        "api-key", "grant", access_key_id, "--dataset", "Cards", expect=["follows the directory"]
    )

    after = cli.ok("api-key", "show", access_key_id, "--json")
    assert after == before
    assert cli.ok("api-key", "access", access_key_id, "--json")["datasets"] == []
    assert names(cli.ok("api-key", "list", "--json"), "access_key_id") == [access_key_id]
    cli.assert_no_tracebacks()


def test_directory_idp_status_key_search_and_roles(cli: Cli, runtime: Runtime) -> None:
    """`directory users/groups`, `idp status`, `api-key list --search/--kind` and
    `admin set-role`: what the console shows, for scripts and terminals."""
    customer_id = uuid.UUID(cli.ok("init", "--json")["customer_id"])
    cli.ok("idp", "enable", "--json")
    cli.ok("api-key", "create", "billing-app", "--json")
    with runtime.db.write() as session:
        for name in ("dana@fabrikam.example", "lee@fabrikam.example"):
            fields = directory.UserFields(name, True, None, None)
            user = directory.create_user(
                session, account_id=customer_id, fields=fields, attributes={}, master=runtime.master
            )
        group = directory.create_group(
            session, account_id=customer_id, display_name="HR", external_id=None, attributes={}
        )
        directory.add_members(session, group, [user.id])

    users = cli.ok("directory", "users", "--json")
    assert users["total"] == 2
    assert [u["user_name"] for u in users["items"]] == [
        "dana@fabrikam.example",
        "lee@fabrikam.example",
    ]
    assert cli.ok("directory", "users", "--search", "LEE", "--json")["total"] == 1
    assert cli.ok("directory", "users", "--limit", "1", "--json")["items"][0]["api_key"]
    groups = cli.ok("directory", "groups", "--json")
    assert [(g["display_name"], g["member_count"]) for g in groups["items"]] == [("HR", 1)]
    assert "HR" in cli.ok("directory", "groups").stdout

    status = cli.ok("idp", "status", "--json")
    assert (status["users"], status["groups"]) == (2, 1)
    assert status["connected_at"] is None
    assert "users synced" in cli.ok("idp", "status").stdout

    assert names(cli.ok("api-key", "list", "--kind", "auto", "--json")) == [
        "dana@fabrikam.example",
        "lee@fabrikam.example",
    ]
    assert names(cli.ok("api-key", "list", "--search", "BILL", "--json")) == ["billing-app"]
    cli.fails("api-key", "list", "--kind", "robots", expect=["--kind must be one of"])

    cli.ok("admin", "create", "ops@example.com", "--role", "viewer", "--json")
    assert cli.ok("admin", "set-role", "ops@example.com", "admin", "--json")["role"] == "admin"
    cli.fails("admin", "set-role", "ops@example.com", "owner", expect=["role must be one of"])
    cli.ok("admin", "set-role", "ops@example.com", "viewer", "--json")
    cli.fails(
        "admin", "set-role", DEFAULT_ADMIN, "viewer", "--json", status=409, expect=["last admin"]
    )
    cli.assert_no_tracebacks()


def test_pinning_a_dataset_group_and_suspending_a_key_from_the_cli(
    cli: Cli, runtime: Runtime
) -> None:
    """`dataset-group show/list` flag a dataset group that several directory groups are
    named like; `pin`/`unpin` settle it. `api-key suspend/resume` work on any key."""
    customer_id = uuid.UUID(cli.ok("init", "--json")["customer_id"])
    cli.ok("dataset-group", "create", "Payroll", "--json")
    with runtime.db.write() as session:
        real = f.directory_group(session, customer_id, "Payroll")
        f.directory_group(session, customer_id, "payroll ")
        real_id = str(real.id)
    shown = cli.ok("dataset-group", "show", "Payroll")
    assert "Several directory groups are named like this dataset group" in shown.output
    assert "SEVERAL: pin one" in cli.ok("dataset-group", "list").output
    pinned = cli.ok("dataset-group", "pin", "Payroll", real_id, "--json")
    assert pinned["pinned"] is True
    assert pinned["directory_groups"] == ["Payroll"]
    assert "Several directory groups" not in cli.ok("dataset-group", "show", "Payroll").output
    assert "(pinned)" in cli.ok("dataset-group", "list").output
    cli.fails("dataset-group", "pin", "Payroll", "nope", expect=["not a directory group named"])
    assert cli.ok("dataset-group", "unpin", "Payroll", "--json")["pinned"] is False

    key = cli.ok("api-key", "create", "batch", "--json")["access_key_id"]
    suspended = cli.ok("api-key", "suspend", key, "--reason", "leaked in a log", "--json")
    assert suspended["suspended"] is True
    assert names(cli.ok("api-key", "list", "--kind", "suspended", "--json"), "access_key_id") == [
        key
    ]
    assert "suspended" in cli.ok("api-key", "show", key).output
    assert cli.ok("api-key", "resume", key, "--json")["suspended"] is False
    cli.assert_no_tracebacks()
