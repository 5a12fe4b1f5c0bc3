"""`keystead master-key …`: rotation of the master key and what is stored under each key."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from keystead import masterkey_rotation as rotation
from keystead.cli.context import CliContext, JsonFlag, ctx_of, emit, err, out, pairs
from keystead.errors import ConfigurationError

app = typer.Typer(
    help="The master key: rotate it, see what is stored under it.", no_args_is_help=True
)

ENV_REFUSAL = (
    "the master key comes from KEYSTEAD_MASTER_KEY, which this command cannot change. "
    "To rotate it: (1) `keystead master-key generate` prints a new key; (2) set "
    "KEYSTEAD_MASTER_KEY to 'NEW,OLD' (the new key first) for every Keystead process and "
    "restart them; (3) run `keystead master-key rotate` with that setting: it re-wraps "
    "every secret under NEW; (4) set KEYSTEAD_MASTER_KEY to NEW alone and restart."
)


def _source(cli: CliContext) -> str:
    if cli.settings.master_key is not None:
        return "KEYSTEAD_MASTER_KEY"
    return str(cli.settings.effective_master_key_file)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows re-wrapped per transaction")
    ] = rotation.DEFAULT_BATCH_SIZE,
    settle_seconds: Annotated[
        float,
        typer.Option(min=0, hidden=True, help="Least time between adding the key and recording it"),
    ] = rotation.DEFAULT_SETTLE_SECONDS,
    stop_after_batches: Annotated[
        int | None, typer.Option(min=1, hidden=True, help="Stop after this many batches")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make a new master key and re-wrap every stored secret under it.

    The key file holds both keys while this runs (every process reading it follows); the
    old key is retired at the end. Safe to interrupt and to run again: a rerun continues.
    """
    cli = ctx_of(ctx)
    runtime = cli.runtime  # opening it checks that the configured key opens the database
    from_env = cli.settings.master_key is not None
    if from_env and len(runtime.master.keks) < 2:
        raise ConfigurationError(ENV_REFUSAL)
    interrupted = threading.Event()

    def on_ctrl_c(signum: int, frame: FrameType | None) -> None:
        if interrupted.is_set():  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        interrupted.set()  # the first stops after the batch under way

    bar = Progress(
        TextColumn("re-wrapping secrets"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json or not err.is_terminal,
    )
    task = bar.add_task("re-wrap", total=None)
    work = rotation.Rotation(
        runtime.db,
        batch_size=batch_size,
        settle_seconds=settle_seconds,
        stop_after_batches=stop_after_batches,
        progress=lambda total: bar.update(task, total=total),
        advance=lambda n: bar.advance(task, n),
        interrupted=interrupted,
    )
    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        with bar:
            if from_env:
                outcome = work.rotate_given(runtime.master)
            else:
                outcome = work.rotate_file(cli.settings.effective_master_key_file)
    except KeyboardInterrupt:
        err.print(
            "interrupted: every secret is readable with the key file as it is; run "
            "`keystead master-key rotate` again to finish"
        )
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    result: dict[str, Any] = {
        "key_source": _source(cli),
        "new_key_id": outcome.new_key_id,
        "retired_key_ids": outcome.retired_key_ids,
        "rewrapped": outcome.rewrapped,
        "continued": not outcome.started and not from_env,
    }

    def human() -> None:
        pairs(
            ("master key id", outcome.new_key_id),
            ("retired key ids", outcome.retired_key_ids or "-"),
            ("secrets re-wrapped", outcome.rewrapped),
            ("key source", result["key_source"]),
        )
        if from_env:
            out.print(
                "\nEvery secret is under the new key. Set KEYSTEAD_MASTER_KEY to the new key "
                "alone (drop the old one) and restart every Keystead process."
            )
        else:
            out.print("\nThe key file now holds the new key alone: back it up again.")

    emit(result, as_json, human)


@app.command("status")
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The master keys held, the one the database records, and the rows under each key."""
    cli = ctx_of(ctx)
    runtime = cli.runtime
    counted = rotation.census(runtime.db)
    held = runtime.master.fingerprints
    secrets = {label: rows for label, rows in counted.rows.items() if label != rotation.CHECK.label}
    result = {
        "key_source": _source(cli),
        "key_ids": held,
        "wrapping_key_id": held[0],
        "database_key_id": counted.bound_to,
        "rotation_under_way": len(held) > 1,
        "rows": secrets,
    }

    def human() -> None:
        totals = ", ".join(f"{k}: {n}" for k, n in sorted(counted.by_key().items()))
        pairs(
            ("key source", result["key_source"]),
            ("wrapping key id", held[0]),
            ("other key ids held", held[1:] or "-"),
            ("database records", counted.bound_to or "-"),
            ("rows by key id", totals or "none"),
            (
                "rotation under way",
                "yes (run `keystead master-key rotate`)" if len(held) > 1 else "no",
            ),
        )
        for label, rows in secrets.items():
            shown = ", ".join(f"{key_id}: {n}" for key_id, n in sorted(rows.items())) or "none"
            out.print(f"  {label}: {shown}")

    emit(result, as_json, human)


@app.command("generate")
def generate(as_json: JsonFlag = False) -> None:
    """Print a new master key (base64), for keys kept outside Keystead. Shown once."""
    key = rotation.generated_key()
    emit({"key": key}, as_json, lambda: out.print(key))
