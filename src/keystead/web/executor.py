"""Where a request's work runs: on the event loop or on a thread. The one place that decides.

On a SQLite file a point read is answered in microseconds from local pages, so it runs on
the event loop: a thread hop, and threads contending for the GIL, would cost more than the
statement. A point write runs there too when the write lock is free at that moment (once
held, it is all a SQLite transaction waits for). Whatever would wait there (another writer
holding the lock, an identity provider's keys to fetch) raises WouldWait before doing
anything, and the work is run again on a thread, where it may wait. Work whose cost grows
with the directory or the request (a filter no index answers, a group read with its
members, a large body, a batch of rows) always takes a thread, so the loop, and every
data-plane request with it, keeps its turns. On PostgreSQL every statement waits on the
network: everything takes a thread, except lookups the process usually has kept (the data
plane's, ``storage.driver.KeptReader``), which start on the loop and move to a thread only
when they must ask the database.

Endpoints declare a :class:`Cost`; they never choose for themselves.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from keystead.blocking import WouldWait, no_waiting
from keystead.storage.session import Database

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Cost(enum.Enum):
    READ = "read"  # indexed point reads: constant time
    KEPT = "kept"  # point reads the process usually answers from what it keeps
    WRITE = "write"  # point writes (and their reads): constant time once the lock is held
    GROWS = "grows"  # grows with the data or the body, or is CPU-bound: never on the loop

    # Members are singletons: hashed by identity, in C (Enum's own hash is Python code,
    # paid on every request's lookup of where it runs).
    __hash__ = object.__hash__


class _Where(enum.Enum):
    LOOP = "loop"  # on the event loop
    LOOP_OR_THREAD = "loop or thread"  # on the loop unless it would wait, then on a thread
    THREAD = "thread"


# Where work of each cost runs: (on a SQLite file, on PostgreSQL).
_RULE = {
    Cost.READ: (_Where.LOOP, _Where.THREAD),
    Cost.KEPT: (_Where.LOOP, _Where.LOOP_OR_THREAD),
    Cost.WRITE: (_Where.LOOP_OR_THREAD, _Where.THREAD),
    Cost.GROWS: (_Where.THREAD, _Where.THREAD),
}


class Executor:
    def __init__(self, db: Database) -> None:
        # A SQLite database is local and has one writer; PostgreSQL is across a network.
        column = 0 if db.writes_now else 1
        self._where = {cost: where[column] for cost, where in _RULE.items()}

    async def run(
        self, cost: Cost, work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        where = self._where[cost]
        if where is _Where.LOOP:
            return work(*args, **kwargs)
        if where is _Where.THREAD:
            return await run_in_threadpool(work, *args, **kwargs)
        try:
            with no_waiting():
                return work(*args, **kwargs)
        except WouldWait:
            # Nothing was done: the work would have waited. Wait on a thread.
            return await run_in_threadpool(work, *args, **kwargs)
