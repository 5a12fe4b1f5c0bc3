"""Text no field accepts, found in the raw request before any handler parses it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
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
