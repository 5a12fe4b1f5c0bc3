"""The cache primitive: immutable values are loaded once and bounded; expiring values hold
until their moment and no longer."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keystead.caching import Expiring, Immutable


def test_an_immutable_value_is_loaded_once_and_the_oldest_goes_when_full() -> None:
    cache: Immutable[str, int] = Immutable(2)
    loads: list[str] = []

    def loader(key: str) -> Callable[[], int]:
        def load() -> int:
            loads.append(key)
            return len(key)

        return load

    for key in ("a", "bb", "a", "ccc", "a"):
        assert cache.get_or_load(key, loader(key)) == len(key)
    assert loads == ["a", "bb", "ccc", "a"]  # "a" went when "ccc" came (oldest first)


def test_a_load_that_raises_keeps_nothing() -> None:
    cache: Immutable[str, int] = Immutable(4)

    def fail() -> int:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        cache.get_or_load("x", fail)
    assert cache.get_or_load("x", lambda: 7) == 7


def test_an_expiring_value_holds_until_its_moment() -> None:
    now = [100.0]
    cache: Expiring[str, int] = Expiring(10, lambda: now[0])
    cache.put("room", 5, until=160.0)
    assert cache.get("room") == 5
    now[0] = 159.9
    assert cache.get("room") == 5
    now[0] = 160.0
    assert cache.get("room") is None
    assert cache.get("never") is None


def test_a_full_expiring_cache_drops_what_expired_first() -> None:
    now = [0.0]
    cache: Expiring[str, int] = Expiring(2, lambda: now[0])
    cache.put("old", 1, until=10.0)
    cache.put("lasting", 2, until=100.0)
    now[0] = 50.0
    cache.put("new", 3, until=100.0)  # full: "old" has expired and goes
    assert (cache.get("lasting"), cache.get("new")) == (2, 3)
