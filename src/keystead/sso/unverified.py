"""Sign-in refusals of tokens whose signature never verified, counted instead of logged.

Anyone can post garbage to an account's sign-in endpoint: a provisioning-log row for each
would let an anonymous caller write to the database as fast as it can send. The log keeps
the refusals of tokens the identity provider really signed (expired, wrong audience,
unknown user…); the others only add to a per-account count, with the time of the last
one, which the admin sees beside the log (``GET /idp/status``). The count is a
``Tally``: written at most once per ``flush_seconds`` per account and process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from sqlalchemy import update

from keystead.storage.models import IdpSettings
from keystead.storage.session import Database
from keystead.storage.types import utcnow
from keystead.tally import Tally


class UnverifiedRefusals:
    def __init__(
        self,
        db: Database,
        *,
        flush_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self._tally: Tally[uuid.UUID] = Tally(self._write, every=flush_seconds, clock=clock)

    def note(self, account_id: uuid.UUID) -> None:
        """One more refusal for ``account_id``."""
        self._tally.note(account_id, 1)

    def flush(self) -> None:
        self._tally.flush()

    def _write(self, account_id: uuid.UUID, sums: tuple[int, ...]) -> None:
        with self.db.write() as session:
            session.execute(
                update(IdpSettings)
                .where(IdpSettings.account_id == account_id)
                .values(
                    unverified_refusals=IdpSettings.unverified_refusals + sums[0],
                    unverified_refusal_at=utcnow(),
                )
            )
