"""`keystead backup`, `keystead restore` and `keystead doctor`: running an installation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from keystead.cli.context import JsonFlag, ctx_of, emit, out, pairs
from keystead.runtime import load_master_key
from keystead.settings import Settings
from keystead.storage import backup as backups
from keystead.storage.backup import CopySummary

KEY_REMINDER = (
    "The master key is NOT in this file: back it up apart from the database. Without the "
    "key the copy cannot be read; anyone holding both can read everything."
)


def _key_source(settings: Settings) -> str:
    if settings.master_key is not None:
        return "KEYSTEAD_MASTER_KEY"
    return str(settings.effective_master_key_file.resolve())


def _summary_json(summary: CopySummary) -> dict[str, Any]:
    return {
        "size_bytes": summary.size_bytes,
        "schema_revision": summary.schema_revision,
        "schema_current": summary.schema_current,
        "master_key_id": summary.master_key_id,
        "rows": summary.rows,
        "tables": summary.tables,
    }


def _summary_pairs(summary: CopySummary) -> list[tuple[str, Any]]:
    filled = [f"{name} {count}" for name, count in summary.tables.items() if count]
    schema = summary.schema_revision + (
        "" if summary.schema_current else " (older: upgraded at start)"
    )
    return [
        ("size", f"{summary.size_bytes:,} bytes"),
        ("schema revision", schema),
        ("master key id", summary.master_key_id),
        ("rows", f"{summary.rows:,} in {len(summary.tables)} tables"),
        ("non-empty tables", ", ".join(filled) or "none"),
    ]


def backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The file to write", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Copy the embedded SQLite database to FILE while the service runs, and check the copy.

    The master key is not in the copy: back it up apart from it. On PostgreSQL use pg_dump.
    """
    settings = ctx_of(ctx).settings
    database = backups.database_file(settings, "backup")
    master = load_master_key(settings, create=False)
    summary = backups.back_up(database, file, master, force=force)
    written = file.absolute()
    result = {
        "file": str(written),
        "database": str(database),
        **_summary_json(summary),
        "master_key_included": False,
        "master_key_source": _key_source(settings),
    }

    def human() -> None:
        out.print(f"Backed up {database} to {written}; the copy passed its checks.")
        pairs(("file", str(written)), *_summary_pairs(summary))
        out.print(f"\n[bold]{KEY_REMINDER}[/bold] (the key in use: {_key_source(settings)})")

    emit(result, as_json, human)


def restore(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="A file `keystead backup` wrote", show_default=False)
    ],
    as_json: JsonFlag = False,
) -> None:
    """Put a backup back in place of the embedded database, with the service stopped.

    The file is checked first (SQLite integrity, a Keystead schema, the master key in use);
    the database it replaces is kept beside it. On PostgreSQL use pg_restore.
    """
    settings = ctx_of(ctx).settings
    database = backups.database_file(settings, "restore")
    master = load_master_key(settings, create=False)
    done = backups.restore(database, file, master, now=datetime.now(UTC))
    result = {
        "file": str(file.absolute()),
        "database": str(done.database),
        "set_aside": str(done.set_aside) if done.set_aside else None,
        **_summary_json(done.summary),
    }

    def human() -> None:
        out.print(f"Restored {file.absolute()} into {done.database}.")
        pairs(*_summary_pairs(done.summary))
        if done.set_aside:
            out.print(
                f"\nThe database it replaced is kept as {done.set_aside}; delete it once the "
                "restored data is confirmed."
            )
        out.print("Start the service again with: keystead serve")

    emit(result, as_json, human)


_MARKS = {"ok": "green", "warning": "yellow", "problem": "red", "skipped": "dim"}


def doctor(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check the configuration: one line per check, each problem with its fix.

    Exit status 1 when any check found a problem.
    """
    from keystead import doctor as checks  # it fetches from identity providers: httpx

    report = checks.examine(ctx_of(ctx).settings)
    result = {
        "ok": report.ok,
        "checks": [
            {"check": f.check, "status": f.status, "message": f.message, "fix": f.fix}
            for f in report.findings
        ],
    }

    def human() -> None:
        width = max(len(f.check) for f in report.findings)
        for finding in report.findings:
            colour = _MARKS[finding.status]
            out.print(
                f"[{colour}]{finding.status:<8}[/{colour}] {finding.check:<{width}}  ", end=""
            )
            out.print(finding.message, markup=False)
            if finding.fix and finding.status != "ok":
                out.print(f"{'':<8} {'':<{width}}  fix: ", end="")
                out.print(finding.fix, markup=False)
        problems = sum(f.status == "problem" for f in report.findings)
        out.print("no problem found" if report.ok else f"{problems} problem(s) found")

    emit(result, as_json, human)
    if not report.ok:
        raise typer.Exit(1)
