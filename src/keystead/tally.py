"""Counts gathered in memory and written in batches.

Some events only ever matter as a number (garbage sign-in tokens, usage reports refused
over a key's limit) and arrive as fast as an anonymous or misbehaving caller sends them.
Writing a row for each would let that caller drive the database; a ``Tally`` adds them up
per key and hands the sums to its writer at most once per ``every`` seconds per key
(and all of them at ``flush``). A process that stops loses at most that much of a count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from keystead.blocking import WouldWait
from keystead.errors import KeysteadError
from keystead.logs import get_logger

log = get_logger("keystead.tally")
K = TypeVar("K", bound=Hashable)


class Tally(Generic[K]):
    def __init__(
        self,
        write: Callable[[K, tuple[int, ...]], None],
        *,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write, self.every, self.clock = write, every, clock
        self._pending: dict[K, tuple[int, ...]] = {}
        self._written_at: dict[K, float] = {}
        self._lock = threading.Lock()

    def note(self, key: K, *amounts: int) -> None:
        """Add ``amounts`` to ``key``'s sums; written now if ``key``'s last write is old."""
        now = self.clock()
        with self._lock:
            before = self._pending.get(key, (0,) * len(amounts))
            self._pending[key] = tuple(a + b for a, b in zip(before, amounts, strict=True))
            last = self._written_at.get(key)
            if last is not None and now - last < self.every:
                return
            sums = self._pending.pop(key)
            self._written_at[key] = now
            if len(self._written_at) > 100_000:  # keys seen once, long ago
                self._written_at = {
                    k: t for k, t in self._written_at.items() if now - t < self.every
                }
        try:
            self.write(key, sums)
        except BaseException as exc:
            # Not written: the sums wait for the next write, due at once. A write that
            # would wait did nothing, and its caller runs again on a thread, noting these
            # amounts again: only what was waiting before them is kept.
            self._restore(key, before if isinstance(exc, WouldWait) else sums, last)
            raise

    def _restore(self, key: K, sums: tuple[int, ...], last: float | None) -> None:
        with self._lock:
            waiting = self._pending.get(key)
            if waiting is not None:  # noted meanwhile
                sums = tuple(a + b for a, b in zip(sums, waiting, strict=True))
            if any(sums):
                self._pending[key] = sums
            if last is None:
                self._written_at.pop(key, None)
            else:
                self._written_at[key] = last

    def flush(self) -> None:
        """Write every pending sum (at shutdown, and in tests)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for key, sums in pending.items():
            # A refusal (the account was deleted meanwhile, so its counts went with it) is
            # said in the log and does not keep the other keys' sums from the database.
            try:
                self.write(key, sums)
            except KeysteadError as exc:
                log.warning("count_not_written", reason=exc.message)
