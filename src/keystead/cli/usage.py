"""`keystead usage …`"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from keystead.cli.context import JsonFlag, ctx_of, emit_table
from keystead.dataplane import events, usage_limits

app = typer.Typer(help="Usage reported by the Ubiq clients.", no_args_is_help=True)


@app.command("summary")
def summary(
    ctx: typer.Context,
    since: Annotated[datetime | None, typer.Option(help="First day (UTC), e.g. 2026-11-01")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset")] = None,
    api_key: Annotated[str | None, typer.Option(help="Only this access key id")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Operations per day, dataset, API key and action."""
    with ctx_of(ctx).read() as (session, account_id):
        rows = events.summary(
            session,
            account_id=account_id,
            since=since.date() if since else None,
            dataset=dataset,
            api_key=api_key,
        )
    emit_table(
        rows,
        as_json,
        "Usage",
        ["day", "dataset", "type", "API key", "action", "count"],
        lambda r: (r.day, r.dataset or "-", r.dataset_type, r.api_key, r.action, r.count),
    )


@app.command("refused")
def refused(
    ctx: typer.Context,
    since: Annotated[datetime | None, typer.Option(help="First day (UTC), e.g. 2026-11-01")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Usage reports refused because their key passed its limits, per day and key."""
    with ctx_of(ctx).read() as (session, account_id):
        rows = usage_limits.refusals(
            session, account_id=account_id, since=since.date() if since else None
        )
    emit_table(
        rows,
        as_json,
        "Usage reports refused over a key's limits",
        ["day", "API key", "name", "reports", "entries"],
        lambda r: (r.day, r.api_key, r.api_key_name or "-", r.reports, r.entries),
    )
