"""Format-preserving dataset definitions: templates, rules, key-number room."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keystead.catalog import fpe
from keystead.errors import InvalidInput


@pytest.mark.parametrize(
    ("template", "bits", "max_key"),
    [("ssn", 0, 61), ("digits", 0, 61), ("alnum", 4, 4), ("alnum-upper", 2, 14)],
)
def test_templates_are_valid_and_leave_room_for_keys(
    template: str, bits: int, max_key: int
) -> None:
    """Each template passes validation with the expected bits and key room."""
    definition = fpe.from_template(template)
    assert definition.msb_encoding_bits == bits
    assert fpe.max_key_number(definition) == max_key
    assert definition.encryption_algorithm == "FF1"
    assert 6 <= len(base64.b64decode(definition.tweak or "")) <= 32


def test_ssn_template_matches_the_protocol_example() -> None:
    """The ssn template is the SSN definition the client is known to accept."""
    d = fpe.from_template("ssn").model_dump(mode="json")
    assert d["input_character_set"] == "0123456789"
    assert len(d["output_character_set"]) == 62
    assert d["passthrough_rules"] == [{"type": "passthrough", "value": "-", "priority": 1}]
    assert (d["min_input_length"], d["max_input_length"]) == (9, 9)


def test_unknown_template_lists_the_choices() -> None:
    """An unknown template name says which ones exist."""
    with pytest.raises(InvalidInput, match="alnum, alnum-upper, digits, ssn"):
        fpe.from_template("iban")


BASE: dict[str, Any] = {
    "input_character_set": "0123456789",
    "output_character_set": "0123456789AB",
    "min_input_length": 6,
    "max_input_length": 12,
}


def test_bits_follow_the_protocol_table() -> None:
    """10 digits into 12 symbols at length 6: D = 4, bits = 3, keys 0..0 fit (4+8 > 11)."""
    d = fpe.parse_definition(BASE)
    assert fpe.first_character_bound(d) == 4
    assert d.msb_encoding_bits == 3
    assert fpe.max_key_number(d) == 0


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"output_character_set": "012345678"}, "at least as large"),
        ({"input_character_set": "00123456789"}, "repeats a character"),
        ({"passthrough": "5"}, "also appear in an alphabet"),
        ({"min_input_length": 5}, "below FF1's minimum of 6"),
        ({"max_input_length": 3, "min_input_length": 6}, "smaller than min_input_length"),
        ({"msb_encoding_bits": 1}, "at least 3"),
        ({"tweak": "AAAA"}, "tweak is 3 bytes"),
        ({"tweak": "%%%"}, "standard base64"),
        ({"encryption_algorithm": "FF3-1"}, "encryption_algorithm"),
        ({"surprise": 1}, "surprise"),
        (
            {"passthrough_rules": [{"type": "prefix", "value": "2", "priority": 1}]},
            "non-negative integer",
        ),
        (
            {
                "passthrough_rules": [
                    {"type": "prefix", "value": 1, "priority": 1},
                    {"type": "suffix", "value": 1, "priority": 1},
                ]
            },
            "distinct",
        ),
    ],
)
def test_invalid_definitions_say_what_is_wrong(change: dict[str, Any], problem: str) -> None:
    """Every rule the client depends on is enforced with a readable reason."""
    with pytest.raises(InvalidInput, match=problem):
        fpe.parse_definition({**BASE, **change})


@given(
    r_in=st.integers(min_value=2, max_value=40),
    extra=st.integers(min_value=0, max_value=40),
    length=st.integers(min_value=1, max_value=12),
)
def test_key_numbers_within_room_never_overflow_the_output_alphabet(
    r_in: int, extra: int, length: int
) -> None:
    """For any accepted definition, (max_key << bits) + D stays inside the output set."""
    alphabet = [chr(0x100 + i) for i in range(r_in + extra)]
    raw = {
        "input_character_set": "".join(alphabet[:r_in]),
        "output_character_set": "".join(alphabet),
        "min_input_length": length,
        "max_input_length": length,
    }
    if r_in**length < fpe.FF1_MIN_DOMAIN:
        with pytest.raises(InvalidInput):
            fpe.parse_definition(raw)
        return
    d = fpe.parse_definition(raw)
    bound = fpe.first_character_bound(d)
    bits = d.msb_encoding_bits or 0
    assert 2**bits > bound
    top = fpe.max_key_number(d)
    if top >= 0:
        assert (top << bits) + bound <= r_in + extra - 1
    assert ((top + 1) << bits) + bound > r_in + extra - 1
