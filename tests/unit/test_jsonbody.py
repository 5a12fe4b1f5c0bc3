"""What a JSON request body of the SSO exchange and the data plane must be: UTF-8 JSON text
(RFC 8259) that Python's parser can read and whose strings UTF-8 can hold."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from keystead.errors import BadRequest
from keystead.web import jsonbody


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'{"uses": 1}', {"uses": 1}),
        (b'\xef\xbb\xbf{"uses": 1}', {"uses": 1}),  # a byte order mark, tolerated
        (b'"\\ud83d\\udd11"', "\U0001f511"),  # a surrogate pair is one character
        (b'"\\\\ud800"', "\\ud800"),  # an escaped backslash, then text
        ('"caf\u00e9"'.encode(), "caf\u00e9"),
        (b"[" * 3 + b"]" * 3, [[[]]]),
    ],
    ids=["object", "bom", "surrogate pair", "backslash u text", "utf-8", "nested"],
)
def test_json_text_is_read(body: bytes, value: Any) -> None:
    assert jsonbody.loads(body) == value


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "not valid JSON"),
        (b"\xff", "not UTF-8"),
        (b'"\xed\xa0\x80"', "not UTF-8"),  # a surrogate encoded as UTF-8
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b'"\\ud800"', "lone surrogate"),
        (b'{"a": ["\\udfff"]}', "lone surrogate"),
        (b'{"\\ud800": 1}', "lone surrogate"),
        (b"[NaN]", "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b"[" * 5000 + b"]" * 5000, "too deeply"),
        (b"[" * 65 + b"]" * 65, "more than 64 levels deep"),
        (b'{"a": ' * 65 + b"1" + b"}" * 65, "more than 64 levels deep"),
    ],
)
def test_anything_else_is_a_bad_request_saying_why(body: bytes, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        jsonbody.loads(body)


def test_sixty_four_levels_are_read() -> None:
    assert jsonbody.loads(b"[" * 64 + b"]" * 64) is not None
    assert not jsonbody.nesting_exceeds({"a": [[1]]}, 3)
    assert jsonbody.nesting_exceeds({"a": [[1]]}, 2)


def test_a_number_longer_than_python_converts_is_a_bad_request_saying_so() -> None:
    """Python will not turn more than sys.get_int_max_str_digits() digits into an int; its
    message advised raising that limit, which is no advice for a client."""
    limit = sys.get_int_max_str_digits()
    for body in (b"9" * (limit + 1), b'{"a": [-' + b"1" * (limit + 1) + b"]}"):
        with pytest.raises(BadRequest) as raised:
            jsonbody.loads(body)
        assert raised.value.message == f"request body holds a number with more than {limit} digits"
    with pytest.raises(BadRequest, match=r"^the answer holds a number with more than"):
        jsonbody.loads(b"9" * (limit + 1), what="the answer")
    assert jsonbody.loads(b"9" * limit) == int("9" * limit)
    assert jsonbody.loads(b"0." + b"9" * (limit + 1)) == 1.0  # a fraction has no such limit
