"""The signing-key cache: TTL, rate-limited refetch on unknown kid, last-good keys."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from keystead.blocking import WouldWait, no_waiting
from keystead.idp import outbound
from keystead.idp.jwks import JwksCache, KeysUnavailable, signing_key

DISCOVERY = "http://idp.test/tenant/.well-known/openid-configuration"
FIRST = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SECOND = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: rsa.RSAPrivateKey, kid: str, **extra: object) -> dict[str, object]:
    entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**entry, "kid": kid, "use": "sig", **extra}


class Provider:
    """A scripted identity provider: its current key set, and a switch to fail."""

    def __init__(self) -> None:
        self.keys = [jwk(FIRST, "k1")]
        self.down = False
        self.key_requests = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503)
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json={"jwks_uri": "http://idp.test/tenant/keys"})
        self.key_requests += 1
        return httpx.Response(200, json={"keys": self.keys})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup() -> tuple[Provider, Clock, JwksCache]:
    provider, clock = Provider(), Clock()
    client = httpx.Client(transport=httpx.MockTransport(provider.handler))
    cache = JwksCache(DISCOVERY, outbound.via_client(client), ttl=3600, cooldown=300, clock=clock)
    return provider, clock, cache


def test_keys_are_fetched_once_per_ttl(setup: tuple[Provider, Clock, JwksCache]) -> None:
    """Many lookups within the TTL cost one fetch; after the TTL, one more."""
    provider, clock, cache = setup
    for _ in range(100):
        assert cache.key_for("k1") is not None
    assert provider.key_requests == 1
    clock.now += 3600
    cache.key_for("k1")
    assert provider.key_requests == 2


def test_unknown_kid_refetches_at_most_once_per_cooldown(
    setup: tuple[Provider, Clock, JwksCache],
) -> None:
    """A flood of made-up kids costs one refetch per cooldown, not one per token."""
    provider, clock, cache = setup
    cache.key_for("k1")
    clock.now += 301
    for i in range(50):
        assert cache.key_for(f"made-up-{i}") is None
    assert provider.key_requests == 2
    assert cache.stats.unknown_kid_refreshes == 1


def test_rotation_is_picked_up_on_the_first_unknown_kid(
    setup: tuple[Provider, Clock, JwksCache],
) -> None:
    """A new signing key works without a restart once the cooldown allows a refetch."""
    provider, clock, cache = setup
    cache.key_for("k1")
    provider.keys = [jwk(SECOND, "k2")]
    clock.now += 301
    assert cache.key_for("k2") is not None


def test_a_failed_refresh_keeps_the_last_good_keys(
    setup: tuple[Provider, Clock, JwksCache],
) -> None:
    """If the provider is down at TTL time, cached keys keep working."""
    provider, clock, cache = setup
    cache.key_for("k1")
    provider.down = True
    clock.now += 3600
    assert cache.key_for("k1") is not None
    assert cache.stats.failures == 1


def test_no_keys_at_all_is_an_error(setup: tuple[Provider, Clock, JwksCache]) -> None:
    """Down from the start: KeysUnavailable, retried only after the cooldown."""
    provider, clock, cache = setup
    provider.down = True
    with pytest.raises(KeysUnavailable):
        cache.key_for("k1")
    with pytest.raises(KeysUnavailable):
        cache.key_for("k1")
    assert cache.stats.failures == 1
    provider.down = False
    clock.now += 301
    assert cache.key_for("k1") is not None


def test_only_rsa_signing_keys_are_kept(setup: tuple[Provider, Clock, JwksCache]) -> None:
    """Encryption keys and other key types are ignored."""
    provider, _, cache = setup
    provider.keys = [jwk(FIRST, "enc", use="enc"), {"kty": "EC", "kid": "ec"}, jwk(SECOND, "sig")]
    assert cache.key_for("sig") is not None
    assert cache.key_for("enc") is None
    assert cache.key_for("ec") is None


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: rsa.generate_private_key(public_exponent=3, key_size=2048), "exponent 3"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=4160), "4160 bits"),
    ],
    ids=["small-exponent", "short", "oversized"],
)
def test_keys_of_unusual_size_or_exponent_are_skipped(make: object, why: str) -> None:
    """Anyone can send tokens naming a published key id: a key with a huge exponent or
    modulus would make each of those verifications many times dearer."""
    odd = make()  # type: ignore[operator]
    assert signing_key(jwk(odd, "odd")) is None, why
    assert signing_key(jwk(FIRST, "fine")) is not None


def test_a_burst_of_first_sign_ins_shares_one_fetch() -> None:
    """Threads arriving while the first fetch runs wait for it instead of failing."""
    import threading
    import time as real_time

    provider = Provider()
    slow = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("openid-configuration"):
            slow.wait(5)
        return provider.handler(request)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    cache = JwksCache(DISCOVERY, outbound.via_client(client), ttl=3600, cooldown=300)
    results: list[object] = []

    def sign_in() -> None:
        try:
            results.append(cache.key_for("k1"))
        except KeysUnavailable as exc:
            results.append(exc)

    threads = [threading.Thread(target=sign_in) for _ in range(8)]
    for thread in threads:
        thread.start()
    real_time.sleep(0.2)  # let every thread reach the cache while the fetch is held
    slow.set()
    for thread in threads:
        thread.join(5)
    assert len(results) == 8
    assert all(isinstance(r, rsa.RSAPublicKey) for r in results), results
    assert provider.key_requests == 1


def test_ttl_refresh_is_not_held_back_by_the_unknown_kid_cooldown() -> None:
    provider, clock = Provider(), Clock()
    client = httpx.Client(transport=httpx.MockTransport(provider.handler))
    cache = JwksCache(DISCOVERY, outbound.via_client(client), ttl=60, cooldown=300, clock=clock)
    cache.key_for("k1")
    provider.keys = [jwk(SECOND, "k2")]
    clock.now += 61
    assert cache.key_for("k2") is not None
    assert provider.key_requests == 2


def test_a_failed_first_fetch_is_retried_after_a_short_wait(
    setup: tuple[Provider, Clock, JwksCache],
) -> None:
    provider, clock, cache = setup
    provider.down = True
    with pytest.raises(KeysUnavailable):
        cache.key_for("k1")
    provider.down = False
    clock.now += 5
    with pytest.raises(KeysUnavailable):
        cache.key_for("k1")
    clock.now += 6
    assert cache.key_for("k1") is not None


def test_on_the_event_loop_a_fetch_is_refused_before_it_starts(
    setup: tuple[Provider, Clock, JwksCache],
) -> None:
    """Under no_waiting (work the executor started on the event loop) a cold or expired
    cache raises WouldWait without fetching or counting an attempt; a warm one answers."""
    provider, clock, cache = setup
    with no_waiting(), pytest.raises(WouldWait):
        cache.key_for("k1")
    assert provider.key_requests == 0
    assert cache.key_for("k1") is not None  # on a thread: fetched at once, no cooldown
    with no_waiting():
        assert cache.key_for("k1") is not None
        clock.now += 3600
        with pytest.raises(WouldWait):
            cache.key_for("k1")
    assert provider.key_requests == 1
