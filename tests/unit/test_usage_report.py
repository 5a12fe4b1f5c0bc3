"""A usage report's key numbers, as the client echoes them: an integer or a decimal string,
refused in words of the report's own fields whatever the string holds."""

from __future__ import annotations

from typing import Any

import pytest

from keystead.dataplane.events import MAX_KEY_NUMBER, parse_report
from keystead.errors import BadRequest


def _entry(key_number: Any) -> dict[str, Any]:
    return {
        "datasets": "SSN",
        "dataset_type": "structured",
        "api_key": "key",
        "count": 1,
        "key_number": key_number,
        "action": "encrypt",
    }


@pytest.mark.parametrize(
    ("sent", "read"), [("7", 7), (7, 7), (str(MAX_KEY_NUMBER), MAX_KEY_NUMBER)]
)
def test_a_key_number_is_an_integer_or_its_decimal_string(sent: Any, read: int) -> None:
    assert parse_report({"usage": [_entry(sent)]}).usage[0].key_number == read


@pytest.mark.parametrize("sent", ["5" * 5000, str(MAX_KEY_NUMBER + 1), "²", "٣", "-1"])
def test_any_other_key_number_is_refused_naming_the_field(sent: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_report({"usage": [_entry(sent)]})
    message = refused.value.message
    assert message.startswith("usage report is not valid: usage.0.key_number: ")
    assert "sys." not in message
    assert "invalid literal" not in message
