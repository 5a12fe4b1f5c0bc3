"""The process's caches: one primitive for values that never change, one for values that
hold until a moment. Each cache says where it is made what invalidates it.

Neither ever decides access: access, a key's enabled and suspended flags and a
certificate's validity are read on every request (the data plane's lookup), so what is
kept here is what cannot go stale (a signing secret, a key version, a parsed public key)
or what may only be early, never late (the room a key had left in a usage window).

Each cache counts its hits and misses in plain attributes (an increment on the hot path,
nothing more; under threads an increment can rarely be lost, which a rate does not notice)
and is listed in :func:`every_cache` under a name, by default the module that made it, for
the metrics to read when they are scraped.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


class _Counted:
    """A bounded cache's entries, its name and its counts, read by the metrics at scrape time."""

    kind = ""
    _data: dict[Any, Any]

    def __init__(self, maxsize: int, name: str | None) -> None:
        self.name = name or _maker()
        self.hits = 0
        self.misses = 0
        self._data = {}
        self._lock = threading.Lock()
        self._maxsize = maxsize
        with _registry_lock:
            _registry.add(self)

    def size(self) -> int:
        """How many entries it holds now."""
        return len(self._data)


_registry: weakref.WeakSet[_Counted] = weakref.WeakSet()
_registry_lock = threading.Lock()


def _maker() -> str:
    """The module that constructs the cache (the caller of the cache's constructor)."""
    module = str(sys._getframe(3).f_globals.get("__name__", "unknown"))
    return module.removeprefix("keystead.")


def every_cache() -> list[_Counted]:
    """Every cache of the process that is still alive."""
    with _registry_lock:
        return list(_registry)


class Immutable(_Counted, Generic[K, V]):
    """Values that never change once loaded; nothing invalidates them. Bounded: when full,
    the oldest entry goes first. Hits are one dict read (no lock: a dict read is atomic,
    and values never change); loads and evictions take the lock. A load that raises
    stores nothing."""

    kind = "immutable"

    _data: dict[K, V]

    def __init__(self, maxsize: int, *, name: str | None = None) -> None:
        super().__init__(maxsize, name)

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        value = self._data.get(key, _MISSING)
        if value is not _MISSING:
            self.hits += 1
            return value  # type: ignore[return-value]
        self.misses += 1
        value = load()
        with self._lock:
            self._data[key] = value
            while len(self._data) > self._maxsize:
                del self._data[next(iter(self._data))]
        return value


class Expiring(_Counted, Generic[K, V]):
    """Values that hold until a moment given with each (on the caller's clock); time alone
    invalidates them. Bounded: when full, expired entries go, then the oldest."""

    kind = "expiring"

    _data: dict[K, tuple[float, V]]

    def __init__(
        self, maxsize: int, clock: Callable[[], float], *, name: str | None = None
    ) -> None:
        super().__init__(maxsize, name)
        self._clock = clock

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._data.get(key)
        if found is None or found[0] <= self._clock():
            self.misses += 1
            return None
        self.hits += 1
        return found[1]

    def put(self, key: K, value: V, *, until: float) -> None:
        with self._lock:
            if len(self._data) >= self._maxsize:
                now = self._clock()
                self._data = {k: v for k, v in self._data.items() if v[0] > now}
                while len(self._data) >= self._maxsize:
                    del self._data[next(iter(self._data))]
            self._data[key] = (until, value)
