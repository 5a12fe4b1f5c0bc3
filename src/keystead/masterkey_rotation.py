"""Master key rotation: every wrapped secret re-wrapped under a new master key.

The steps, each safe to interrupt at any moment (Ctrl-C, kill -9) and to run again:

1. The key file gains a new key in front of the current one (``replace_key_file``: atomic
   and durable). Every process that reads the file follows it (``MasterKey``): it unwraps
   under both keys and wraps new secrets under the new one.
2. Rows under any other key are re-wrapped under the new one, a small batch per
   transaction. An update applies only if the row still holds what was read, so a secret
   changed meanwhile is never overwritten (the next pass sees it again).
3. Once a pass finds nothing left, and no sooner than ``settle_seconds`` after step 1 (a
   write that wrapped under the old key just before may still be committing), the database
   records the new key: its check value is wrapped under it, in a transaction that finds no
   row under another key. From then on the old key alone no longer opens the database.
4. The key file is rewritten with the new key alone.

At no moment does the database hold a row under a key the file lacks: the new key is on
disk before any row uses it, and the old one leaves only after no row uses it. A rerun
finds the file's first key as the target (a file of several keys is a rotation under way)
and continues from where the last run stopped.

With the keys in ``KEYSTEAD_MASTER_KEY`` the command cannot change where they are kept: the
operator puts the new key first there (``NEW,OLD``) and restarts every process, the command
does steps 2 and 3, and the operator then removes the old key.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import LargeBinary, Table, and_, bindparam, func, literal, select, tuple_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement, KeyedColumnElement

from keystead.apikeys.service import signing_key_context
from keystead.catalog.datasets import key_context
from keystead.crypto.masterkey import (
    KEY_ID_POSITION,
    Kek,
    MasterKey,
    UnwrapError,
    read_key_file,
    replace_key_file,
)
from keystead.errors import ConfigurationError, KeysteadError
from keystead.idp.service import ca_key_context
from keystead.storage.models import ApiKey, Base, DatasetKey, IdpSettings, Meta
from keystead.storage.service_lock import flocked
from keystead.storage.session import Database

# The database's record of its master key: a known value wrapped under it (runtime checks it
# on every start; step 3 re-wraps it under the new key last).
CHECK_NAME = "master_key_check"
CHECK_CONTEXT = "meta:master-key-check"
CHECK_VALUE = b"keystead master key check v1"

DEFAULT_BATCH_SIZE = 200
DEFAULT_SETTLE_SECONDS = 5.0


class RotationBusy(KeysteadError):
    """Another rotation holds the key file's lock."""

    status = 409


class RotationStopped(KeysteadError):
    """The run stopped where it was asked to (``stop_after_batches``); run it again."""

    status = 409


@dataclass(frozen=True)
class WrappedColumn:
    """A column of wrapped secrets, the row's key columns and the context each is bound to."""

    label: str
    column: KeyedColumnElement[Any]
    keys: tuple[KeyedColumnElement[Any], ...]
    context: Callable[[Any], str]  # of a row holding the key columns
    where: ColumnElement[bool] | None = None

    @classmethod
    def of(
        cls,
        label: str,
        entity: type[Base],
        column: str,
        keys: tuple[str, ...],
        context: Callable[[Any], str],
        where: Callable[[Any], ColumnElement[bool]] | None = None,
    ) -> WrappedColumn:
        """From column names; ``where``, of the table's columns, picks rows."""
        table = entity.__table__.c
        picked = where(table) if where else None
        return cls(label, table[column], tuple(table[k] for k in keys), context, picked)


# Every wrapped secret Keystead stores. The check value comes last: re-wrapping it records
# the new key (step 3).
SECRETS: tuple[WrappedColumn, ...] = (
    WrappedColumn.of("dataset keys", DatasetKey, "wrapped_key", ("dataset_id", "key_number"),
                     lambda row: key_context(row.dataset_id, row.key_number)),
    WrappedColumn.of("API key signing secrets", ApiKey, "wrapped_signing_key", ("id",),
                     lambda row: signing_key_context(row.id)),
    WrappedColumn.of("SSO certificate authority keys", IdpSettings, "ca_key_wrapped",
                     ("account_id",), lambda row: ca_key_context(row.account_id)),
)  # fmt: skip
CHECK = WrappedColumn.of("master key check", Meta, "value", ("name",), lambda row: CHECK_CONTEXT,
                        where=lambda c: c.name == CHECK_NAME)  # fmt: skip
EVERY_WRAPPED: tuple[WrappedColumn, ...] = (*SECRETS, CHECK)


def _key_id(column: KeyedColumnElement[Any]) -> ColumnElement[Any]:
    return func.substr(column, *KEY_ID_POSITION, type_=LargeBinary)


def _rows(column: WrappedColumn) -> ColumnElement[bool]:
    present = column.column.is_not(None)
    return present if column.where is None else and_(present, column.where)


def _not_under(column: WrappedColumn, key_id: bytes) -> ColumnElement[bool]:
    return and_(_rows(column), _key_id(column.column) != literal(key_id, LargeBinary))


@dataclass(frozen=True)
class Census:
    """How many rows are wrapped under each key id (hex), per column label."""

    rows: dict[str, dict[str, int]]
    bound_to: str | None  # the key id the check value is under: the one the database records

    def by_key(self) -> dict[str, int]:
        return dict(sum(map(Counter, self.rows.values()), Counter()))


def census(db: Database) -> Census:
    rows: dict[str, dict[str, int]] = {}
    with db.read() as session:
        for column in EVERY_WRAPPED:
            key_id = _key_id(column.column)
            query = select(key_id, func.count()).where(_rows(column)).group_by(key_id)
            rows[column.label] = {bytes(k).hex(): n for k, n in session.execute(query)}
    return Census(rows, next(iter(rows[CHECK.label]), None))


def _left_under_others(session: Session, key_id: bytes) -> int:
    """Rows of secrets (not the check value) wrapped under any key but ``key_id``."""
    return sum(
        session.scalar(select(func.count()).where(_not_under(column, key_id))) or 0
        for column in SECRETS
    )


_After = tuple[Any, ...] | None  # a batch's last row's key columns; None: before the first


@dataclass
class Outcome:
    new_key_id: str
    retired_key_ids: list[str]
    rewrapped: int
    started: bool  # whether this run began the rotation (False: it continued one)


@dataclass
class Rotation:
    """One run of the rotation. ``progress(total)`` is called when the amount of work is
    known and ``advance(n)`` after each committed batch."""

    db: Database
    _: KW_ONLY
    batch_size: int = DEFAULT_BATCH_SIZE
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    stop_after_batches: int | None = None
    progress: Callable[[int], None] = lambda total: None
    advance: Callable[[int], None] = lambda n: None
    # Set by the caller's Ctrl-C handler: the run stops between batches, never inside a
    # statement (a driver interrupted mid-query may fail its rollback and hide the stop).
    interrupted: threading.Event = field(default_factory=threading.Event)
    _batches: int = field(default=0, init=False)

    def rotate_file(self, path: Path) -> Outcome:
        with _exclusive(path):
            keyring = read_key_file(path)
            started = len(keyring.keks) == 1
            if started:  # step 1
                replace_key_file(path, (Kek.generate(), *keyring.keks))
                keyring = read_key_file(path)
            outcome = self._rewrap_and_record(keyring, started)  # steps 2 and 3
            replace_key_file(path, keyring.keks[:1])  # step 4
        return outcome

    def rotate_given(self, keyring: MasterKey) -> Outcome:
        """With the keys in the environment: steps 2 and 3."""
        return self._rewrap_and_record(keyring, started=False)

    def _rewrap_and_record(self, keyring: MasterKey, started: bool) -> Outcome:
        target = MasterKey(keyring.key)  # wraps under the target only, whatever the file says
        since = time.monotonic()
        with self.db.read() as session:
            left = _left_under_others(session, target.key_id)
        self.progress(left)
        rewrapped = 0
        while True:
            moved = self._rewrap_pass(keyring, target)
            rewrapped += moved
            waited = time.monotonic() - since
            if moved == 0 and waited >= self.settle_seconds and self._record(keyring, target):
                return Outcome(keyring.fingerprint, keyring.fingerprints[1:], rewrapped, started)
            if moved == 0 and self.interrupted.wait(max(0.0, self.settle_seconds - waited)):
                raise KeyboardInterrupt

    def _rewrap_pass(self, keyring: MasterKey, target: MasterKey) -> int:
        moved = 0
        for column in SECRETS:
            after: _After = None
            while True:
                count, after = self._rewrap_batch(column, keyring, target, after)
                if count == 0:
                    break
                moved += count
                self.advance(count)
                self._batches += 1
                if self.interrupted.is_set():
                    raise KeyboardInterrupt
                if self.stop_after_batches is not None and self._batches >= self.stop_after_batches:
                    raise RotationStopped(
                        f"stopped after {self._batches} batches as asked; run the command "
                        "again to continue"
                    )
        return moved

    def _rewrap_batch(
        self, column: WrappedColumn, keyring: MasterKey, target: MasterKey, after: _After
    ) -> tuple[int, _After]:
        """Re-wrap up to ``batch_size`` rows under another key than ``target``'s, in one
        transaction, walking the rows in key order past the key ``after`` (so a batch never
        scans the rows done before it). Returns how many rows were read (0: none left) and
        the last one's key."""
        query = select(*column.keys, column.column).where(_not_under(column, target.key_id))
        if after is not None:
            bound = (literal(v, key.type) for key, v in zip(column.keys, after, strict=True))
            query = query.where(tuple_(*column.keys) > tuple_(*bound))
        # One statement for the batch, run with every row's values (executemany): the row
        # still holds what was read, or it is left for the next pass.
        change = (
            update(cast(Table, column.column.table))
            .where(*(key == bindparam(f"k{i}") for i, key in enumerate(column.keys)))
            .where(column.column == bindparam("old"))
            .values({column.column.key: bindparam("new")})
        )
        with self.db.write() as session:
            found = session.execute(query.order_by(*column.keys).limit(self.batch_size)).all()
            values = []
            for row in found:
                context, old = column.context(row), bytes(row[-1])
                try:
                    plaintext = keyring.unwrap(old, context)
                except UnwrapError as exc:
                    where = ", ".join(
                        f"{k.key}={v}" for k, v in zip(column.keys, row, strict=False)
                    )
                    raise ConfigurationError(
                        f"a stored secret cannot be read with the keys held ({column.label}, "
                        f"{where}): {exc.message}"
                    ) from exc
                keys_of = {f"k{i}": v for i, v in enumerate(row[:-1])}
                values.append({**keys_of, "old": old, "new": target.wrap(plaintext, context)})
            if values:
                session.connection().execute(change, values)
        return len(found), (tuple(found[-1][:-1]) if found else after)

    def _record(self, keyring: MasterKey, target: MasterKey) -> bool:
        """Step 3: the check value under the target key, if no secret is under another key
        (checked in the same transaction). False: a secret arrived meanwhile; go round."""
        with self.db.write() as session:
            if _left_under_others(session, target.key_id):
                return False
            check = session.get(Meta, CHECK_NAME)
            if check is None:
                raise ConfigurationError("the database has no master key check value")
            if keyring.unwrap(bytes(check.value), CHECK_CONTEXT) != CHECK_VALUE:
                raise ConfigurationError("the database's master key check value is wrong")
            check.value = target.wrap(CHECK_VALUE, CHECK_CONTEXT)
        return True


def _exclusive(path: Path) -> AbstractContextManager[int]:
    """One rotation of a key file at a time (two would each add a key, and the second
    rename would drop the first one's key while rows may use it)."""
    busy = RotationBusy(f"another `keystead master-key rotate` is running on {path}; wait for it")
    return flocked(path.with_name(f".{path.name}.lock"), shared=False, refusal=lambda fd: busy)


def generated_key() -> str:
    """A new master key, as base64, for an operator who keeps keys outside Keystead."""
    return Kek.generate().to_base64()
