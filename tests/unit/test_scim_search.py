"""A list request's cost is decided from its text: the same verdict as the SQL condition the
search builds, without building it."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from keystead.errors import KeysteadError
from keystead.scim import search, wire

ATTRIBUTES = ["userName", "USERNAME", "displayName", "externalId", "id", "title", "emails", "x"]
VALUES = [
    '"dana@example.com"',
    '"Group 1"',
    '"not-an-id"',
    '"0b6a7f3e-64a4-4a86-9a43-6b8b1d5e2f10"',
]
filters = st.builds(
    lambda lead, attr, op, value, tail: f"{lead}{attr} {op} {value}{tail}",
    st.sampled_from(["", " ", "  "]),
    st.sampled_from(ATTRIBUTES),
    st.sampled_from(["eq", "EQ", "Eq", "ne", "co", "sw"]),
    st.sampled_from([*VALUES, '"with \\" quote"', "true", "1"]),
    st.sampled_from(["", " ", ' and title eq "x"', " or id pr"]),
)


@given(kind=st.sampled_from(["Users", "Groups"]), text=filters)
@example(kind="Users", text='userName eq "dana@example.com"')
@example(kind="Groups", text='displayName eq "Group 1"')
@example(kind="Groups", text='id eq "not-an-id"')
def test_point_lookup_is_where_the_indexed_condition_exists(kind: str, text: str) -> None:
    columns = search._USER_COLUMNS if kind == "Users" else search._GROUP_COLUMNS
    indexed = search._simple_condition(text, columns) is not None
    without_members = wire.shape(None, "members")
    assert search.is_point_lookup(kind, text, without_members) is indexed


@pytest.mark.parametrize("text", [None, ""])
def test_no_filter_is_no_point_lookup(text: str | None) -> None:
    assert search.is_point_lookup("Users", text, None) is False


def test_a_group_lookup_with_its_members_grows_with_the_group() -> None:
    text = 'displayName eq "Group 1"'
    assert search.is_point_lookup("Groups", text, wire.shape(None, "members")) is True
    assert search.is_point_lookup("Groups", text, None) is False
    assert search.is_point_lookup("Users", 'userName eq "a"', None) is True


def test_a_shape_is_parsed_once_per_distinct_query() -> None:
    first = wire.shape("userName, emails", None)
    assert wire.shape("userName, emails", None) is first
    assert wire.shape(None, "userName, emails") is not first
    assert first is not None
    assert first.attributes == ["userName", "emails"]


def test_a_bad_shape_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(KeysteadError, match="not an attribute path"):
            wire.shape("bad attribute!", None)
