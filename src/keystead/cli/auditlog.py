"""`keystead audit …`"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from keystead import audit
from keystead.admin.schemas import AuditEventOut
from keystead.cli.context import JsonFlag, ctx_of, emit_table

app = typer.Typer(help="The audit log: every change, who made it and when.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    action: Annotated[str | None, typer.Option(help="Action prefix, e.g. api_key.")] = None,
    since: Annotated[datetime | None, typer.Option(help="ISO date/time (UTC if no zone)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Newest events first."""
    with ctx_of(ctx).read() as (session, account_id):
        events = audit.list_events(
            session, account_id=account_id, limit=limit, action_prefix=action, since=since
        )
        rows = [AuditEventOut.of(e) for e in events]
    emit_table(
        rows,
        as_json,
        "Audit log",
        ["when", "who", "action", "subject"],
        lambda e: (e.at.isoformat(timespec="seconds"), e.actor, e.action, e.subject),
    )
