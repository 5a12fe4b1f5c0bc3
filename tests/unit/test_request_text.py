"""Text no field accepts, found in the raw request before any handler parses it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keystead.web.middleware import has_lone_surrogate


@pytest.mark.parametrize(
    "body",
    [
        rb'{"name": "\ud800"}',
        rb'{"name": "\uDFFF"}',
        rb'["a\udc00b"]',
        rb'"\ud83d"',  # a high half at the very end
        rb'"\ud83d\u0041"',  # a high half followed by another escape
        rb'"\ud83dx\ude00"',  # the halves apart
        rb'"\ude00\ud83d"',  # the halves the wrong way round
        rb'"\\\ud800"',  # an escaped backslash, then a real escape
        rb'"\ud800\\\udc00"',  # two halves with an escaped backslash between them
        rb'"\ud800\\\\\udc00"',  # ... and with two
    ],
)
def test_lone_surrogate_escapes_are_found(body: bytes) -> None:
    assert has_lone_surrogate(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        rb'{"name": "plain"}',
        rb'"\ud83d\ude00"',  # a pair: the emoji
        rb'"\uD83D\uDE00 and \u00e9"',
        rb'"\\ud800"',  # an escaped backslash followed by the text ud800
        '"\U0001f600"'.encode(),  # raw UTF-8 holds no surrogates
    ],
)
def test_text_and_surrogate_pairs_are_not(body: bytes) -> None:
    assert not has_lone_surrogate(body)


@given(st.recursive(st.text(), lambda inner: st.lists(inner, max_size=3), max_leaves=5))
def test_json_of_real_text_never_has_one(value: object) -> None:
    """What a JSON encoder writes for real text (ASCII-escaped or not) passes."""
    assert not has_lone_surrogate(json.dumps(value).encode())
    assert not has_lone_surrogate(json.dumps(value, ensure_ascii=False).encode())


@given(st.text(), st.integers(0xD800, 0xDFFF), st.text())
def test_json_of_text_with_a_lone_surrogate_always_has_one(
    before: str, surrogate: int, after: str
) -> None:
    assert has_lone_surrogate(json.dumps({"name": before + chr(surrogate) + after}).encode())


# Code units that make the tricky bodies: both halves of a pair, backslashes and the
# characters of an escape's own spelling (so that `\\ud800` text appears too).
_UNITS = st.sampled_from(["\ud83d", "\ude00", "\udbff", "\udc00", "\\", "u", "d", "8", "c", "0"])


@settings(max_examples=1000)
@given(st.lists(st.one_of(_UNITS, st.characters()), max_size=12))
def test_finds_exactly_the_halves_a_json_parser_would_keep(units: list[str]) -> None:
    text = "".join(units)
    body = json.dumps({"name": text}).encode()  # every surrogate as a \u escape
    parsed = json.loads(body)["name"]  # adjacent halves become one character
    assert has_lone_surrogate(body) == any(0xD800 <= ord(c) <= 0xDFFF for c in parsed)


def test_a_body_of_many_escapes_is_judged_whole() -> None:
    """The cost no longer depends on Python steps per escape (a megabyte of them came in
    before any authentication); the answer for such bodies is still exact."""
    pairs = rb"\ud83d\ude00" * 80_000
    assert not has_lone_surrogate(b'{"a": "' + pairs + b'"}')
    assert has_lone_surrogate(b'{"a": "' + pairs + rb"\ud83d" + pairs + b'"}')
    assert not has_lone_surrogate(b'{"a": "' + rb"\\ud83d" * 80_000 + b'"}')
