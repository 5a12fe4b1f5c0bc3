"""One signing-key cache per (account, discovery URL), shared by every sign-in of a
process. Changing an account's discovery URL starts a new cache; nothing else is trusted."""

from __future__ import annotations

import functools
import threading
import uuid

from keystead.idp.jwks import JwksCache, JwksStats
from keystead.idp.outbound import Fetch


class KeySets:
    def __init__(self, fetch: Fetch, *, ttl: float, cooldown: float, wait: float = 5.0) -> None:
        # Every cache counts into one JwksStats: the process's totals outlive a cache
        # replaced by a new discovery URL.
        self.stats = JwksStats()
        self._new = functools.partial(
            JwksCache, fetch=fetch, ttl=ttl, cooldown=cooldown, wait=wait, stats=self.stats
        )
        self._caches: dict[tuple[uuid.UUID, str], JwksCache] = {}
        self._lock = threading.Lock()

    def for_account(self, account_id: uuid.UUID, discovery_url: str) -> JwksCache:
        key = (account_id, discovery_url)
        cache = self._caches.get(key)
        if cache is None:
            with self._lock:
                cache = self._caches.get(key)
                if cache is None:
                    for old in [k for k in self._caches if k[0] == account_id]:
                        del self._caches[old]
                    cache = self._caches[key] = self._new(discovery_url)
        return cache
