"""How many failed console sign-ins are tolerated, and how long to wait after that (pure).

Failures are counted per email address and per client address, each in a window that
starts at its first failure. Past a number of free attempts every further failure locks
that email (or address) for a delay that doubles with each failure, up to a cap. The state
lives in the database (``sign_in_failures``) so that every node of an installation sees
the same counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

Scope = Literal["email", "address"]


@dataclass(frozen=True)
class Limit:
    free_attempts: int
    window: timedelta
    first_delay: timedelta
    max_delay: timedelta


LIMITS: dict[Scope, Limit] = {
    # One person mistyping a password a few times must never wait; a guesser must.
    "email": Limit(5, timedelta(minutes=15), timedelta(seconds=30), timedelta(minutes=15)),
    # Several admins may sign in from one office address.
    "address": Limit(20, timedelta(minutes=15), timedelta(seconds=30), timedelta(minutes=15)),
}


@dataclass(frozen=True)
class Failures:
    """What is stored for one email or address."""

    count: int
    window_started_at: datetime
    locked_until: datetime | None


def wait_seconds(state: Failures | None, now: datetime) -> int:
    """Whole seconds until a sign-in may be tried again (0: now)."""
    if state is None or state.locked_until is None or state.locked_until <= now:
        return 0
    return math.ceil((state.locked_until - now).total_seconds())


def after_failure(state: Failures | None, now: datetime, limit: Limit) -> Failures:
    if state is None or now - state.window_started_at > limit.window:
        state = Failures(0, now, None)
    count = state.count + 1
    over = count - limit.free_attempts
    if over <= 0:
        return replace(state, count=count)
    delay = min(limit.first_delay * (2 ** min(over - 1, 16)), limit.max_delay)
    return Failures(count, state.window_started_at, now + delay)


def after_success(state: Failures | None, limit: Limit) -> Failures | None:
    """An attempt counted in advance (see ``accounts.signin``) turned out right: take it
    back, and the lock it may have started with it."""
    if state is None or state.count <= 1:
        return None
    count = state.count - 1
    locked_until = state.locked_until if count > limit.free_attempts else None
    return Failures(count, state.window_started_at, locked_until)


def in_words(seconds: int) -> str:
    """'45 seconds', '1 minute', '2 minutes 30 seconds'."""
    minutes, rest = divmod(max(seconds, 1), 60)
    counts = ((minutes, "minute"), (rest, "second"))
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in counts if n)
