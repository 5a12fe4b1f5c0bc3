"""What every command shares: settings, the open installation, the account in scope,
output (rich tables for people, JSON for scripts) and error reporting."""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from keystead.accounts import service as accounts
from keystead.audit import Actor
from keystead.errors import KeysteadError
from keystead.runtime import Runtime, open_runtime
from keystead.settings import Settings
from keystead.storage import service_lock
from keystead.storage.engine import sqlite_file

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
T = TypeVar("T")
V = TypeVar("V")
# A change to one object, made in the command's transaction by its actor.
Change = Callable[[Session, T, Actor], object]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


@dataclass
class CliContext:
    settings: Settings
    account_ref: str | None
    actor: Actor = field(default_factory=Actor.cli)
    _runtime: Runtime | None = None
    _held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            # Every command that opens the database (`serve` included) holds the service
            # lock until it ends, so `keystead restore` cannot replace the file under it.
            database = sqlite_file(self.settings.effective_database_url)
            self._held.enter_context(service_lock.serving(database))
            self._runtime = open_runtime(self.settings, create=True)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
        self._held.close()

    def account_id(self, session: Session) -> uuid.UUID:
        """The account in scope: --account, or the only one there is."""
        if self.account_ref:
            try:
                wanted = uuid.UUID(self.account_ref)
            except ValueError as exc:
                raise KeysteadError(
                    f"--account takes a customer id (UUID); got {self.account_ref!r}"
                ) from exc
            return accounts.get_account(session, wanted).id
        existing = accounts.list_accounts(session)
        if not existing:
            raise KeysteadError("there is no account yet; run `keystead init` first")
        if len(existing) > 1:
            ids = ", ".join(str(a.id) for a in existing)
            raise KeysteadError(
                f"{len(existing)} accounts exist; choose one with --account CUSTOMER_ID ({ids})"
            )
        return existing[0].id

    @contextmanager
    def write(self) -> Iterator[tuple[Session, uuid.UUID]]:
        with self.runtime.db.write() as session:
            yield session, self.account_id(session)

    @contextmanager
    def read(self) -> Iterator[tuple[Session, uuid.UUID]]:
        with self.runtime.db.read() as session:
            yield session, self.account_id(session)


def ctx_of(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):
        raise TypeError("the keystead command's root context was not set up")
    return obj


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        # Models as model_dump(mode="json") gives them, wherever they are in ``data``.
        jsonable = to_jsonable_python(data, by_alias=False)
        sys.stdout.write(json.dumps(jsonable, indent=2) + "\n")
    else:
        human()


def changer(
    find: Callable[[Session, uuid.UUID, str], T],
    view: Callable[[Session, T], V],
    show: Callable[[V], None],
) -> Callable[[typer.Context, str, bool, Change[T]], None]:
    """The body of the commands that change one object: find the one named in the account,
    apply the change in one transaction, and print the object as it now is."""

    def change(ctx: typer.Context, ref: str, as_json: bool, apply: Change[T]) -> None:
        cli = ctx_of(ctx)
        with cli.write() as (session, account_id):
            target = find(session, account_id, ref)
            apply(session, target, cli.actor)
            shown = view(session, target)
        emit(shown, as_json, lambda: show(shown))

    return change


def emit_table(
    rows: Sequence[T],
    as_json: bool,
    title: str,
    columns: Sequence[str],
    cells: Callable[[T], Sequence[Any]],
) -> None:
    """``rows`` as JSON, or as a table: ``cells`` of each row under ``columns``."""
    emit(rows, as_json, lambda: table(title, columns, [cells(row) for row in rows]))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        # Values come from admins and the directory: shown as text, never read as markup.
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    out.print(grid)


def pairs(*items: tuple[str, Any]) -> None:
    width = max(len(k) for k, _ in items)
    for key, value in items:
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        line = Text.assemble((key.ljust(width), "bold"), "  ", "" if shown is None else str(shown))
        out.print(line)


def report_error(message: str, *, as_json: bool, status: int) -> None:
    """Print an error the way the command's caller reads it (JSON on stdout, or stderr)."""
    if as_json:
        sys.stdout.write(json.dumps({"message": message, "status": status}) + "\n")
    else:
        err.print(f"[red]error:[/red] {escape(message)}")
