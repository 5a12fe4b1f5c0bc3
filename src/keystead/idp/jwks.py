"""Signing keys of one identity provider, from its OIDC discovery document's ``jwks_uri``.

Cached for ``ttl`` seconds; a token with an unknown ``kid`` triggers one refetch, at most
once per ``cooldown`` (so a flood of made-up key ids cannot hammer the provider); a failed
refresh keeps the last good keys and is retried after ``retry_after_failure``. Only one
thread fetches at a time; the others wait for its result. The HTTP client is
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
    # After a failed fetch, the next attempt waits this long (keeps an outage from turning
    # every sign-in into a request to the provider).
    retry_after_failure: float = 10.0
    clock: Callable[[], float] = time.monotonic
    stats: JwksStats = field(default_factory=JwksStats)
    _keys: dict[str, RSAPublicKey] = field(default_factory=dict)
    _fetched_at: float | None = None
    _last_attempt: float | None = None
    _last_failure: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_for(self, kid: str) -> RSAPublicKey | None:
        now = self.clock()
        if self._fetched_at is None or now - self._fetched_at >= self.ttl:
            self._refresh(now, reason="ttl", rate_limited=False)
        if not self._keys:
            raise KeysUnavailable("the identity provider's signing keys could not be fetched")
        key = self._keys.get(kid)
        if key is None and self._refresh(now, reason="unknown kid", rate_limited=True):
            key = self._keys.get(kid)
        return key

    def _refresh(self, requested_at: float, *, reason: str, rate_limited: bool) -> bool:
        """Fetch unless a fetch finished after ``requested_at`` (then use it) or the limits
        forbid one; True when the keys are at least as new as the request."""
        # Waiting for the lock is waiting for an in-flight fetch: a burst of first sign-ins
        # shares one fetch instead of failing while it runs.
        with self._lock:
            if self._fetched_at is not None and self._fetched_at >= requested_at:
                return True
            now = self.clock()
            if rate_limited and self._within(self._last_attempt, now, self.cooldown):
                return False
            if self._within(self._last_failure, now, min(self.retry_after_failure, self.cooldown)):
                return False
            self._last_attempt = now
            try:
                keys = self._fetch()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                self.stats.failures += 1
                self._last_failure = now
                log.warning(
                    "jwks_fetch_failed", url=self.discovery_url, reason=reason, error=str(exc)
                )
                return False
            self.stats.fetches += 1
            if reason == "unknown kid":
                self.stats.unknown_kid_refreshes += 1
            self._keys, self._fetched_at, self._last_failure = keys, self.clock(), None
            return True

    @staticmethod
    def _within(moment: float | None, now: float, window: float) -> bool:
        return moment is not None and now - moment < window

    def _fetch(self) -> dict[str, RSAPublicKey]:
        discovery = self.http.get(self.discovery_url)
        discovery.raise_for_status()
        jwks_uri = discovery.json()["jwks_uri"]
        response = self.http.get(jwks_uri)
        response.raise_for_status()
        keys: dict[str, RSAPublicKey] = {}
        for entry in response.json()["keys"]:
            public = _signing_key(entry)
            if public is not None:
                keys[str(entry["kid"])] = public
        return keys


def _signing_key(entry: object) -> RSAPublicKey | None:
    """An RSA signature key from one JWKS entry; anything else (or malformed) is skipped."""
    if not isinstance(entry, dict) or entry.get("kty") != "RSA":
        return None
    if entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid"), str):
        return None
    try:
        # Only n and e: an embedded certificate chain (x5c) is never trusted as such.
        public = jwt.algorithms.RSAAlgorithm.from_jwk(
            json.dumps({"kty": "RSA", "n": entry.get("n"), "e": entry.get("e")})
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return public if isinstance(public, RSAPublicKey) else None
