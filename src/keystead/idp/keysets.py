"""One signing-key cache per (account, discovery URL), shared by every sign-in of a
process. Changing an account's discovery URL starts a new cache; nothing else is trusted."""

from __future__ import annotations

import threading
import uuid

import httpx

from keystead.idp.jwks import JwksCache


class KeySets:
    def __init__(self, http: httpx.Client, *, ttl: float, cooldown: float) -> None:
        self.http = http
        self.ttl = ttl
        self.cooldown = cooldown
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
                    cache = JwksCache(
                        discovery_url, self.http, ttl=self.ttl, cooldown=self.cooldown
                    )
                    self._caches[key] = cache
        return cache

    def close(self) -> None:
        self.http.close()
