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
import functools
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


class Executor:
    def __init__(self, db: Database) -> None:
        # A SQLite database is local and has one writer; PostgreSQL is across a network.
        self.on_loop = db.writes_now

    def inline(self, cost: Cost) -> bool:
        """Whether work of this cost may start on the event loop."""
        if cost is Cost.KEPT:
            return True
        return self.on_loop and cost is not Cost.GROWS

    async def run(
        self, cost: Cost, work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        if not self.inline(cost):
            return await run_in_threadpool(work, *args, **kwargs)
        if self.on_loop and cost in (Cost.READ, Cost.KEPT):
            return work(*args, **kwargs)
        try:
            with no_waiting():
                return work(*args, **kwargs)
        except WouldWait:
            # Nothing was done: the work would have waited. Wait on a thread.
            return await run_in_threadpool(functools.partial(work, *args, **kwargs))
