"""Name rules and the single normalisation used to compare names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keystead import names
from keystead.errors import InvalidInput


@pytest.mark.parametrize(
    ("a", "b"), [("HR Team", " hr team "), ("Straße", "STRASSE"), ("\uff28r", "hr")]
)
def test_names_that_match(a: str, b: str) -> None:
    """Case, surrounding space and compatibility forms do not matter."""
    assert names.name_key(a) == names.name_key(b)


@pytest.mark.parametrize(
    ("a", "b"), [("HR Team", "HR  Team"), ("HR", "HR Team"), ("hr-team", "hr team")]
)
def test_names_that_do_not_match(a: str, b: str) -> None:
    """Inner spacing and punctuation do matter."""
    assert names.name_key(a) != names.name_key(b)


@given(st.text(max_size=40))
def test_name_key_is_idempotent(text: str) -> None:
    """Normalising twice changes nothing."""
    assert names.name_key(names.name_key(text)) == names.name_key(text)


@pytest.mark.parametrize("good", ["SSN", "ssn_v2", "a", "Card.Numbers-2024", "x" * 64])
def test_valid_dataset_names(good: str) -> None:
    """Letters, digits, '_', '.', '-' up to 64 characters."""
    assert names.dataset_name(good) == good


@pytest.mark.parametrize("bad", ["", "-lead", "has space", "a&b", "a+b", "x" * 65, "naïve"])
def test_invalid_dataset_names_explain_the_rule(bad: str) -> None:
    """Names unsafe in the client's query strings are refused with the rule."""
    with pytest.raises(InvalidInput, match="letters, digits"):
        names.dataset_name(bad)


@pytest.mark.parametrize(
    ("bad", "problem"), [("   ", "empty"), ("a\x00b", "control"), ("x" * 257, "at most 256")]
)
def test_invalid_display_names(bad: str, problem: str) -> None:
    """Group and key names must be printable and bounded."""
    with pytest.raises(InvalidInput, match=problem):
        names.display_name(bad, what="dataset group")


@pytest.mark.parametrize("name", ["\u00df" * 129, "\ufdfa" * 15, "x" * 245 + "\u00df" * 6])
def test_display_names_longer_than_the_limit_once_case_folded_are_refused(name: str) -> None:
    """'ß' compares as 'ss': a name must fit the limit in the form names are compared in."""
    with pytest.raises(InvalidInput, match=r"once normalised for comparison.*at most 256"):
        names.display_name(name, what="dataset group")


@pytest.mark.parametrize("name", ["\u00df" * 128, "\ufdfa" * 14, "x" * 250 + "\u00df" * 3])
def test_display_names_that_fit_once_case_folded_are_kept(name: str) -> None:
    assert names.display_name(name, what="dataset group") == name
    assert len(names.name_key(name)) <= 256


def test_display_names_are_trimmed() -> None:
    """Surrounding whitespace is dropped; inner text is kept."""
    assert names.display_name("  HR & Payroll (EU) ", what="x") == "HR & Payroll (EU)"
