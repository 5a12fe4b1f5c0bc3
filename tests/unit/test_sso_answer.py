"""The SSO exchange's answers are written by hand from json's own string escaper: byte for
byte what json.dumps writes, for any text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from keystead.errors import MethodNotAllowed
from keystead.sso.api import SSO, _answer


@given(st.dictionaries(st.text(), st.text(), max_size=4))
def test_an_answer_is_what_json_dumps_writes(payload: dict[str, str]) -> None:
    assert _answer(200, payload).body == json.dumps(payload).encode()


def test_a_refusal_is_json_with_its_reason_and_allowed_methods() -> None:
    answer = SSO.refusal(MethodNotAllowed("method GET is not allowed", allowed=("POST",)))
    assert answer.status == 405
    assert json.loads(answer.body) == {
        "message": "method GET is not allowed",
        "reason": "method_not_allowed",
    }
    assert (b"allow", b"POST") in answer.headers
    assert (b"cache-control", b"no-store") in answer.headers
