"""The provisioning log: what each SCIM request did, for the admin reading Entra's log,
and each sign-in exchange."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from keystead.blocking import WouldWait, may_wait
from keystead.errors import Conflict, Unavailable
from keystead.logs import get_logger
from keystead.storage.driver import DriverStatement
from keystead.storage.models import ProvisioningEvent
from keystead.storage.session import Database
from keystead.storage.types import as_utc, utcnow

log = get_logger("keystead.provisioning")

# Every column but the serial id, bound by name (the time too): the statement also compiles
# once for a driver connection (`storage.driver`), as the sign-in log's batches run it.
_TABLE = cast(Table, ProvisioningEvent.__table__)
INSERT = _TABLE.insert().values({c.name: bindparam(c.name) for c in _TABLE.c if not c.primary_key})
SIGN_IN = "sso"  # the operation of sign-in exchanges; every other one is directory sync


def record(unit: Session | Connection, values: dict[str, Any]) -> None:
    """Write an entry (:func:`entry`) in the current transaction (one INSERT: it commits or
    rolls back with the request's own writes)."""
    unit.execute(INSERT, values)


def entry(
    *,
    account_id: uuid.UUID,
    method: str,
    operation: str,
    resource_type: str | None,
    resource_id: str | None,
    resource_name: str | None,
    status: int,
    scim_type: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """A log row's values, timed now."""
    return {
        "account_id": account_id,
        "at": utcnow(),
        "method": method,
        "operation": operation,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "resource_name": (resource_name or "")[:256] or None,
        "outcome": "success" if status < 400 else "failed",
        "status": status,
        "scim_type": scim_type,
        "detail": (detail or "")[:2000] or None,
    }


class Batched:
    """Entries written in batches, each within about ``every`` seconds of being added: for
    the sign-in exchange, which changes nothing else in the common case, so that a
    sign-in costs no transaction of its own (one INSERT of many rows instead of a commit
    each, and the readers' kept answers stay valid between batches).

    The request that finds the oldest entry due writes the batch, where it runs, if that
    needs no wait (on the event loop: SQLite's write lock free); otherwise, and when no
    request comes, a thread of its own does. A graceful stop writes what is pending
    (:meth:`close`); a process killed loses at most the last ``every`` seconds of
    entries. While the database cannot be reached the entries wait, up to ``KEEP`` of
    them (the oldest are dropped first, and said so); the backlog then goes in ``CHUNK``
    entries per flush on the event loop, so that no request stalls the others."""

    KEEP = 10_000  # about 10 MB
    CHUNK = 1_000

    def __init__(
        self, db: Database, *, every: float = 0.05, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db, self.every, self.clock = db, every, clock
        self._pending: list[dict[str, Any]] = []
        self._since = 0.0  # when the oldest pending entry was added
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one batch written at a time
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._insert = DriverStatement(INSERT, db.engine.dialect)  # compiled once

    def add(self, values: dict[str, Any]) -> None:
        """Queue one entry (see :func:`entry`), and write the batch if it is due. After
        :meth:`close` (a sign-in still finishing as the server stops) no thread is left to
        write it later: it is written at once."""
        now = self.clock()
        with self._lock:
            if not self._pending:
                self._since = now
            self._pending.append(values)
            closed = self._stop.is_set()
            due = closed or now - self._since >= self.every
            if self._writer is None and not closed:
                self._writer = threading.Thread(
                    target=self._run, name="keystead-log-writer", daemon=True
                )
                self._writer.start()
        if due:
            # A request never queues behind another flush: the entries it leaves wait for
            # the next one (or the thread).
            self._flush(wait=closed and may_wait())

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                due = bool(self._pending) and self.clock() - self._since >= self.every
            if due:
                self._flush(wait=True)

    def close(self) -> None:
        """Stop the writer thread and write what is pending."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join()
        self.flush()

    def flush(self) -> None:
        """Write every pending entry now, unless that would wait here (they stay for the
        next request or the thread); kept for later if the database cannot be reached.
        Where it may wait, a flush another thread is doing is waited for, so that what
        was added before this call is in the database when it returns (the admin's
        listing flushes first)."""
        self._flush(wait=may_wait())

    def _flush(self, *, wait: bool) -> None:
        if not self._flushing.acquire(blocking=wait):
            return  # another thread is writing a batch; these wait for the next round
        try:
            with self._lock:
                take = len(self._pending) if may_wait() else self.CHUNK
                batch, self._pending = self._pending[:take], self._pending[take:]
                since = self._since  # the rest, if any, are as old: due at once
            if batch:
                self._write(batch)
        except (WouldWait, Unavailable) as exc:
            self._wait_again(batch, since, exc)
        except Exception:
            # An account deleted since (its entries went with it) fails the whole batch on
            # its foreign key (Conflict), and so would any one entry the database refuses:
            # the others are written one by one.
            self._one_by_one(batch, since)
        finally:
            self._flushing.release()

    def _one_by_one(self, batch: list[dict[str, Any]], since: float) -> None:
        for i, one in enumerate(batch):
            try:
                self._write([one])
            except (WouldWait, Unavailable) as exc:
                self._wait_again(batch[i:], since, exc)
                return
            except Conflict:
                continue  # its account is gone
            except Exception as exc:  # one entry lost, never the others
                log.error("log_entry_not_written", error=type(exc).__name__)

    def _wait_again(
        self, batch: list[dict[str, Any]], since: float, exc: WouldWait | Unavailable
    ) -> None:
        """Entries not written because that would wait here, or the database cannot be
        reached, go back before the others, at most ``KEEP`` in all."""
        with self._lock:
            self._pending[:0] = batch
            self._since = since
            dropped = max(len(self._pending) - self.KEEP, 0)
            del self._pending[:dropped]
        if isinstance(exc, Unavailable):
            log.warning("log_entries_waiting", reason=exc.message, dropped=dropped)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        with self.db.transaction() as connection:
            self._insert.run_many(connection.connection.driver_connection, batch)


def list_events(
    session: Session,
    *,
    account_id: uuid.UUID,
    user: str | None = None,
    group: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[ProvisioningEvent]:
    """Newest first. ``user``/``group`` match part of the resource's name (case-insensitive)
    or its whole id; ``kind`` is ``scim`` (directory sync) or ``sso`` (sign-in exchanges);
    ``since`` is inclusive, ``until`` exclusive."""
    query = select(ProvisioningEvent).where(ProvisioningEvent.account_id == account_id)
    for resource_type, wanted in (("User", user), ("Group", group)):
        if wanted:
            query = query.where(
                ProvisioningEvent.resource_type == resource_type,
                ProvisioningEvent.resource_name.icontains(wanted.strip(), autoescape=True)
                | (ProvisioningEvent.resource_id == wanted.strip()),
            )
    if outcome:
        query = query.where(ProvisioningEvent.outcome == outcome)
    if since is not None:
        query = query.where(ProvisioningEvent.at >= as_utc(since, what="since"))
    if until is not None:
        query = query.where(ProvisioningEvent.at < as_utc(until, what="until"))
    if kind == SIGN_IN:
        query = query.where(ProvisioningEvent.operation == SIGN_IN)
    elif kind == "scim":
        query = query.where(ProvisioningEvent.operation != SIGN_IN)
    if before_id is not None:
        query = query.where(ProvisioningEvent.id < before_id)
    return list(session.scalars(query.order_by(ProvisioningEvent.id.desc()).limit(limit)))
