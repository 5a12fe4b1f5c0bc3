"""`keystead prune`: delete what the retention settings let go, or show it."""

from __future__ import annotations

from typing import Annotated

import typer

from keystead import retention
from keystead.audit import Actor
from keystead.cli.context import JsonFlag, ctx_of, emit_table


def prune(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete provisioning-log entries, usage events, refused sign-in counts and (when
    KEYSTEAD_RETENTION_AUDIT_DAYS is set) audit events older than their retention.
    `keystead serve` does the same by itself every KEYSTEAD_PRUNE_INTERVAL_SECONDS."""
    cli = ctx_of(ctx)
    due = retention.due(cli.runtime.db, cli.settings)
    deleted = {} if dry_run else retention.prune(cli.runtime.db, cli.settings, actor=Actor.cli())
    rows = [
        {
            "kind": d.kind.name,
            "kept_days": d.days or None,
            "due": d.rows,
            "deleted": deleted.get(d.kind.name, 0),
        }
        for d in due
    ]
    emit_table(
        rows,
        as_json,
        "What retention lets go" + (" (dry run: nothing deleted)" if dry_run else ""),
        ["records", "kept for", "older than that", "deleted"],
        lambda r: (
            r["kind"],
            f"{r['kept_days']} days" if r["kept_days"] else "forever",
            r["due"],
            r["deleted"],
        ),
    )
