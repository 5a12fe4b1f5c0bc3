"""Signing keys of one identity provider, from its OIDC discovery document's ``jwks_uri``.

Cached for ``ttl`` seconds; a token with an unknown ``kid`` triggers one refetch, at most
once per ``cooldown`` (so a flood of made-up key ids cannot hammer the provider); a failed
refresh keeps the last good keys. Only one thread fetches at a time. The HTTP client is
passed in, so tests use ``httpx.MockTransport`` and production a real client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from keystead.logs import get_logger

log = get_logger("keystead.idp")


class KeysUnavailable(Exception):
    """The provider's keys could not be fetched and none are cached."""


@dataclass
class JwksStats:
    fetches: int = 0
    failures: int = 0
    unknown_kid_refreshes: int = 0


@dataclass
class JwksCache:
    discovery_url: str
    http: httpx.Client
    ttl: float = 3600.0
    cooldown: float = 300.0
    clock: Callable[[], float] = time.monotonic
    stats: JwksStats = field(default_factory=JwksStats)
    _keys: dict[str, RSAPublicKey] = field(default_factory=dict)
    _fetched_at: float | None = None
    _last_attempt: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_for(self, kid: str) -> RSAPublicKey | None:
        now = self.clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self.ttl
        if stale and self._may_refetch(now):
            self._refresh(now, reason="ttl")
        if not self._keys:
            raise KeysUnavailable("the identity provider's signing keys could not be fetched")
        key = self._keys.get(kid)
        if key is None and self._may_refetch(now):
            self.stats.unknown_kid_refreshes += 1
            self._refresh(now, reason="unknown kid")
            key = self._keys.get(kid)
        return key

    def _may_refetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self.cooldown

    def _refresh(self, now: float, *, reason: str) -> None:
        with self._lock:
            # Another thread may have refreshed while this one waited for the lock.
            if self._last_attempt is not None and self._last_attempt >= now and self._keys:
                return
            self._last_attempt = now
            try:
                keys = self._fetch()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                self.stats.failures += 1
                log.warning(
                    "jwks_fetch_failed", url=self.discovery_url, reason=reason, error=str(exc)
                )
                if not self._keys:
                    raise KeysUnavailable(f"cannot fetch signing keys: {exc}") from exc
                return
            self.stats.fetches += 1
            self._keys, self._fetched_at = keys, now

    def _fetch(self) -> dict[str, RSAPublicKey]:
        discovery = self.http.get(self.discovery_url)
        discovery.raise_for_status()
        jwks_uri = discovery.json()["jwks_uri"]
        response = self.http.get(jwks_uri)
        response.raise_for_status()
        keys: dict[str, RSAPublicKey] = {}
        for entry in response.json()["keys"]:
            if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" or "kid" not in entry:
                continue
            # Only n and e: an embedded certificate chain (x5c) is never trusted as such.
            public = jwt.algorithms.RSAAlgorithm.from_jwk(
                json.dumps({"kty": "RSA", "n": entry["n"], "e": entry["e"]})
            )
            if isinstance(public, RSAPublicKey):
                keys[str(entry["kid"])] = public
        return keys
