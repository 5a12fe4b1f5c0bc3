"""`keystead provisioning …`"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from keystead.admin.schemas import ProvisioningEventOut
from keystead.cli.context import JsonFlag, ctx_of, emit_table
from keystead.errors import InvalidInput
from keystead.scim import log as provisioning_log

app = typer.Typer(help="Directory sync (SCIM) activity.", no_args_is_help=True)


@app.command("log")
def log(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="userName or id")] = None,
    group: Annotated[str | None, typer.Option(help="displayName or id")] = None,
    outcome: Annotated[str | None, typer.Option(help="success or failed")] = None,
    since: Annotated[datetime | None, typer.Option(help="ISO date/time (UTC if no zone)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """What each SCIM request did, newest first (read it beside Entra's provisioning log)."""
    if outcome not in (None, "success", "failed"):
        raise InvalidInput("--outcome is 'success' or 'failed'")
    with ctx_of(ctx).read() as (session, account_id):
        events = provisioning_log.list_events(
            session,
            account_id=account_id,
            user=user,
            group=group,
            outcome=outcome,
            since=since,
            limit=limit,
        )
        rows = [ProvisioningEventOut.of(e) for e in events]
    emit_table(
        rows,
        as_json,
        "Provisioning log",
        ["when", "operation", "resource", "outcome", "detail"],
        lambda e: (
            e.at.isoformat(timespec="seconds"),
            e.operation,
            e.resource_name or e.resource_id,
            f"{e.outcome} ({e.status})",
            e.detail,
        ),
    )
