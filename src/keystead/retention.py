"""How long records are kept, and pruning what is older, a small batch per transaction.

Each kind of record has a retention in days (settings; 0 keeps it forever). Pruning
deletes the oldest rows first, at most ``BATCH`` per transaction, so SQLite's write lock
(and PostgreSQL's row locks) are held for a few milliseconds at a time and requests keep
their turns between batches. It is idempotent: several nodes (or workers) pruning at once
delete each row once and otherwise find nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, func, select, tuple_

from keystead import audit
from keystead.audit import Actor
from keystead.settings import Settings
from keystead.storage.models import (
    AdminSession,
    AuditEvent,
    Base,
    ProvisioningEvent,
    SignInFailure,
    UsageEvent,
    UsageRefusal,
)
from keystead.storage.session import Database

BATCH = 500


@dataclass(frozen=True)
class Kind:
    """One kind of record: its rows older than ``days`` (by ``column``) are pruned."""

    name: str
    setting: str  # the Settings field holding its retention in days
    model: type[Base]
    column: str
    # Logs whose serial id grows with ``column``: a batch looks at the oldest ids only, so
    # finding nothing to prune costs an index read, not a scan under the write lock. The
    # other kinds are small tables (a row per email, session or key and day).
    serial: bool = False

    @property
    def table(self) -> Table:
        return cast(Table, self.model.__table__)

    def older_than(self, cutoff: datetime) -> ColumnElement[bool]:
        bound: date | datetime = cutoff.date() if self.column == "day" else cutoff
        return self.table.c[self.column] < bound


KINDS = (
    Kind(
        "provisioning log entries",
        "retention_provisioning_days",
        ProvisioningEvent,
        "at",
        serial=True,
    ),
    # By arrival: a client reports its own day, which need not grow with the id.
    Kind("usage events", "retention_usage_days", UsageEvent, "received_at", serial=True),
    Kind("refused usage reports", "retention_usage_days", UsageRefusal, "day"),
    # A sign-in throttling window lasts minutes: a week-old one is over.
    Kind(
        "refused sign-in counts",
        "retention_sign_in_failures_days",
        SignInFailure,
        "window_started_at",
    ),
    Kind("expired console sessions", "retention_sign_in_failures_days", AdminSession, "expires_at"),
    Kind("audit events", "retention_audit_days", AuditEvent, "at", serial=True),
)


@dataclass(frozen=True)
class Due:
    kind: Kind
    days: int  # 0: kept forever
    rows: int


def _cutoffs(settings: Settings) -> Iterator[tuple[Kind, int, datetime]]:
    """Each kind, its retention in days and the moment before which its rows go."""
    moment = datetime.now(UTC)
    for kind in KINDS:
        days = int(getattr(settings, kind.setting))
        yield kind, days, moment - timedelta(days=days)


def due(db: Database, settings: Settings) -> list[Due]:
    """What pruning would delete now, per kind."""
    found = []
    for kind, days, cutoff in _cutoffs(settings):
        rows = 0
        if days > 0:
            with db.read() as session:
                count = select(func.count()).select_from(kind.table)
                rows = int(session.scalar(count.where(kind.older_than(cutoff))) or 0)
        found.append(Due(kind, days, rows))
    return found


def prune(db: Database, settings: Settings, *, actor: Actor, pause: float = 0.0) -> dict[str, int]:
    """Delete what retention lets go, oldest first, ``BATCH`` rows per transaction with
    ``pause`` seconds between batches; rows deleted per kind. A run that deleted anything
    is audited."""
    deleted: dict[str, int] = {}
    for kind, days, cutoff in _cutoffs(settings):
        while days > 0:
            count = _prune_batch(db, kind, cutoff)
            if count:
                deleted[kind.name] = deleted.get(kind.name, 0) + count
            if count < BATCH:
                break
            time.sleep(pause)
    if deleted:
        with db.write() as session:
            audit.record(
                session, account_id=None, actor=actor, action="retention.pruned", detail=deleted
            )
    return deleted


def _prune_batch(db: Database, kind: Kind, cutoff: datetime) -> int:
    keys = list(kind.table.primary_key.columns)
    target = keys[0] if len(keys) == 1 else tuple_(*keys)
    doomed: ColumnElement[bool]
    if kind.serial:
        doomed = target.in_(select(*keys).order_by(*keys).limit(BATCH)) & kind.older_than(cutoff)
    else:
        doomed = target.in_(select(*keys).where(kind.older_than(cutoff)).limit(BATCH))
    with db.write() as session:
        result = session.execute(
            delete(kind.table).where(doomed).execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)
