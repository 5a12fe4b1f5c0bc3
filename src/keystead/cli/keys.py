"""`keystead api-key …`"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from keystead.admin import views
from keystead.admin.schemas import ApiKeyOut
from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.cli.context import JsonFlag, changer, ctx_of, emit, emit_table, err, out, pairs, table
from keystead.errors import Conflict, InvalidInput

app = typer.Typer(
    help="API keys for the Ubiq clients, their grants and access.", no_args_is_help=True
)
DatasetOpt = Annotated[list[str] | None, typer.Option("--dataset", help="Dataset (repeatable)")]
GroupOpt = Annotated[
    list[str] | None, typer.Option("--dataset-group", help="Dataset group (repeatable)")
]


def _show(key: ApiKeyOut) -> None:
    pairs(
        ("name", key.name),
        ("access key id", key.access_key_id),
        ("enabled", "yes" if key.enabled else "no"),
        (
            "suspended",
            f"yes, by {key.suspended_by} at {key.suspended_at:%Y-%m-%d %H:%M}"
            if key.suspended and key.suspended_at
            else "no",
        ),
        ("auto-provisioned", "yes (follows the directory)" if key.auto_provisioned else "no"),
        ("granted datasets", key.grants.datasets),
        ("granted dataset groups", key.grants.dataset_groups),
    )


_change = changer(apikeys.find_api_key, views.api_key, _show)


def _reserve_credentials_file(path: Path) -> int:
    """Create the (empty, 0600) file before the key exists, so a path that cannot be
    written fails before anything is created."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise Conflict(f"{path} exists; choose another --credentials-file") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from exc


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    dataset: DatasetOpt = None,
    dataset_group: GroupOpt = None,
    credentials_file: Annotated[
        Path | None, typer.Option(help="Also write the Ubiq credentials file here (mode 0600)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key; its three secrets are printed once and never again."""
    cli = ctx_of(ctx)
    fd = _reserve_credentials_file(credentials_file) if credentials_file is not None else None
    try:
        with cli.write() as (session, account_id):
            created = apikeys.create_api_key(
                session,
                account_id=account_id,
                name=name,
                datasets=dataset or [],
                dataset_groups=dataset_group or [],
                master=cli.runtime.master,
                actor=cli.actor,
            )
            result = views.api_key_created(session, created, cli.settings.effective_public_url)
    except BaseException:
        if fd is not None and credentials_file is not None:
            os.close(fd)
            credentials_file.unlink(missing_ok=True)
        raise
    if fd is not None:
        with os.fdopen(fd, "w") as handle:
            handle.write(result.credentials_file)

    def human() -> None:
        out.print(f"Created API key [bold]{result.name}[/bold]. The secrets below are shown once.")
        pairs(
            ("access key id", result.access_key_id),
            ("secret signing key", result.secret_signing_key),
            ("secret crypto access key", result.secret_crypto_access_key),
            ("granted datasets", result.grants.datasets),
            ("granted dataset groups", result.grants.dataset_groups),
        )
        if credentials_file is not None:
            out.print(f"Credentials file written to {credentials_file}")

    emit(result, as_json, human)


@app.command("list")
def list_(
    ctx: typer.Context,
    search: Annotated[
        str | None, typer.Option(help="Part of the name, or an access key id")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="manual, auto, enabled or disabled")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List API keys (every match, by name)."""
    if kind is not None and kind not in apikeys.KEY_KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(apikeys.KEY_KINDS)}; got {kind!r}")
    with ctx_of(ctx).read() as (session, account_id):
        found = apikeys.KeySearch(search, kind)
        rows = views.api_keys(session, account_id, found).items
    emit_table(
        rows,
        as_json,
        "API keys",
        ["name", "access key id", "enabled", "auto", "datasets", "dataset groups"],
        lambda k: (
            k.name,
            k.access_key_id,
            "yes" if k.enabled else "no",
            "yes" if k.auto_provisioned else "",
            ", ".join(k.grants.datasets),
            ", ".join(k.grants.dataset_groups),
        ),
    )


@app.command("show")
def show(ctx: typer.Context, key: str, as_json: JsonFlag = False) -> None:
    """Show one API key (never its secrets)."""
    with ctx_of(ctx).read() as (session, account_id):
        view = views.api_key(session, apikeys.find_api_key(session, account_id, key))
    emit(view, as_json, lambda: _show(view))


@app.command("enable")
def enable(ctx: typer.Context, key: str, as_json: JsonFlag = False) -> None:
    """Enable an API key."""
    _change(ctx, key, as_json, lambda s, k, a: apikeys.set_enabled(s, k, True, actor=a))


@app.command("disable")
def disable(ctx: typer.Context, key: str, as_json: JsonFlag = False) -> None:
    """Disable an API key: every request signed with it is refused."""
    _change(ctx, key, as_json, lambda s, k, a: apikeys.set_enabled(s, k, False, actor=a))


@app.command("suspend")
def suspend(
    ctx: typer.Context,
    key: str,
    reason: Annotated[str | None, typer.Option(help="Why (audited)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Emergency stop: every endpoint refuses the key at once (auto-provisioned keys too)."""
    _change(ctx, key, as_json, lambda s, k, a: apikeys.suspend(s, k, actor=a, reason=reason))


@app.command("resume")
def resume(ctx: typer.Context, key: str, as_json: JsonFlag = False) -> None:
    """Lift a suspension."""
    _change(ctx, key, as_json, lambda s, k, a: apikeys.resume(s, k, actor=a))


@app.command("rename")
def rename(ctx: typer.Context, key: str, new_name: str, as_json: JsonFlag = False) -> None:
    """Rename an API key."""
    _change(ctx, key, as_json, lambda s, k, a: apikeys.rename(s, k, new_name, actor=a))


@app.command("delete")
def delete(ctx: typer.Context, key: str, as_json: JsonFlag = False) -> None:
    """Delete an API key."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        target = apikeys.find_api_key(session, account_id, key)
        apikeys.delete_api_key(session, target, actor=cli.actor)
        deleted = target.access_key_id
    emit({"deleted": deleted}, as_json, lambda: err.print(f"Deleted API key {deleted}"))


def _change_grants(
    ctx: typer.Context,
    key: str,
    dataset: list[str] | None,
    dataset_group: list[str] | None,
    as_json: bool,
    update: Callable[..., apikeys.Grants],
) -> None:
    if not dataset and not dataset_group:
        raise InvalidInput("name at least one --dataset or --dataset-group")
    datasets, groups = dataset or [], dataset_group or []
    _change(
        ctx,
        key,
        as_json,
        lambda s, k, a: update(s, k, datasets=datasets, dataset_groups=groups, actor=a),
    )


@app.command("grant")
def grant(
    ctx: typer.Context,
    key: str,
    dataset: DatasetOpt = None,
    dataset_group: GroupOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Grant datasets and/or dataset groups to an API key."""
    _change_grants(ctx, key, dataset, dataset_group, as_json, apikeys.grant)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key: str,
    dataset: DatasetOpt = None,
    dataset_group: GroupOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke grants of datasets and/or dataset groups."""
    _change_grants(ctx, key, dataset, dataset_group, as_json, apikeys.revoke)


@app.command("access")
def access(ctx: typer.Context, key: str, as_json: JsonFlag = False) -> None:
    """The datasets this key may use, each with the reasons why."""
    with ctx_of(ctx).read() as (session, account_id):
        result = views.access_of(session, apikeys.find_api_key(session, account_id, key))

    def human() -> None:
        if not result.enabled:
            err.print("[yellow]note:[/yellow] this key is disabled; every request is refused")
        table(
            f"Datasets API key {result.access_key_id} may use",
            ["dataset", "type", "why"],
            [
                (e.dataset, e.type, "; ".join(r.description for r in e.reasons))
                for e in result.datasets
            ],
        )

    emit(result, as_json, human)


@app.command("explain")
def explain(ctx: typer.Context, key: str, dataset: str, as_json: JsonFlag = False) -> None:
    """Why this key may (or may not) use this dataset."""
    with ctx_of(ctx).read() as (session, account_id):
        target = apikeys.find_api_key(session, account_id, key)
        result = views.explain(session, target, catalog.find_dataset(session, account_id, dataset))
    emit(result, as_json, lambda: out.print(result.summary))


@app.command("set-default-dataset")
def set_default_dataset(
    ctx: typer.Context,
    key: str,
    dataset: Annotated[str | None, typer.Argument(help="Unstructured dataset")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the default")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Choose the unstructured dataset the key encrypts under when it may use several."""
    if (dataset is None) == (not clear):
        raise InvalidInput("give a DATASET, or --clear to remove the default")
    _change(ctx, key, as_json, lambda s, k, a: apikeys.set_default_dataset(s, k, dataset, actor=a))
