"""`keystead`: the root command, `init` and `serve`, and error reporting for all commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from keystead import __version__, bootstrap, logs
from keystead.cli import (
    admins,
    auditlog,
    datasets,
    directory,
    groups,
    idp,
    keys,
    masterkey,
    operations,
    provisioning,
    retention,
    usage,
)
from keystead.cli.context import CliContext, JsonFlag, ctx_of, emit, err, out, pairs, report_error
from keystead.errors import KeysteadError
from keystead.settings import Settings
from keystead.tls import tls_files

app = typer.Typer(
    name="keystead",
    help="Keystead: self-hosted data keys for the Ubiq clients, with Entra ID integration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(datasets.app, name="dataset")
app.add_typer(groups.app, name="dataset-group")
app.add_typer(keys.app, name="api-key")
app.add_typer(auditlog.app, name="audit")
app.add_typer(usage.app, name="usage")
app.add_typer(idp.app, name="idp")
app.add_typer(provisioning.app, name="provisioning")
app.add_typer(directory.app, name="directory")
app.add_typer(admins.account_app, name="account")
app.add_typer(admins.admin_app, name="admin")
app.command("prune")(retention.prune)
app.command("backup")(operations.backup)
app.command("restore")(operations.restore)
app.command("doctor")(operations.doctor)
app.add_typer(masterkey.app, name="master-key")


def _version(value: bool) -> None:
    if value:
        out.print(f"keystead {__version__}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(envvar="KEYSTEAD_DATA_DIR", help="Data directory (default ./keystead-data)"),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="KEYSTEAD_DATABASE_URL", help="postgresql://… or sqlite:///…"),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(envvar="KEYSTEAD_ACCOUNT", help="Customer id, when several accounts exist"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version")
    ] = False,
) -> None:
    settings = Settings.load().with_overrides(data_dir=data_dir, database_url=database_url)
    ctx.obj = CliContext(settings=settings, account_ref=account)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def init(
    ctx: typer.Context,
    account_name: Annotated[
        str, typer.Option(help="Name of the first account")
    ] = bootstrap.DEFAULT_ACCOUNT_NAME,
    admin_email: Annotated[
        str, typer.Option(help="Email of the first admin")
    ] = bootstrap.DEFAULT_ADMIN_EMAIL,
    as_json: JsonFlag = False,
) -> None:
    """Create the data directory, database and master key, and the first account and admin.

    Safe to run again: an installation that already has an account is left as it is.
    """
    cli = ctx_of(ctx)
    first = bootstrap.create_first_account(
        cli.runtime, account_name=account_name, admin_email=admin_email
    )
    settings = cli.settings
    where = {
        "data_dir": str(settings.data_dir.resolve()) if settings.is_embedded else None,
        "database": "sqlite" if settings.is_embedded else cli.runtime.db.dialect,
        "master_key_id": cli.runtime.master.fingerprint,
    }
    if first is None:
        unchanged = "Keystead is already initialised; nothing changed."
        emit({"created": False, **where}, as_json, lambda: out.print(unchanged))
        return

    def human() -> None:
        out.print("[bold]Keystead is initialised.[/bold] These secrets are shown once:\n")
        pairs(
            ("customer id", first.customer_id),
            ("account", first.account_name),
            ("admin email", first.admin_email),
            ("one-time password", first.admin_password),
        )
        out.print(
            "\nStart the service with: keystead serve\n"
            f"Then open the console at {settings.effective_public_url}/ and sign in with this "
            "email and one-time password; you will choose your own password first."
        )

    emit({"created": True, **where, **first.__dict__}, as_json, human)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Worker processes")] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="PEM certificate (chain) to serve HTTPS with; needs --tls-key"),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert")] = None,
) -> None:
    """Run the HTTP service (admin API, data plane, SCIM) with uvicorn."""
    import uvicorn

    cli = ctx_of(ctx)
    settings = cli.settings.with_overrides(
        host=host, port=port, workers=workers, tls_cert_file=tls_cert, tls_key_file=tls_key
    )
    tls = tls_files(settings)
    logs.configure(settings.log_level, settings.log_format)
    runtime = cli.runtime  # creates the data dir, master key and schema before any worker
    if not bootstrap.has_accounts(runtime):
        err.print(
            "[yellow]No account exists yet.[/yellow] Run `keystead init` to create the first "
            "account and admin (it prints their credentials once)."
        )
    else:
        err.print(
            f"Console: {settings.effective_public_url}/ (sign in with an admin's email and "
            "password; the first admin's one-time password was printed by `keystead init`)"
        )
    # Workers build their own settings from the environment: hand the CLI's choices down.
    os.environ["KEYSTEAD_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        os.environ["KEYSTEAD_DATABASE_URL"] = settings.database_url
    os.environ["KEYSTEAD_HOST"], os.environ["KEYSTEAD_PORT"] = settings.host, str(settings.port)
    if tls:  # the default public URL is https too
        os.environ["KEYSTEAD_TLS_CERT_FILE"], os.environ["KEYSTEAD_TLS_KEY_FILE"] = map(str, tls)
    uvicorn.run(
        "keystead.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        # Forwarded headers only from configured proxies: uvicorn would otherwise believe
        # any X-Forwarded-For from 127.0.0.1, and sign-in throttling and the audit log
        # would take a client's word for its own address.
        proxy_headers=bool(settings.trusted_proxies.strip()),
        forwarded_allow_ips=settings.trusted_proxies.strip() or None,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )


def main() -> None:
    """Entry point: run the app and turn Keystead errors into a message and exit code 1."""
    as_json = "--json" in sys.argv
    try:
        # Outside standalone mode click returns (not raises) the code of a typer.Exit.
        code = app(standalone_mode=False)
    except KeysteadError as exc:
        report_error(exc.message, as_json=as_json, status=exc.status)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except Exception as exc:
        # Click's usage errors, matched by shape: typer may carry its own copy of click,
        # whose exceptions are not click.ClickException.
        show = getattr(exc, "show", None)
        exit_code = getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if os.environ.get("KEYSTEAD_TRACEBACK"):
            raise
        # A bug, not the operator's mistake: one line, and how to see where it happened.
        report_error(
            f"unexpected error ({type(exc).__name__}): {exc}; run again with "
            "KEYSTEAD_TRACEBACK=1 to see where, and report it",
            as_json=as_json,
            status=500,
        )
        sys.exit(1)
    if isinstance(code, int) and code != 0:
        sys.exit(code)
