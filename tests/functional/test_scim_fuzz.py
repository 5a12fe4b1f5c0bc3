"""Arbitrary SCIM writes against the live server: whatever the body, the answer is never a 5xx,
a refusal is a SCIM error that says what is wrong, and a refused write changes nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.scim import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE,
    ERROR,
    PATCH,
    Scim,
    create_group,
    create_user,
)

NAMES = [
    "userName", "displayName", "active", "emails", "members", "value", "type", "primary",
    "name", "givenName", "manager", "externalId", "schemas", "id", "meta", "title",
    "phoneNumbers", "roles", "display", "$ref", ENTERPRISE, f"{ENTERPRISE}:manager",
]  # fmt: skip
PATHS = [
    "userName", "displayName", "active", "emails", 'emails[type eq "work"].value',
    "emails[type eq work]", "name.givenName", "members", 'members[value eq "nobody"]',
    "members[value eq", f"{ENTERPRISE}:department", f"{ENTERPRISE}:manager", "externalId",
    "id", "meta.version", "nosuch", "emails[", "", "name.givenName.deeper",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "True",
            "False",
            "",
            "x@fabrikam.example",
            "\u00e9\u00df",
            " padded ",
            "\u00df" * 200,  # 400 characters once case-folded
            "x" * 300,
            "\ud800",
            "a\udfffb",
            "\u0000",
        ]
    ),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=12,
)
operations = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "Add", "replace", "Replace", "remove", "Remove", "move", 7])},
    optional={"path": st.one_of(st.sampled_from(PATHS), st.text(max_size=10)), "value": values},
)
patches = st.one_of(
    st.fixed_dictionaries(
        {"schemas": st.just([PATCH]), "Operations": st.lists(operations, min_size=1, max_size=4)}
    ),
    st.fixed_dictionaries({"schemas": st.just([PATCH]), "Operations": values}),
    values,
)


# Strings that test every column's limits and every layer's character rules.
tricky = st.sampled_from(["\u00df" * 200, "x" * 257, "x" * 5000, "\ud800", "a\udfffb", "\u0000"])


def resources(schema: str, required: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(st.sampled_from(NAMES), values, max_size=6).map(
            lambda d: {"schemas": [schema], required: "fuzz@fabrikam.example", **d}
        ),
        st.dictionaries(
            st.sampled_from([required, "displayName", "externalId", "title"]), tricky, min_size=1
        ).map(lambda d: {"schemas": [schema], required: "fuzz@fabrikam.example", **d}),
        values,
    )


requests = st.one_of(
    st.tuples(st.just("PATCH"), st.sampled_from(["user", "group"]), patches),
    st.tuples(st.just("PUT"), st.just("user"), resources(CORE_USER, "userName")),
    st.tuples(st.just("PUT"), st.just("group"), resources(CORE_GROUP, "displayName")),
    st.tuples(st.just("POST"), st.just("user"), resources(CORE_USER, "userName")),
    st.tuples(st.just("POST"), st.just("group"), resources(CORE_GROUP, "displayName")),
)


def _anchor(scim: Scim, collection: str, attribute: str, name: str) -> str:
    found = scim.client.get(collection, params={"filter": f'{attribute} eq "{name}"'}).json()
    if found["totalResults"]:
        return str(found["Resources"][0]["id"])
    made = create_user(scim, name) if collection == "/Users" else create_group(scim, name)
    return str(made["id"])


def _state(scim: Scim, user: str, group: str) -> tuple[Any, ...]:
    reads = (
        scim.client.get(f"/Users/{user}"),
        scim.client.get(f"/Groups/{group}"),
        scim.client.get("/Users", params={"attributes": "id"}),
        scim.client.get("/Groups", params={"attributes": "id"}),
    )
    assert all(r.status_code == 200 for r in reads)
    return tuple(r.json() for r in reads)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests)
def test_no_write_is_a_5xx_and_a_refused_one_changes_nothing(
    scim: Scim, request: tuple[str, str, Any]
) -> None:
    # One user and one group for every example (the fixture lives for the whole test, and
    # an earlier example may have renamed them).
    user = _anchor(scim, "/Users", "userName", "anchor@fabrikam.example")
    group = _anchor(scim, "/Groups", "displayName", "Anchor group")

    method, kind, body = request
    collection = "/Users" if kind == "user" else "/Groups"
    path = collection if method == "POST" else f"{collection}/{user if kind == 'user' else group}"
    before = _state(scim, user, group)
    # Serialised here, ASCII-escaped: a lone surrogate is a valid JSON escape, not UTF-8.
    response = scim.client.request(method, path, content=json.dumps(body).encode())

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _assert_scim_error(response)
        assert _state(scim, user, group) == before
    elif response.status_code == 201:  # free the name for the next example
        assert scim.client.delete(f"{collection}/{response.json()['id']}").status_code == 204
    else:
        assert response.status_code in (200, 204)


def _assert_scim_error(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("application/scim+json")
    error = response.json()
    assert error["schemas"] == [ERROR]
    assert error["status"] == str(response.status_code)
    assert isinstance(error["detail"], str)
    assert error["detail"].strip()
    # A library's own report (pydantic's, Python's advice on its integer limit) is no answer.
    for internal in ("pydantic", "validation error for", "set_int_max_str_digits"):
        assert internal not in error["detail"]


ATTRIBUTES = [
    "userName", "displayName", "active", "emails", "emails.value", "emails.type", "name.givenName",
    "meta.lastModified", "meta.created", "id", "externalId", "members", "members.value",
    f"{ENTERPRISE}:department", f"{ENTERPRISE}:manager.value", "nosuch", "title",
]  # fmt: skip
comparisons = st.builds(
    lambda attribute, op, value: f"{attribute} {op} {value}",
    st.sampled_from(ATTRIBUTES),
    st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "xx"]),
    st.one_of(
        st.sampled_from(
            [
                '"anchor@fabrikam.example"',
                "true",
                "false",
                "null",
                "42",
                '"2026-11-28T00:00:00Z"',
                '"',
                "x",
            ]
        ),
        st.text(max_size=8).map(json_string := lambda t: '"' + t.replace('"', '\\"') + '"'),
    ),
)
atoms = st.one_of(
    comparisons,
    st.sampled_from(ATTRIBUTES).map(lambda a: f"{a} pr"),
    st.builds(lambda a, c: f"{a.split('.')[0]}[{c}]", st.sampled_from(ATTRIBUTES), comparisons),
    st.text(max_size=10),
)
filters = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.builds(
            lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or", "AND"]), inner
        ),
        inner.map(lambda f: f"not ({f})"),
        inner.map(lambda f: f"({f})"),
    ),
    max_leaves=5,
)
# Around the page bounds and far past what a database integer holds, either way.
pages = st.one_of(st.integers(-5, 10**12), st.integers(-(2**70), 2**70))
queries = st.fixed_dictionaries(
    {},
    optional={
        "filter": filters,
        "startIndex": st.one_of(pages.map(str), st.text(max_size=4)),
        "count": st.one_of(pages.map(str), st.text(max_size=4)),
        "attributes": st.sampled_from([*ATTRIBUTES, "", ",", "members,userName"]),
        "excludedAttributes": st.sampled_from([*ATTRIBUTES, "", ","]),
        "sortBy": st.sampled_from(ATTRIBUTES),
        "sortOrder": st.sampled_from(["ascending", "descending", "sideways"]),
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(collection=st.sampled_from(["/Users", "/Groups"]), query=queries)
def test_no_query_is_a_5xx(scim: Scim, collection: str, query: dict[str, str]) -> None:
    _anchor(scim, "/Users", "userName", "anchor@fabrikam.example")
    response = scim.client.get(collection, params=query)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        _assert_scim_error(response)
        assert response.json().get("scimType") in ("invalidFilter", "invalidValue", "invalidPath")
    else:
        listing = response.json()
        assert listing["totalResults"] >= len(listing["Resources"])


searches = st.one_of(
    st.fixed_dictionaries(
        {"schemas": st.just(["urn:ietf:params:scim:api:messages:2.0:SearchRequest"])},
        optional={
            "filter": st.one_of(filters, values),
            "startIndex": st.one_of(pages, values),
            "count": st.one_of(pages, values),
            "attributes": st.one_of(st.lists(st.sampled_from(ATTRIBUTES), max_size=3), values),
            "excludedAttributes": st.one_of(
                st.lists(st.sampled_from(ATTRIBUTES), max_size=3), values
            ),
        },
    ),
    values,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(["/.search", "/Users/.search", "/Groups/.search"]), body=searches)
def test_no_search_is_a_5xx(scim: Scim, path: str, body: Any) -> None:
    response = scim.client.post(path, content=json.dumps(body).encode())
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        _assert_scim_error(response)
    else:
        assert response.json()["totalResults"] >= len(response.json()["Resources"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "PATCH", "PUT", "DELETE"]),
    if_match=st.one_of(
        st.sampled_from(['W/"1"', '"1"', "*", 'W/"', "W/", 'W/"999999999999999999999"', ""]),
        # (what an HTTP client can send: printable, no surrounding blanks)
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12).map(
            str.strip
        ),
    ),
    query=queries,
)
def test_no_conditional_or_shaped_request_is_a_5xx(
    scim: Scim, method: str, if_match: str, query: dict[str, str]
) -> None:
    user = _anchor(scim, "/Users", "userName", "anchor@fabrikam.example")
    before = _state(scim, user, _anchor(scim, "/Groups", "displayName", "Anchor group"))
    body = {
        "PATCH": {
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "path": "title", "value": "t"}],
        },
        "PUT": {"schemas": [CORE_USER], "userName": "anchor@fabrikam.example", "title": "t"},
    }.get(method)
    response = scim.client.request(
        method, f"/Users/{user}", params=query, json=body, headers={"If-Match": if_match}
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _assert_scim_error(response)
        assert response.status_code in (400, 404, 412)
        group = _anchor(scim, "/Groups", "displayName", "Anchor group")
        assert _state(scim, user, group) == before
