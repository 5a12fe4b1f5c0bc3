"""`keystead doctor`, run as an operator would: a healthy installation passes (exit 0), and
each broken part is a problem line with its fix (exit 1), never a traceback."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keystead.accounts import service as accounts
from keystead.crypto.masterkey import MasterKey
from keystead.idp import service as idp
from keystead.idp.config import SignInChanges
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage import migrate
from keystead.storage.engine import make_engine
from tests.conftest import DEFAULT_PG
from tests.factories import ACTOR
from tests.functional.test_cli import Cli, Result, clean_env
from tests.support.accounts import FirstAccount
from tests.support.certs import write_pair
from tests.support.fake_entra import FakeEntra


def findings(result: Result) -> dict[str, dict[str, Any]]:
    body = result.json()
    assert set(body) == {"ok", "checks"}, result.describe()
    assert body["ok"] is (result.returncode == 0), result.describe()
    return {c["check"]: c for c in body["checks"]}


def problem(result: Result, check: str, *phrases: str) -> dict[str, Any]:
    """``check`` is a problem whose message or fix holds each phrase; the exit status is 1."""
    assert result.returncode == 1, result.describe()
    found = findings(result)[check]
    assert found["status"] == "problem", result.describe()
    assert found["fix"], result.describe()
    said = found["message"] + " " + found["fix"]
    for phrase in phrases:
        assert phrase in said, f"{phrase!r} not in {said!r}"
    return found


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Cli]:
    """A fresh embedded installation (`keystead init` in an empty directory)."""
    cli = Cli(cwd=tmp_path, env=clean_env())
    cli.ok("init", "--json")
    yield cli
    cli.assert_no_tracebacks()


@pytest.fixture
def cli(runtime: Runtime, settings: Settings, tmp_path: Path) -> Iterator[Cli]:
    """`keystead` on this engine's test database (emptied), its data directory private."""
    assert settings.master_key is not None
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    made = Cli(
        cwd=tmp_path,
        env={
            **clean_env(),
            "KEYSTEAD_DATABASE_URL": settings.database_url or "",
            "KEYSTEAD_MASTER_KEY": settings.master_key.get_secret_value(),
            "KEYSTEAD_DATA_DIR": str(data),
            "KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES": "true",
        },
    )
    yield made
    made.assert_no_tracebacks()


def enable_sign_in(runtime: Runtime, first: FirstAccount, discovery: str, issuer: str) -> None:
    with runtime.db.write() as session:
        account = accounts.get_account(session, uuid.UUID(first.customer_id))
        idp.set_enabled(session, account, True, actor=ACTOR, master=runtime.master)
        idp.configure(
            session,
            account,
            SignInChanges(discovery_url=discovery, issuer=issuer, audience="api://keystead"),
            actor=ACTOR,
            allow_private=True,
        )


# --- healthy ---------------------------------------------------------------------------------


def test_a_fresh_embedded_installation_is_healthy(embedded: Cli) -> None:
    result = embedded.run("doctor", "--json")
    assert result.returncode == 0, result.describe()
    found = findings(result)
    assert {c["status"] for c in found.values()} == {"ok"}, result.describe()
    for check in (
        "master key",
        "data directory",
        "database",
        "migrations",
        "master key opens the database",
        "clock",
        "public URL",
        "TLS",
        "identity providers",
    ):
        assert check in found, result.describe()
    assert "the year" in found["clock"]["message"]  # says what it checked on SQLite

    human = embedded.run("doctor")
    assert human.returncode == 0, human.describe()
    lines = human.stdout.splitlines()
    assert any(line.startswith("ok") and "migrations" in line for line in lines)
    assert "no problem found" in human.stdout


def test_the_test_database_with_a_reachable_identity_provider_is_healthy(
    cli: Cli, runtime: Runtime, first_account: FirstAccount, engine_name: str
) -> None:
    with FakeEntra() as tenant:
        enable_sign_in(runtime, first_account, tenant.discovery_url, tenant.issuer)
        result = cli.run("doctor", "--json")
    assert result.returncode == 0, result.describe()
    found = findings(result)
    provider = found[f"identity provider of {first_account.account_name}"]
    assert provider["status"] in ("ok", "warning"), result.describe()
    assert found["master key opens the database"]["status"] == "ok"
    if engine_name == "postgresql":  # compared with the database server's clock
        assert "database server's" in found["clock"]["message"]


# --- problems --------------------------------------------------------------------------------


def test_a_key_file_other_users_can_read_is_a_problem(embedded: Cli) -> None:
    key_file = embedded.cwd / "keystead-data" / "master.key"
    key_file.chmod(0o644)
    result = embedded.run("doctor", "--json")
    problem(result, "master key", "readable by other users", f"chmod 600 {key_file}")
    assert findings(result)["master key opens the database"]["status"] == "skipped"
    human = embedded.run("doctor")
    assert human.returncode == 1
    assert "fix: chmod 600" in human.stdout
    assert "1 problem(s) found" in human.stdout


def test_a_data_directory_other_users_can_enter_is_a_problem(embedded: Cli) -> None:
    data = embedded.cwd / "keystead-data"
    data.chmod(0o755)
    problem(embedded.run("doctor", "--json"), "data directory", "mode 0755", f"chmod 700 {data}")


def test_a_missing_key_is_a_problem_not_a_crash(embedded: Cli) -> None:
    (embedded.cwd / "keystead-data" / "master.key").unlink()
    result = embedded.run("doctor", "--json")
    problem(result, "master key", "KEYSTEAD_MASTER_KEY")
    wrong = embedded.run(
        "doctor", "--json", env={"KEYSTEAD_MASTER_KEY": MasterKey.generate().to_base64()}
    )
    problem(wrong, "master key opens the database", "does not open this database")


def test_a_database_behind_on_migrations_is_a_problem(tmp_path: Path) -> None:
    from alembic import command

    database = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        command.upgrade(migrate.alembic_config(engine), "0009")
    finally:
        engine.dispose()
    cli = Cli(
        cwd=tmp_path,
        env={
            **clean_env(),
            "KEYSTEAD_DATABASE_URL": f"sqlite:///{database}",
            "KEYSTEAD_MASTER_KEY": MasterKey.generate().to_base64(),
        },
    )
    result = cli.run("doctor", "--json")
    problem(result, "migrations", "revision 0009", migrate.HEAD, "keystead init")
    with sqlite3.connect(database) as conn:  # doctor changed nothing
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0009",)
    cli.assert_no_tracebacks()


def test_an_unreachable_database_is_a_problem(tmp_path: Path) -> None:
    unreachable = DEFAULT_PG.replace(":5432/", ":1/")
    cli = Cli(
        cwd=tmp_path,
        env={
            **clean_env(),
            "KEYSTEAD_DATABASE_URL": unreachable,
            "KEYSTEAD_MASTER_KEY": MasterKey.generate().to_base64(),
        },
    )
    result = cli.run("doctor", "--json")
    problem(result, "database", "cannot reach", "KEYSTEAD_DATABASE_URL")
    found = findings(result)
    assert found["master key opens the database"]["status"] == "skipped"
    assert found["identity providers"]["status"] == "skipped"
    human = cli.run("doctor")
    assert human.returncode == 1
    assert "cannot reach" in human.stdout
    cli.assert_no_tracebacks()


def test_an_unreachable_identity_provider_is_a_problem(
    cli: Cli, runtime: Runtime, first_account: FirstAccount
) -> None:
    tenant = uuid.uuid4()
    discovery = f"https://127.0.0.1:1/{tenant}/.well-known/openid-configuration"
    enable_sign_in(runtime, first_account, discovery, f"https://sts.windows.net/{tenant}/")
    result = cli.run("doctor", "--json")
    name = f"identity provider of {first_account.account_name}"
    found = problem(result, name, "idp test", "idp configure", first_account.customer_id)
    assert "127.0.0.1:1" in found["message"] or "reach" in found["message"]


# --- TLS files -------------------------------------------------------------------------------


def tls(cli: Cli, cert_file: Path | None, key_file: Path | None) -> Result:
    env = {}
    if cert_file is not None:
        env["KEYSTEAD_TLS_CERT_FILE"] = str(cert_file)
    if key_file is not None:
        env["KEYSTEAD_TLS_KEY_FILE"] = str(key_file)
    return cli.run("doctor", "--json", env=env)


def test_good_tls_files_pass(embedded: Cli, tmp_path: Path) -> None:
    cert_file, key_file = write_pair(tmp_path, "good", not_after=datetime.now(UTC) + timedelta(90))
    result = tls(embedded, cert_file, key_file)
    assert result.returncode == 0, result.describe()
    found = findings(result)
    for check in ("TLS files", "TLS key file permissions"):
        assert found[check]["status"] == "ok", result.describe()
    assert found["TLS certificate validity"]["status"] == "ok"


def test_bad_tls_files_are_problems_each_with_its_fix(embedded: Cli, tmp_path: Path) -> None:
    later = datetime.now(UTC) + timedelta(days=90)
    cert_file, key_file = write_pair(tmp_path, "good", not_after=later)

    problem(tls(embedded, cert_file, None), "TLS files", "tls_key_file", "KEYSTEAD_TLS_KEY_FILE")
    problem(tls(embedded, None, key_file), "TLS files", "tls_cert_file")
    problem(tls(embedded, tmp_path / "missing.crt", key_file), "TLS files", "cannot read")
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    problem(tls(embedded, garbage, key_file), "TLS files", "no PEM certificate")

    other_cert, _ = write_pair(
        tmp_path, "other", not_after=later, key=ec.generate_private_key(ec.SECP256R1())
    )
    problem(tls(embedded, other_cert, key_file), "TLS files", "not the key")

    key_file.chmod(0o644)
    problem(
        tls(embedded, cert_file, key_file),
        "TLS key file permissions",
        "every user",
        f"chmod 600 {key_file}",
    )
    key_file.chmod(0o600)

    old_cert, old_key = write_pair(tmp_path, "old", not_after=datetime.now(UTC) - timedelta(days=1))
    problem(tls(embedded, old_cert, old_key), "TLS files", "expired", "renew")

    soon_cert, soon_key = write_pair(
        tmp_path, "soon", not_after=datetime.now(UTC) + timedelta(days=5)
    )
    soon = tls(embedded, soon_cert, soon_key)
    assert soon.returncode == 0, soon.describe()  # a warning, not yet a problem
    assert findings(soon)["TLS certificate validity"]["status"] == "warning"
    assert "expires on" in findings(soon)["TLS certificate validity"]["message"]


def test_public_url_must_be_https_off_loopback(embedded: Cli) -> None:
    unset = embedded.run("doctor", "--json", env={"KEYSTEAD_HOST": "0.0.0.0"})
    problem(unset, "public URL", "not set", "KEYSTEAD_PUBLIC_URL")
    plain = embedded.run("doctor", "--json", env={"KEYSTEAD_PUBLIC_URL": "http://keys.example.com"})
    problem(plain, "public URL", "plain http", "https://")
    good = embedded.run("doctor", "--json", env={"KEYSTEAD_PUBLIC_URL": "https://keys.example.com"})
    assert good.returncode == 0, good.describe()


def test_invalid_settings_are_a_clear_message(embedded: Cli) -> None:
    """Settings that cannot even be read stop every check: said plainly, exit 1."""
    embedded.fails(
        "doctor", env={"KEYSTEAD_PORT": "eighty"}, expect=["invalid setting", "KEYSTEAD_PORT"]
    )
    config = embedded.cwd / "keystead.toml"
    config.write_text("port = [unclosed\n")
    embedded.fails(
        "doctor",
        "--json",
        env={"KEYSTEAD_CONFIG_FILE": str(config)},
        expect=["cannot read config file", str(config)],
    )
