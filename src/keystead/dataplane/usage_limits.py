"""How much usage one key, and one account, may store through ``POST /api/v3/tracking/events``.

The client signs usage reports with the key's secrets but sends no certificate, even for
auto-provisioned keys whose other calls need one, so a signed-in user's secrets alone can
post them. Each reporting key may store ``per_minute`` entries in a clock minute and
``per_day`` in a UTC day, and each account ``per_account_day`` in a UTC day; a report that
would pass any of them is refused whole (429 with Retry-After: the end of that minute or
day) and its entries are counted per key and day in ``usage_refusals``, which the admin
sees beside the usage.

The counts are rows of ``usage_counters`` (one per key or account and window), each
raised by one conditional upsert that adds the report's entries only if the result stays
within the limit: O(1) whatever a key stored before, and race-free on PostgreSQL (the
upsert locks the row) as on SQLite (one writer). A refused key's room left is remembered
until its window ends, so a report that cannot fit is refused without a query, and one
that can still goes through.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import NamedTuple, NoReturn, TypeVar

from pydantic import BaseModel
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from keystead.caching import Expiring
from keystead.errors import TooManyRequests
from keystead.storage.dialect import insert_for
from keystead.storage.models import ApiKey, UsageCounter, UsageRefusal
from keystead.storage.session import Database
from keystead.storage.types import utcnow
from keystead.tally import Tally

T = TypeVar("T")
MINUTE, DAY = 60, 86400


class _Window(NamedTuple):
    subject: str  # "key:<access key id>" or "account:<uuid>"
    seconds: int  # MINUTE or DAY
    limit: int

    def ends_in(self, now: float) -> float:
        return self.seconds - now % self.seconds


class _OverLimit(Exception):
    def __init__(self, window: _Window, room: int, wait: float) -> None:
        self.window, self.room, self.wait = window, room, wait


class UsageLimits:
    def __init__(
        self,
        db: Database,
        *,
        per_minute: int,
        per_day: int,
        per_account_day: int,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.clock, self.wall = db, clock, wall
        self._insert = insert_for(db.dialect)
        self.per_minute, self.per_day, self.per_account_day = per_minute, per_day, per_account_day
        # Window -> entries it still has room for, until the window ends (a room only shrinks
        # within a window, so a remembered one can refuse early, never wrongly).
        self._room: Expiring[_Window, tuple[int, float]] = Expiring(100_000, clock)
        self._refusals: Tally[tuple[uuid.UUID, str, date]] = Tally(
            self._write_refusals, every=10.0, clock=clock
        )

    def store(
        self, account_id: uuid.UUID, reported_by: str, entries: int, write: Callable[[Session], T]
    ) -> T:
        """Run ``write`` (which stores ``entries`` rows reported by ``reported_by``) in a
        write transaction if every limit has room for them; else raise TooManyRequests."""
        key = f"key:{reported_by}"
        windows = (
            _Window(key, MINUTE, self.per_minute),
            _Window(key, DAY, self.per_day),
            _Window(f"account:{account_id}", DAY, self.per_account_day),
        )
        for window in windows:
            remembered = self._room.get(window)
            if remembered is not None and entries > remembered[0]:
                room, until = remembered
                over = _OverLimit(window, room, until - self.clock())
                self._refuse(account_id, reported_by, entries, over)
        try:
            with self.db.write() as session:
                now = self.wall()
                for window in windows:
                    self._take(session, window, entries, now)
                return write(session)
        except _OverLimit as over:  # the transaction rolled back: nothing was counted
            until = self.clock() + over.wait
            self._room.put(over.window, (over.room, until), until=until)
            self._refuse(account_id, reported_by, entries, over)

    def flush(self) -> None:
        self._refusals.flush()

    def _take(self, session: Session, window: _Window, entries: int, now: float) -> None:
        """Add ``entries`` to the window's count if it stays within the limit."""
        bucket = int(now // window.seconds)
        if entries > window.limit:
            raise _OverLimit(window, window.limit, window.ends_in(now))
        table = UsageCounter.__table__
        stmt = self._insert(UsageCounter).values(
            subject=window.subject, span=window.seconds, bucket=bucket, entries=entries
        )
        after = case((table.c.bucket == bucket, table.c.entries + entries), else_=entries)
        counted_in = stmt.on_conflict_do_update(
            index_elements=["subject", "span"],
            set_={"bucket": bucket, "entries": after},
            where=after <= window.limit,
        ).returning(table.c.entries)
        if session.execute(counted_in).first() is None:
            counted = session.scalar(
                select(UsageCounter.entries).where(
                    UsageCounter.subject == window.subject,
                    UsageCounter.span == window.seconds,
                    UsageCounter.bucket == bucket,
                )
            )
            room = max(0, window.limit - int(counted or 0))
            raise _OverLimit(window, room, window.ends_in(now))

    def _refuse(
        self, account_id: uuid.UUID, reported_by: str, entries: int, over: _OverLimit
    ) -> NoReturn:
        self._refusals.note((account_id, reported_by, utcnow().date()), 1, entries)
        seconds = max(1, int(over.wait + 0.999))
        subject, span, limit = over.window
        who = "this account" if subject.startswith("account:") else "a key"
        per = "a minute" if span == MINUTE else "a day"
        raise TooManyRequests(
            f"usage report of {entries} entries refused: {who} may store {limit} {per}, and "
            f"{over.room} more fit until that window ends; try again in {seconds} s",
            retry_after=seconds,
        )

    def _write_refusals(self, key: tuple[uuid.UUID, str, date], sums: tuple[int, ...]) -> None:
        account_id, reported_by, day = key
        reports, entries = sums
        now: datetime = utcnow()
        with self.db.write() as session:
            statement = self._insert(UsageRefusal).values(
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


class RefusalRow(BaseModel):
    day: date
    api_key: str
    api_key_name: str | None = None  # None once the key is deleted
    reports: int
    entries: int
    last_at: datetime


def refusals(
    session: Session, *, account_id: uuid.UUID, since: date | None = None, until: date | None = None
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
