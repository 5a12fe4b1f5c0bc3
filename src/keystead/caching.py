"""The process's caches: one primitive for values that never change, one for values that
hold until a moment. Each cache says where it is made what invalidates it.

Neither ever decides access: access, a key's enabled and suspended flags and a
certificate's validity are read on every request (the data plane's lookup), so what is
kept here is what cannot go stale (a signing secret, a key version, a parsed public key)
or what may only be early, never late (the room a key had left in a usage window).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


class Immutable(Generic[K, V]):
    """Values that never change once loaded; nothing invalidates them. Bounded: when full,
    the oldest entry goes first. Hits are one dict read (no lock: a dict read is atomic,
    and values never change); loads and evictions take the lock. A load that raises
    stores nothing."""

    def __init__(self, maxsize: int) -> None:
        self._data: dict[K, V] = {}
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        value = self._data.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        value = load()
        with self._lock:
            self._data[key] = value
            while len(self._data) > self._maxsize:
                del self._data[next(iter(self._data))]
        return value


class Expiring(Generic[K, V]):
    """Values that hold until a moment given with each (on the caller's clock); time alone
    invalidates them. Bounded: when full, expired entries go, then the oldest."""

    def __init__(self, maxsize: int, clock: Callable[[], float]) -> None:
        self._data: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()
        self._maxsize = maxsize
        self._clock = clock

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._data.get(key)
        if found is None or found[0] <= self._clock():
            return None
        return found[1]

    def put(self, key: K, value: V, *, until: float) -> None:
        with self._lock:
            if len(self._data) >= self._maxsize:
                now = self._clock()
                self._data = {k: v for k, v in self._data.items() if v[0] > now}
                while len(self._data) >= self._maxsize:
                    del self._data[next(iter(self._data))]
            self._data[key] = (until, value)
