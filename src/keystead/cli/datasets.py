"""`keystead dataset …`"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from keystead.admin import views
from keystead.admin.schemas import DatasetDeletedOut, DatasetDetailOut, DatasetOut
from keystead.catalog import datasets as catalog
from keystead.cli.context import JsonFlag, ctx_of, emit, emit_table, err, out, pairs
from keystead.errors import InvalidInput

app = typer.Typer(
    help="Datasets: structured (format-preserving) or unstructured.", no_args_is_help=True
)


def _show(detail: DatasetDetailOut, heading: str | None = None) -> None:
    if heading:
        out.print(heading)
    pairs(
        ("name", detail.name),
        ("id", detail.id),
        ("type", detail.type),
        ("template", detail.template),
        ("current key number", detail.current_key_number),
        ("max key number", detail.max_key_number if detail.max_key_number is not None else "-"),
        ("key versions", [k.key_number for k in detail.keys]),
        ("dataset groups", detail.dataset_groups),
    )
    if detail.definition:
        d = detail.definition
        pairs(
            ("input characters", d.get("input_character_set")),
            ("output characters", d.get("output_character_set")),
            ("passthrough", repr(d.get("passthrough", ""))),
            ("length", f"{d.get('min_input_length')}..{d.get('max_input_length')}"),
        )


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    type_: Annotated[str, typer.Option("--type", help="structured or unstructured")],
    template: Annotated[
        str | None, typer.Option(help="ssn, digits, alnum, alnum-upper (structured)")
    ] = None,
    definition_file: Annotated[
        Path | None, typer.Option(help="JSON file with a custom FF1 definition")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a dataset with its first key (key number 0)."""
    cli = ctx_of(ctx)
    definition = None
    if definition_file is not None:
        try:
            definition = json.loads(definition_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"cannot read definition file {definition_file}: {exc}") from exc
        if not isinstance(definition, dict):
            raise InvalidInput(f"definition file {definition_file} must hold a JSON object")
    spec = catalog.DatasetSpec(name, type_, template, definition)
    with cli.write() as (session, account_id):
        dataset = catalog.create_dataset(
            session, account_id=account_id, spec=spec, master=cli.runtime.master, actor=cli.actor
        )
        detail = views.dataset_detail(session, dataset)
    emit(detail, as_json, lambda: _show(detail, f"Created dataset [bold]{detail.name}[/bold]"))


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List datasets."""
    with ctx_of(ctx).read() as (session, account_id):
        rows = [DatasetOut.of(d) for d in catalog.list_datasets(session, account_id)]
    emit_table(
        rows,
        as_json,
        "Datasets",
        ["name", "type", "template", "key", "created"],
        lambda d: (d.name, d.type, d.template, d.current_key_number, d.created_at),
    )


@app.command("show")
def show(ctx: typer.Context, dataset: str, as_json: JsonFlag = False) -> None:
    """Show one dataset, its key versions and the dataset groups that contain it."""
    with ctx_of(ctx).read() as (session, account_id):
        detail = views.dataset_detail(session, catalog.find_dataset(session, account_id, dataset))
    emit(detail, as_json, lambda: _show(detail))


@app.command("rotate-key")
def rotate_key(ctx: typer.Context, dataset: str, as_json: JsonFlag = False) -> None:
    """Add a new key version and make it current (old versions keep decrypting)."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        target = catalog.find_dataset(session, account_id, dataset)
        number = catalog.rotate_key(session, target, master=cli.runtime.master, actor=cli.actor)
        detail = views.dataset_detail(session, target)
    emit(detail, as_json, lambda: out.print(f"{detail.name}: current key number is now {number}"))


@app.command("delete")
def delete(
    ctx: typer.Context,
    dataset: str,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: data encrypted under it becomes unrecoverable.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a dataset and its keys; it leaves every dataset group and grant."""
    if not yes:
        raise InvalidInput(
            f"deleting dataset {dataset!r} destroys its keys, so data encrypted with it can "
            "never be decrypted again; repeat with --yes to confirm"
        )
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        target = catalog.find_dataset(session, account_id, dataset)
        detail = catalog.delete_dataset(session, target, actor=cli.actor)
        result = DatasetDeletedOut(deleted=target.name, **detail)
    emit(
        result,
        as_json,
        lambda: err.print(
            f"Deleted dataset {result.deleted}; removed from dataset groups: "
            f"{', '.join(result.removed_from_dataset_groups) or 'none'}; "
            f"grants removed: {result.removed_grants}"
        ),
    )


@app.command("templates")
def templates(as_json: JsonFlag = False) -> None:
    """List the ready-made dataset templates."""
    emit_table(
        views.templates(),
        as_json,
        "Templates",
        ["name", "type", "max key number", "description"],
        lambda t: (t.name, t.type, t.max_key_number, t.description),
    )
