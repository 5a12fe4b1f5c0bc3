"""`keystead doctor`: the installation's configuration checked, one finding per check.

Each check says what it looked at and ends ``ok``, ``warning`` or ``problem`` (with the fix),
or ``skipped`` when an earlier problem left nothing to look at. Nothing here changes the
installation: the database is not created, migrated or written, no key is generated. A
broken setup (no key, no database, a check that fails in a way nobody foresaw) is a
finding, never an exception.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Concatenate, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from keystead import tls
from keystead.crypto.masterkey import MasterKey
from keystead.errors import KeysteadError
from keystead.idp import service as idp
from keystead.idp.outbound import is_loopback_host
from keystead.runtime import (
    check_value_opens,
    load_master_key,
    outbound_fetcher,
    stored_check_value,
)
from keystead.settings import Settings
from keystead.storage import migrate
from keystead.storage.engine import make_engine, sqlite_file
from keystead.storage.models import Account, IdpSettings

Status = Literal["ok", "warning", "problem", "skipped"]
T = TypeVar("T")
P = ParamSpec("P")

# How far this machine's clock may be from the database server's.
CLOCK_WARNING_SECONDS = 5
CLOCK_PROBLEM_SECONDS = 60
# A clock reading a year outside these is wrong (the release is younger than the first).
PLAUSIBLE_YEARS = range(2025, 2100)
CERTIFICATE_WARNING_DAYS = 14
CONNECT_TIMEOUT_SECONDS = 5
NTP = "(NTP: chrony or systemd-timesyncd)"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    message: str
    fix: str | None = None


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.status == "problem" for f in self.findings)

    def add(self, check: str, status: Status, message: str, fix: str | None = None) -> None:
        """A finding; one that is ``ok`` needs no fix."""
        self.findings.append(Finding(check, status, message, None if status == "ok" else fix))


def examine(settings: Settings) -> Report:
    """Run every check against ``settings``; never raises."""
    report = Report()
    now = datetime.now(UTC)
    master = _guarded(report, "master key", _master_key, settings)
    if settings.is_embedded and not settings.database_url:
        _guarded(report, "data directory", _data_dir, settings)
    engine = _guarded(report, "database", _database, settings)
    try:
        _guarded(report, "master key opens the database", _key_opens, engine, master)
        _guarded(report, "clock", _clock, engine, now)
        _guarded(report, "public URL", _public_url, settings)
        _guarded(report, "TLS", _tls, settings, now)
        _guarded(report, "identity providers", _identity_providers, settings, engine)
    finally:
        if engine is not None:
            engine.dispose()
    return report


def _guarded(
    report: Report,
    check: str,
    run: Callable[Concatenate[Report, P], T | None],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T | None:
    try:
        return run(report, *args, **kwargs)
    except Exception as exc:  # a check must report, never end the command
        report.add(
            check,
            "problem",
            f"the check itself failed ({type(exc).__name__}); the setup is broken in a way "
            "Keystead did not foresee",
            "run the command the check stands for (e.g. `keystead serve`) to see the error",
        )
        return None


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _master_key(report: Report, settings: Settings) -> MasterKey | None:
    name, where = "master key", "KEYSTEAD_MASTER_KEY"
    if settings.master_key is None:
        path = settings.effective_master_key_file.resolve()
        where = f"key file {path}, no other user may read it"
        if not path.exists() and settings.master_key_file is None and settings.is_embedded:
            database = sqlite_file(settings.effective_database_url)
            if database is None or not database.exists():
                report.add(name, "warning", f"no key file at {path} yet: `keystead init` makes one")
                return None
        if path.exists() and (mode := _mode(path)) & 0o077:
            message = f"key file {path} is readable by other users (mode {mode:04o})"
            report.add(name, "problem", message, f"chmod 600 {path}")
            return None
    try:
        master = load_master_key(settings, create=False)
    except KeysteadError as exc:
        fix = "restore the key file from its backup (mode 0600), or set KEYSTEAD_MASTER_KEY"
        report.add(name, "problem", exc.message, fix)
        return None
    report.add(name, "ok", f"master key id {master.fingerprint}, from {where}")
    return master


def _data_dir(report: Report, settings: Settings) -> None:
    name, path = "data directory", settings.data_dir.resolve()
    if not path.exists():
        report.add(name, "warning", f"{path} does not exist yet: `keystead init` makes it")
    elif (mode := _mode(path)) & 0o077:
        message = f"{path} is open to other users (mode {mode:04o}); it holds the database"
        report.add(name, "problem", f"{message} and the key file", f"chmod 700 {path}")
    else:
        report.add(name, "ok", f"{path}, mode {mode:04o}")


def _database(report: Report, settings: Settings) -> Engine | None:
    name = "database"
    url = settings.effective_database_url
    database = sqlite_file(url)
    if settings.is_embedded and (database is None or not database.exists()):
        fix = "run `keystead init` (or restore a backup with `keystead restore FILE`)"
        report.add(name, "problem", f"no database at {database}", fix)
        return None
    parsed = make_url(url)
    if database is None and "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)})
        url = parsed.render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=1)
    shown = parsed.render_as_string(hide_password=True).split("?", 1)[0]
    try:
        revision = migrate.current_revision(engine)
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unknown error"
        fix = "start the database server or correct KEYSTEAD_DATABASE_URL"
        report.add(name, "problem", f"cannot reach {shown}: {reason}", fix)
        return None
    report.add(name, "ok", f"reached {shown}")
    name = "migrations"
    if revision is None:
        report.add(name, "problem", "the database has no Keystead schema", "run `keystead init`")
    elif revision == migrate.HEAD:
        report.add(name, "ok", f"schema revision {revision}, the newest this version knows")
    elif revision in migrate.known_revisions():
        report.add(
            name,
            "problem",
            f"the database is at schema revision {revision}; this version needs {migrate.HEAD}",
            "back the database up, then run `keystead init`: it upgrades the schema (as "
            "`keystead serve` does when it starts) and changes nothing else",
        )
    else:
        report.add(
            name,
            "problem",
            f"the database is at schema revision {revision}, which this version does not "
            f"know (its newest is {migrate.HEAD}): a newer Keystead has used it",
            "run that newer version of Keystead",
        )
    return engine


def _key_opens(report: Report, engine: Engine | None, master: MasterKey | None) -> None:
    name = "master key opens the database"
    if engine is None or master is None:
        report.add(name, "skipped", "needs both the master key and the database (see above)")
        return
    with Session(engine) as session:
        if not engine.dialect.has_table(session.connection(), "keystead_meta"):
            report.add(name, "skipped", "the database has no Keystead schema yet")
            return
        stored = stored_check_value(session)
    if stored is None:
        report.add(name, "warning", "the database holds no key check yet; the next start adds it")
        return
    try:
        check_value_opens(stored, master)
    except KeysteadError as exc:
        fix = "supply the master key this database was set up with"
        report.add(name, "problem", exc.message, fix)
        return
    report.add(name, "ok", f"master key id {master.fingerprint} opens the database")


def _clock(report: Report, engine: Engine | None, now: datetime) -> None:
    if engine is not None and engine.dialect.name == "postgresql":
        before = datetime.now(UTC)
        with engine.connect() as conn:
            theirs = conn.execute(text("SELECT now()")).scalar_one()
        skew = abs((theirs - (before + (datetime.now(UTC) - before) / 2)).total_seconds())
        status: Status = "ok"
        if skew > CLOCK_WARNING_SECONDS:
            status = "problem" if skew > CLOCK_PROBLEM_SECONDS else "warning"
        message = f"this machine's clock is {skew:.1f} s from the database server's"
        report.add("clock", status, message, f"keep both clocks synchronised {NTP}")
        return
    # SQLite has no clock of its own to compare with: only whether this one is plausible.
    shown = f"this machine's clock reads {now:%Y-%m-%d %H:%M} UTC"
    if now.year in PLAUSIBLE_YEARS:
        report.add("clock", "ok", f"{shown} (checked: the year)")
    else:
        message = f"{shown}, which cannot be right (checked: the year)"
        report.add("clock", "problem", message, f"set the clock and keep it synchronised {NTP}")


def _public_url(report: Report, settings: Settings) -> None:
    name, url = "public URL", settings.effective_public_url
    parts = urlsplit(url)
    fix = "set KEYSTEAD_PUBLIC_URL to the https:// address clients use to reach Keystead"
    if settings.public_url is None and not is_loopback_host(settings.host):
        problem = (
            f"not set while serving on {settings.host}: credentials files and the SCIM URL "
            f"would name {url}"
        )
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problem = f"{url} is not an http(s) URL with a host"
    elif parts.scheme != "https" and not is_loopback_host(parts.hostname):
        problem = (
            f"{url} is plain http on a non-loopback address: keys and secrets would cross "
            "the network unencrypted"
        )
        fix += " (serve HTTPS with tls_cert_file/tls_key_file, or behind a TLS proxy)"
    else:
        local = f"not set: {url}, reachable from this machine only"
        report.add(name, "ok", local if settings.public_url is None else url)
        return
    report.add(name, "problem", problem, fix)


def _tls(report: Report, settings: Settings, now: datetime) -> None:
    try:
        pair = tls.configured_pair(settings)
        if pair is None:
            report.add("TLS", "ok", "not set: plain HTTP (a proxy in front serves HTTPS)")
            return
        cert_file, key_file = pair
        certificate = tls.usable_pair(cert_file, key_file, now)  # as `keystead serve` does
    except tls.TlsFileError as exc:
        report.add("TLS files", "problem", exc.problem, exc.fix)
        return
    report.add("TLS files", "ok", f"{cert_file} with its key {key_file}")
    name, mode = "TLS key file permissions", _mode(key_file)
    if mode & 0o077:
        status: Status = "problem" if mode & 0o007 else "warning"
        whom = "every user" if mode & 0o007 else "its group"
        message = f"{key_file} is readable by {whom} (mode {mode:04o})"
        report.add(name, status, message, f"chmod 600 {key_file}")
    else:
        report.add(name, "ok", f"{key_file}, mode {mode:04o}")
    name, ends = "TLS certificate validity", certificate.not_valid_after_utc
    if (ends - now).days < CERTIFICATE_WARNING_DAYS:
        fix = f"renew the certificate and replace {cert_file} (and its key)"
        report.add(name, "warning", f"the certificate expires on {ends:%Y-%m-%d %H:%M} UTC", fix)
    else:
        report.add(name, "ok", f"valid until {ends:%Y-%m-%d} UTC")


def _identity_providers(report: Report, settings: Settings, engine: Engine | None) -> None:
    name = "identity providers"
    if engine is None:
        report.add(name, "skipped", "needs the database (see above)")
        return
    with Session(engine) as session:
        if not engine.dialect.has_table(session.connection(), "idp_settings"):
            report.add(name, "skipped", "the database has no Keystead schema yet")
            return
        enabled = session.execute(
            select(Account.id, Account.name, IdpSettings)
            .join(IdpSettings, IdpSettings.account_id == Account.id)
            .where(IdpSettings.enabled)
            .order_by(Account.created_at)
        ).all()
    if not enabled:
        report.add(name, "ok", "no account has the IDP integration enabled")
        return
    fetch = outbound_fetcher(settings)
    for account_id, account_name, idp_settings in enabled:
        name = f"identity provider of {account_name}"
        command = f"`keystead --account {account_id} idp"
        try:
            # The same checks as `keystead idp test`, against the provider itself.
            found = idp.check_configuration(idp_settings, fetch=fetch)
        except KeysteadError as exc:
            fix = f"{command} configure --discovery-url … --issuer … --audience …`"
            report.add(name, "warning", exc.message, f"if its users sign in through it: {fix}")
            continue
        fix = (
            f"correct the sign-in settings ({command} configure`) "
            f"or the network path to the provider, then run {command} test`"
        )
        if found.errors:
            report.add(name, "problem", " ".join(p.message for p in found.errors), fix)
        elif found.warnings:
            report.add(name, "warning", " ".join(p.message for p in found.warnings), fix)
        else:
            keys = f"{found.rs256_key_count} signing key(s)"
            report.add(name, "ok", f"{found.discovery_url} answered with {keys}")
