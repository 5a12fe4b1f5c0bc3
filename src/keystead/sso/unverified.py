"""Sign-in refusals of tokens whose signature never verified, counted instead of logged.

Anyone can post garbage to an account's sign-in endpoint: a provisioning-log row for each
would let an anonymous caller write to the database as fast as it can send. The log keeps
the refusals of tokens the identity provider really signed (expired, wrong audience,
unknown user…); the others only add to a per-account count, with the time of the last
one, which the admin sees beside the log (``GET /idp/status``).

Counts gather in memory and reach the database at most once per ``flush_seconds`` per
account and process, in one UPDATE. A process that stops loses at most that many seconds'
worth of a count, which is only ever shown as a number.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import update

from keystead.storage.models import IdpSettings
from keystead.storage.session import Database
from keystead.storage.types import utcnow


class UnverifiedRefusals:
    def __init__(
        self,
        db: Database,
        *,
        flush_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self.clock = clock
        self._pending: dict[uuid.UUID, int] = {}
        self._flushed_at: dict[uuid.UUID, float] = {}
        self._lock = threading.Lock()

    def note(self, account_id: uuid.UUID) -> None:
        """One more refusal for ``account_id``; written now if the last write is old."""
        now = self.clock()
        with self._lock:
            self._pending[account_id] = self._pending.get(account_id, 0) + 1
            last = self._flushed_at.get(account_id)
            if last is not None and now - last < self.flush_seconds:
                return
            count = self._pending.pop(account_id)
            self._flushed_at[account_id] = now
        self._write(account_id, count, utcnow())

    def flush(self) -> None:
        """Write every pending count (at shutdown, and in tests)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for account_id, count in pending.items():
            self._write(account_id, count, utcnow())

    def _write(self, account_id: uuid.UUID, count: int, at: datetime) -> None:
        with self.db.write() as session:
            session.execute(
                update(IdpSettings)
                .where(IdpSettings.account_id == account_id)
                .values(
                    unverified_refusals=IdpSettings.unverified_refusals + count,
                    unverified_refusal_at=at,
                )
            )
