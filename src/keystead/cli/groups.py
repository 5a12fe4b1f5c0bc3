"""`keystead dataset-group …`"""

from __future__ import annotations

from typing import Annotated

import typer

from keystead.admin import views
from keystead.admin.schemas import DatasetGroupOut
from keystead.catalog import groups
from keystead.cli.context import JsonFlag, ctx_of, emit, err, out, pairs, table

app = typer.Typer(
    help="Dataset groups: named sets of datasets; a directory group of the same name gets them.",
    no_args_is_help=True,
)
DatasetOpt = Annotated[list[str] | None, typer.Option("--dataset", help="Dataset (repeatable)")]


def _show(group: DatasetGroupOut, heading: str | None = None) -> None:
    if heading:
        out.print(heading)
    pairs([("name", group.name), ("id", group.id), ("datasets", group.datasets)])


@app.command("create")
def create(
    ctx: typer.Context, name: str, dataset: DatasetOpt = None, as_json: JsonFlag = False
) -> None:
    """Create a dataset group, optionally with datasets."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        group = groups.create_group(
            session, account_id=account_id, name=name, datasets=dataset or [], actor=cli.actor
        )
        view = views.dataset_group(session, group)
    emit(
        view,
        as_json,
        lambda: _show(view, f"Created dataset group [bold]{view.name}[/bold]"),
    )


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List dataset groups and their datasets."""
    with ctx_of(ctx).read() as (session, account_id):
        rows = views.dataset_group_list(session, account_id)
    emit(
        rows,
        as_json,
        lambda: table(
            "Dataset groups", ["name", "datasets"], [(g.name, ", ".join(g.datasets)) for g in rows]
        ),
    )


@app.command("show")
def show(ctx: typer.Context, group: str, as_json: JsonFlag = False) -> None:
    """Show one dataset group."""
    with ctx_of(ctx).read() as (session, account_id):
        view = views.dataset_group(session, groups.find_group(session, account_id, group))
    emit(view, as_json, lambda: _show(view))


@app.command("add")
def add(ctx: typer.Context, group: str, datasets: list[str], as_json: JsonFlag = False) -> None:
    """Add datasets to a dataset group."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        target = groups.find_group(session, account_id, group)
        groups.add_datasets(session, target, datasets, actor=cli.actor)
        view = views.dataset_group(session, target)
    emit(view, as_json, lambda: _show(view))


@app.command("remove")
def remove(ctx: typer.Context, group: str, datasets: list[str], as_json: JsonFlag = False) -> None:
    """Remove datasets from a dataset group (the datasets themselves stay)."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        target = groups.find_group(session, account_id, group)
        groups.remove_datasets(session, target, datasets, actor=cli.actor)
        view = views.dataset_group(session, target)
    emit(view, as_json, lambda: _show(view))


@app.command("rename")
def rename(ctx: typer.Context, group: str, new_name: str, as_json: JsonFlag = False) -> None:
    """Rename a dataset group (directory access follows the new name at once)."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        target = groups.find_group(session, account_id, group)
        groups.rename_group(session, target, new_name, actor=cli.actor)
        view = views.dataset_group(session, target)
    emit(view, as_json, lambda: _show(view))


@app.command("delete")
def delete(ctx: typer.Context, group: str, as_json: JsonFlag = False) -> None:
    """Delete a dataset group; its datasets are kept."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        target = groups.find_group(session, account_id, group)
        name = target.name
        groups.delete_group(session, target, actor=cli.actor)
    emit({"deleted": name}, as_json, lambda: err.print(f"Deleted dataset group {name}"))
