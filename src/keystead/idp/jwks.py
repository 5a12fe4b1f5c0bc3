"""Signing keys of one identity provider, from its OIDC discovery document's ``jwks_uri``.

Cached for ``ttl`` seconds; a token with an unknown ``kid`` triggers one refetch, at most
once per ``cooldown`` (so a flood of made-up key ids cannot hammer the provider); a failed
refresh keeps the last good keys and is retried after ``retry_after_failure``. Only one
thread fetches at a time. Another thread that needs keys waits for that fetch at most until
its deadline (a burst of first sign-ins shares one fetch); when the cache has keys it uses
them meanwhile, so only a cold cache ever waits. Fetches go through the ``Fetch`` passed in
(``idp.outbound``: the outbound policy and one deadline per fetch; tests script a provider
with ``outbound.via_client`` over ``httpx.MockTransport``).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import RSAKey

from keystead.blocking import WouldWait, may_wait
from keystead.idp.outbound import Fetch, FetchFailed
from keystead.logs import get_logger
from keystead.web import jsonbody

log = get_logger("keystead.idp")
Reason = Literal["ttl", "unknown kid"]


class KeysUnavailable(Exception):
    """The provider's keys could not be fetched and none are cached."""


@dataclass
class JwksStats:
    """Key-set fetches made, failed, and made for an unknown ``kid``: one cache's, or the
    process's when caches share it (``idp.keysets``); read by the metrics."""

    fetches: int = 0
    failures: int = 0
    unknown_kid_refreshes: int = 0


@dataclass
class JwksCache:
    discovery_url: str
    fetch: Fetch
    ttl: float = 3600.0
    cooldown: float = 300.0
    # After a failed fetch, the next attempt waits this long (keeps an outage from turning
    # every sign-in into a request to the provider).
    retry_after_failure: float = 10.0
    # How long a caller with no cached keys waits for another caller's fetch: that fetch's
    # own deadline (each fetch is bounded, so waiting longer would gain nothing).
    wait: float = 5.0
    max_waiting: int = 8
    clock: Callable[[], float] = time.monotonic
    stats: JwksStats = field(default_factory=JwksStats)
    _keys: dict[str, RSAPublicKey] = field(default_factory=dict)
    _fetched_at: float | None = None
    _last_attempt: float | None = None
    _last_failure: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiting: int = 0
    _attempts: int = 0
    _waiting_lock: threading.Lock = field(default_factory=threading.Lock)

    def key_for(self, kid: str) -> RSAPublicKey | None:
        now = self.clock()
        if self._fetched_at is None or now - self._fetched_at >= self.ttl:
            self._refresh(now, reason="ttl")
        if not self._keys:
            raise KeysUnavailable("the identity provider's signing keys could not be fetched")
        key = self._keys.get(kid)
        if key is None and self._refresh(now, reason="unknown kid"):
            key = self._keys.get(kid)
        return key

    def _refresh(self, requested_at: float, *, reason: Reason) -> bool:
        """Fetch unless a fetch finished after ``requested_at`` (then use it) or the limits
        forbid one; True when the keys are at least as new as the request."""
        seen = self._attempts
        if not self._enter(wait=not self._keys or reason == "unknown kid"):
            return False
        try:
            if self._attempts != seen:
                # Waited for another caller's fetch: its outcome is this caller's too (a
                # failed one is not tried again at once by every waiter in turn).
                return self._fetched_at is not None and self._fetched_at >= requested_at
            return self._refresh_locked(requested_at, reason=reason)
        finally:
            self._lock.release()

    def _enter(self, *, wait: bool) -> bool:
        """Take the fetch lock. An in-flight fetch holds it: a caller that can do without
        (cached keys, only their age is due) goes on at once; one that needs the fetch's
        result waits at most until that fetch's deadline, and only if few others already
        wait (a flood of sign-ins cannot tie up the server's threads)."""
        if self._lock.acquire(blocking=False):
            return True
        if not wait:
            return False
        if not may_wait():  # on the event loop: wait for that fetch on a thread
            raise WouldWait("another caller is fetching the identity provider's keys")
        with self._waiting_lock:
            if self._waiting >= self.max_waiting:
                return False
            self._waiting += 1
        try:
            return self._lock.acquire(timeout=self.wait)
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    def _refresh_locked(self, requested_at: float, *, reason: Reason) -> bool:
        if self._fetched_at is not None and self._fetched_at >= requested_at:
            return True
        now = self.clock()
        if reason == "unknown kid" and self._within(self._last_attempt, now, self.cooldown):
            return False
        if self._within(self._last_failure, now, min(self.retry_after_failure, self.cooldown)):
            return False
        if not may_wait():  # on the event loop: fetch on a thread
            raise WouldWait("the identity provider's keys must be fetched")
        self._last_attempt = now
        self._attempts += 1
        try:
            keys = self._fetch()
        except Exception as exc:  # whatever an identity provider answers is a failed fetch
            self.stats.failures += 1
            self._last_failure = self.clock()  # the wait before a retry starts when it failed
            log.warning(
                "jwks_fetch_failed",
                url=self.discovery_url,
                reason=reason,
                error=exc.message if isinstance(exc, FetchFailed) else type(exc).__name__,
            )
            return False
        self.stats.fetches += 1
        if reason == "unknown kid":
            self.stats.unknown_kid_refreshes += 1
        self._keys, self._fetched_at, self._last_failure = keys, self.clock(), None
        return True

    def _json(self, url: str) -> Any:
        fetched = self.fetch(url)
        if fetched.status != 200:
            raise FetchFailed("unreachable", f"it answered HTTP {fetched.status}")
        return jsonbody.loads(fetched.body, what="the answer")

    @staticmethod
    def _within(moment: float | None, now: float, window: float) -> bool:
        return moment is not None and now - moment < window

    def _fetch(self) -> dict[str, RSAPublicKey]:
        jwks_uri = self._json(self.discovery_url)["jwks_uri"]
        if not isinstance(jwks_uri, str):
            raise ValueError("jwks_uri is not a string")
        keys: dict[str, RSAPublicKey] = {}
        for entry in self._json(jwks_uri)["keys"]:
            public = signing_key(entry)
            if public is not None:
                keys[str(entry["kid"])] = public
        return keys


MIN_RSA_BITS, MAX_RSA_BITS, RSA_EXPONENT = 2048, 4096, 65537


def _meant_for_rs256(entry: object) -> TypeGuard[dict[str, Any]]:
    if not isinstance(entry, dict) or entry.get("kty") != "RSA":
        return False
    if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
        return False
    ops = entry.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return False
    return isinstance(entry.get("kid"), str) and bool(entry["kid"])


def signing_key(entry: object) -> RSAPublicKey | None:
    """The RS256 signature key one key-set entry holds, or None to skip it: not RSA, meant
    for something else, malformed, or a size or exponent outside what identity providers
    use (2048-4096 bits, e = 65537; a huge exponent makes every verification dearer, and
    anyone can send tokens naming its key id)."""
    if not _meant_for_rs256(entry):
        return None
    n, e = entry.get("n"), entry.get("e")
    if not isinstance(n, str) or not isinstance(e, str):
        return None
    try:
        # Only n and e: an embedded certificate chain (x5c) is never trusted as such. A
        # short key is refused below, without joserfc's warning about it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            public = RSAKey.import_key({"kty": "RSA", "n": n, "e": e}).raw_value
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(public, RSAPublicKey):
        return None
    sized = MIN_RSA_BITS <= public.key_size <= MAX_RSA_BITS
    return public if sized and public.public_numbers().e == RSA_EXPONENT else None
