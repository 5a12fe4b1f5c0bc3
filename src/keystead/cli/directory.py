"""`keystead directory …`: the synced directory, read-only."""

from __future__ import annotations

from typing import Annotated

import typer

from keystead.admin import views
from keystead.cli.context import JsonFlag, ctx_of, emit, out, table
from keystead.directory import listing

app = typer.Typer(help="Users and groups synced from the identity provider.", no_args_is_help=True)
Search = Annotated[str | None, typer.Option("--search", help="Part of the name or externalId")]
Limit = Annotated[int, typer.Option(min=1, max=10_000, help="How many to list")]
Offset = Annotated[int, typer.Option(min=0, help="How many to skip")]


@app.command("users")
def users(
    ctx: typer.Context,
    search: Search = None,
    limit: Limit = 100,
    offset: Offset = 0,
    as_json: JsonFlag = False,
) -> None:
    """Synced users by userName, with their auto-provisioned keys."""
    with ctx_of(ctx).read() as (session, account_id):
        found = listing.search_users(session, account_id, text=search, limit=limit, offset=offset)
    page = views.directory_users(found, limit, offset)

    def human() -> None:
        table(
            f"Directory users ({found.total} in all)",
            ["userName", "active", "API key", "groups"],
            [
                (
                    u.user_name,
                    "yes" if u.active else "no",
                    u.api_key.access_key_id if u.api_key else "",
                    u.group_count,
                )
                for u in page.items
            ],
        )
        if offset + len(page.items) < found.total:
            out.print(f"(more: --offset {offset + len(page.items)})")

    emit(page, as_json, human)


@app.command("groups")
def groups(
    ctx: typer.Context,
    search: Search = None,
    limit: Limit = 100,
    offset: Offset = 0,
    as_json: JsonFlag = False,
) -> None:
    """Synced groups by displayName, with member counts and the dataset group each matches."""
    with ctx_of(ctx).read() as (session, account_id):
        found = listing.search_groups(session, account_id, text=search, limit=limit, offset=offset)
    page = views.directory_groups(found, limit, offset)
    emit(
        page,
        as_json,
        lambda: table(
            f"Directory groups ({found.total} in all)",
            ["displayName", "members", "matching dataset group"],
            [(g.display_name, g.member_count, g.dataset_group or "") for g in page.items],
        ),
    )
