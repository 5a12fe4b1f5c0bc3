"""A small thread-safe bounded cache for values that never change once written (signing
secrets, dataset key versions, dataset definitions, wrapped keys). Caching them is safe:
access and the key's enabled flag are still read from the database on every request."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


class ImmutableCache(Generic[K, V]):
    """Hits are one dict read (no lock: a dict read is atomic, and values never change);
    loads and evictions take the lock. When full, the oldest entry goes first."""

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
