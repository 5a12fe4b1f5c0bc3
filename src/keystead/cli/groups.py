"""`keystead dataset-group …`"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from keystead.admin import views
from keystead.admin.schemas import DatasetGroupDetailOut, DatasetGroupOut, DirectoryGroupRefOut
from keystead.catalog import groups
from keystead.cli.context import JsonFlag, changer, ctx_of, emit, emit_table, err, out, pairs

app = typer.Typer(
    help="Dataset groups: named sets of datasets; a directory group of the same name gets them.",
    no_args_is_help=True,
)
DatasetOpt = Annotated[list[str] | None, typer.Option("--dataset", help="Dataset (repeatable)")]


def _show(group: DatasetGroupDetailOut, heading: str | None = None) -> None:
    if heading:
        out.print(heading)
    rows: list[tuple[str, object]] = [
        ("name", group.name),
        ("id", group.id),
        ("datasets", group.datasets),
        ("directory groups named alike", [_matched(g) for g in group.matching_directory_groups]),
    ]
    if group.pinned_to is not None:
        where = "" if group.pinned_to.present else " (gone from the directory: nothing matches)"
        rows.append(("pinned to", f"{group.pinned_to.directory_group_id}{where}"))
    pairs(*rows)
    if group.ambiguous and not group.pinned:
        err.print(
            "[yellow]Several directory groups are named like this dataset group; each gives "
            "its members access. Pin it to the right one: keystead dataset-group pin "
            f"{escape(repr(group.name))} DIRECTORY_GROUP_ID[/yellow]"
        )


_change = changer(groups.find_group, views.dataset_group, _show)


def _matched(group: DirectoryGroupRefOut) -> str:
    if group.pinned:
        flags = " - pinned"
    else:
        flags = "" if group.gives_access else " - no access: the dataset group is pinned to another"
    return f"{group.display_name} ({group.id}, {group.member_count} members){flags}"


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
    emit(view, as_json, lambda: _show(view, f"Created dataset group [bold]{view.name}[/bold]"))


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List dataset groups and their datasets."""
    with ctx_of(ctx).read() as (session, account_id):
        rows = views.dataset_group_list(session, account_id)
    emit_table(
        rows,
        as_json,
        "Dataset groups",
        ["name", "datasets", "directory groups"],
        lambda g: (g.name, ", ".join(g.datasets), _directory_cell(g)),
    )


def _directory_cell(group: DatasetGroupOut) -> str:
    names = ", ".join(group.directory_groups) or "-"
    if group.pinned:
        return f"{names} (pinned)"
    return f"{names} (SEVERAL: pin one)" if group.ambiguous else names


@app.command("pin")
def pin(ctx: typer.Context, group: str, directory_group: str, as_json: JsonFlag = False) -> None:
    """Pin a dataset group to one directory group named like it (its id, from `show`):
    only that group then gives access through it."""
    _change(ctx, group, as_json, lambda s, g, a: groups.pin_group(s, g, directory_group, actor=a))


@app.command("unpin")
def unpin(ctx: typer.Context, group: str, as_json: JsonFlag = False) -> None:
    """Back to matching by name: every directory group named like it gives access."""
    _change(ctx, group, as_json, lambda s, g, a: groups.unpin_group(s, g, actor=a))


@app.command("show")
def show(ctx: typer.Context, group: str, as_json: JsonFlag = False) -> None:
    """Show one dataset group."""
    with ctx_of(ctx).read() as (session, account_id):
        view = views.dataset_group(session, groups.find_group(session, account_id, group))
    emit(view, as_json, lambda: _show(view))


@app.command("add")
def add(ctx: typer.Context, group: str, datasets: list[str], as_json: JsonFlag = False) -> None:
    """Add datasets to a dataset group."""
    _change(ctx, group, as_json, lambda s, g, a: groups.add_datasets(s, g, datasets, actor=a))


@app.command("remove")
def remove(ctx: typer.Context, group: str, datasets: list[str], as_json: JsonFlag = False) -> None:
    """Remove datasets from a dataset group (the datasets themselves stay)."""
    _change(ctx, group, as_json, lambda s, g, a: groups.remove_datasets(s, g, datasets, actor=a))


@app.command("rename")
def rename(ctx: typer.Context, group: str, new_name: str, as_json: JsonFlag = False) -> None:
    """Rename a dataset group (directory access follows the new name at once)."""
    _change(ctx, group, as_json, lambda s, g, a: groups.rename_group(s, g, new_name, actor=a))


@app.command("delete")
def delete(ctx: typer.Context, group: str, as_json: JsonFlag = False) -> None:
    """Delete a dataset group; its datasets are kept."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        target = groups.find_group(session, account_id, group)
        name = target.name
        groups.delete_group(session, target, actor=cli.actor)
    emit({"deleted": name}, as_json, lambda: err.print(f"Deleted dataset group {name}"))
