"""How much one key may store through ``POST /api/v3/tracking/events``.

The client signs usage reports with the key's secrets but sends no certificate, even for
auto-provisioned keys whose other calls need one, so a signed-in user's secrets alone can
post them. Each reporting key may store ``per_minute`` entries in any 60 s and
``per_day`` in any 24 h; a report that would pass either is refused whole (429 with
Retry-After) and its entries are counted per key and day in ``usage_refusals``, which
the admin sees beside the usage. Once refused, a key is refused from memory, without a
query, until its Retry-After has passed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import NoReturn, TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keystead.errors import TooManyRequests
from keystead.storage.models import ApiKey, UsageEvent, UsageRefusal
from keystead.storage.session import Database
from keystead.storage.types import utcnow
from keystead.tally import Tally

T = TypeVar("T")
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


class UsageLimits:
    def __init__(
        self,
        db: Database,
        *,
        per_minute: int,
        per_day: int,
        flush_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.per_minute, self.per_day, self.clock = db, per_minute, per_day, clock
        self._refused_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._refusals: Tally[tuple[uuid.UUID, str, date]] = Tally(
            self._write_refusals, every=flush_seconds, clock=clock
        )

    def store(
        self,
        account_id: uuid.UUID,
        reported_by: str,
        entries: int,
        write: Callable[[Session], T],
    ) -> T:
        """Run ``write`` (which stores ``entries`` rows reported by ``reported_by``) in a
        write transaction if the key's limits allow it; otherwise raise TooManyRequests."""
        with self._lock:
            until = self._refused_until.get(reported_by)
        if until is not None and until > self.clock():
            self._refuse(account_id, reported_by, entries, _OverLimit(until - self.clock()))
        try:
            with self.db.write() as session:
                self._admit(session, reported_by, entries)
                return write(session)
        except _OverLimit as over:  # counted once the transaction is over
            self._refuse(account_id, reported_by, entries, over)

    def _admit(self, session: Session, reported_by: str, entries: int) -> None:
        now = utcnow()
        in_minute = _stored_since(session, reported_by, now - MINUTE)
        if in_minute + entries > self.per_minute:
            raise _OverLimit(60.0, f"{self.per_minute} a minute")
        in_day = _stored_since(session, reported_by, now - DAY)
        if in_day + entries > self.per_day:
            oldest = session.scalar(
                select(func.min(UsageEvent.received_at)).where(
                    UsageEvent.reported_by == reported_by,
                    UsageEvent.received_at >= now - DAY,
                )
            )
            wait = (oldest + DAY - now).total_seconds() if oldest else 60.0
            raise _OverLimit(max(60.0, wait), f"{self.per_day} a day")

    def flush(self) -> None:
        self._refusals.flush()

    def _refuse(
        self, account_id: uuid.UUID, reported_by: str, entries: int, over: _OverLimit
    ) -> NoReturn:
        now = self.clock()
        with self._lock:
            if len(self._refused_until) > 100_000:  # keys refused once, long ago
                self._refused_until = {k: t for k, t in self._refused_until.items() if t > now}
            if self._refused_until.get(reported_by, 0.0) <= now:
                self._refused_until[reported_by] = now + over.wait
        self._refusals.note((account_id, reported_by, utcnow().date()), 1, entries)
        seconds = max(1, int(over.wait + 0.999))
        if over.limit is None:
            message = f"usage reports of this key are refused for {seconds} s more (over its limit)"
        else:
            message = (
                f"usage report refused: a key may store {over.limit} usage entries; "
                f"try again in {seconds} s"
            )
        raise TooManyRequests(message, retry_after=seconds)

    def _write_refusals(self, key: tuple[uuid.UUID, str, date], sums: tuple[int, ...]) -> None:
        account_id, reported_by, day = key
        reports, entries = sums
        now = utcnow()
        with self.db.write() as session:
            insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
            statement = insert(UsageRefusal).values(
                account_id=account_id,
                reported_by=reported_by,
                day=day,
                reports=reports,
                entries=entries,
                last_at=now,
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["account_id", "reported_by", "day"],
                    set_={
                        "reports": UsageRefusal.reports + reports,
                        "entries": UsageRefusal.entries + entries,
                        "last_at": now,
                    },
                )
            )


class _OverLimit(Exception):
    def __init__(self, wait: float, limit: str | None = None) -> None:
        self.wait, self.limit = wait, limit


def _stored_since(session: Session, reported_by: str, since: datetime) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                UsageEvent.reported_by == reported_by, UsageEvent.received_at >= since
            )
        )
        or 0
    )


class RefusalRow(BaseModel):
    day: date
    api_key: str
    api_key_name: str | None = None  # None once the key is deleted
    reports: int
    entries: int
    last_at: datetime


def refusals(
    session: Session,
    *,
    account_id: uuid.UUID,
    since: date | None = None,
    until: date | None = None,
) -> list[RefusalRow]:
    """Reports refused over a key's limits, per day and reporting key (newest day first)."""
    query = (
        select(UsageRefusal, ApiKey.name)
        .outerjoin(
            ApiKey,
            (ApiKey.access_key_id == UsageRefusal.reported_by) & (ApiKey.account_id == account_id),
        )
        .where(UsageRefusal.account_id == account_id)
        .order_by(UsageRefusal.day.desc(), UsageRefusal.reported_by)
    )
    if since is not None:
        query = query.where(UsageRefusal.day >= since)
    if until is not None:
        query = query.where(UsageRefusal.day <= until)
    return [
        RefusalRow(
            day=row.day,
            api_key=row.reported_by,
            api_key_name=name,
            reports=row.reports,
            entries=row.entries,
            last_at=row.last_at,
        )
        for row, name in session.execute(query)
    ]
