"""Directory sync over SCIM against the live server, replaying what Microsoft Entra's
provisioning service sends (both request shapes: the default one with capitalised ops and
"True"/"False" strings, and the aadOptscim062020 one)."""

from __future__ import annotations

import concurrent.futures
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keystead.accounts import service as accounts
from keystead.idp import service as idp
from keystead.runtime import Runtime
from keystead.scim import wire
from keystead.settings import Settings
from keystead.storage.models import ProvisioningEvent
from tests import factories as f
from tests.conftest import LiveServer, start_server, stop_server
from tests.factories import ACTOR
from tests.support.scim import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE,
    PATCH,
    Scim,
    assert_error,
    create_group,
    create_user,
    entra_user,
)


def _enable(
    runtime: Runtime, plan: str = "enterprise", enable: bool = True
) -> tuple[uuid.UUID, str]:
    with runtime.db.write() as s:
        account = accounts.get_account(s, f.account(s, plan=plan))
        token = ""
        if plan == "enterprise":
            token = idp.rotate_scim_token(s, account, actor=ACTOR).token
            if enable:
                idp.set_enabled(s, account, True, actor=ACTOR, master=runtime.master)
        return account.id, token


# --- connection and authentication -----------------------------------------------------------


def test_test_connection_lookup_of_a_random_guid_is_an_empty_list(scim: Scim) -> None:
    """Test Connection: 200 with an empty ListResponse, never 404, as scim+json."""
    guid = str(uuid.uuid4())
    users = scim.client.get("/Users", params={"filter": f'userName eq "{guid}"'})
    groups = scim.client.get(
        "/Groups", params={"excludedAttributes": "members", "filter": f'displayName eq "{guid}"'}
    )
    for response in (users, groups):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/scim+json")
        assert response.json()["totalResults"] == 0
        assert response.json()["Resources"] == []


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer"])
def test_missing_or_wrong_token_is_401(scim: Scim, header: str | None) -> None:
    """Anything but the account's current token is a 401 SCIM error."""
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{scim.base}/Users", headers=headers)
    assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_another_accounts_token_is_401(scim: Scim) -> None:
    """Account A's token at account B's URL is refused."""
    other_id, _ = _enable(scim.runtime)
    response = httpx.get(
        f"{scim.base.replace(str(scim.account_id), str(other_id))}/Users",
        headers={"Authorization": f"Bearer {scim.token}"},
    )
    assert_error(response, 401)


def test_rotated_token_stops_working_at_once(scim: Scim) -> None:
    """After rotation the old token is 401 and the new one works."""
    with scim.runtime.db.write() as s:
        account = accounts.get_account(s, scim.account_id)
        new = idp.rotate_scim_token(s, account, actor=ACTOR).token
    assert_error(scim.client.get("/Users"), 401)
    ok = httpx.get(f"{scim.base}/Users", headers={"Authorization": f"Bearer {new}"})
    assert ok.status_code == 200


def test_integration_not_enabled_is_403(live_server: LiveServer, runtime: Runtime) -> None:
    """A valid token for an account whose integration is off gets 403."""
    account_id, token = _enable(runtime, enable=False)
    response = httpx.get(
        f"{live_server.url}/{account_id}/api/v3/scim/Users",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_error(response, 403)
    assert "keystead idp enable" in response.json()["detail"]


# --- users ---------------------------------------------------------------------------------


def test_user_lifecycle_in_the_default_shape_drives_its_key(scim: Scim) -> None:
    """Create → key; Replace ops → stored; "False"/"True" → key disabled/enabled; rename;
    delete → key gone."""
    assert (
        scim.client.get("/Users", params={"filter": 'userName eq "dana@fab.example"'}).json()[
            "totalResults"
        ]
        == 0
    )
    user = create_user(scim, "dana@fab.example")
    key = scim.key_of(user["id"])
    assert key is not None
    assert (key.name, key.enabled, key.auto_provisioned) == ("dana@fab.example", True, True)
    assert user["meta"]["location"].endswith(f"/Users/{user['id']}")

    changed = scim.patch(
        f"/Users/{user['id']}",
        {"op": "Replace", "path": "displayName", "value": "Dana Reyes-Ortiz"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "dana.o@fab.example"},
        {"op": "Replace", "path": "name.familyName", "value": "Reyes-Ortiz"},
        {"op": "Replace", "path": "externalId", "value": "dana.ortiz"},
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Treasury"},
        {"op": "Add", "path": "title", "value": "Senior Payments Engineer"},
    )
    assert changed.status_code == 200, changed.text
    read = scim.client.get(f"/Users/{user['id']}").json()
    assert read["displayName"] == "Dana Reyes-Ortiz"
    assert read["emails"][0]["value"] == "dana.o@fab.example"
    assert read["name"]["familyName"] == "Reyes-Ortiz"
    assert read["externalId"] == "dana.ortiz"
    assert read[ENTERPRISE]["department"] == "Treasury"
    assert read["title"] == "Senior Payments Engineer"
    assert read["phoneNumbers"] == [{"type": "mobile", "value": "+1 206 555 0144"}]

    assert (
        scim.patch(
            f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"}
        ).status_code
        == 200
    )
    assert scim.key_of(user["id"]).enabled is False  # type: ignore[union-attr]
    assert scim.client.get(f"/Users/{user['id']}").json()["active"] is False
    found = scim.client.get("/Users", params={"filter": 'userName eq "DANA@fab.example"'}).json()
    assert found["totalResults"] == 1  # disabled users are still found, case-insensitively
    scim.patch(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "True"})
    assert scim.key_of(user["id"]).enabled is True  # type: ignore[union-attr]

    scim.patch(
        f"/Users/{user['id']}",
        {"op": "Replace", "path": "userName", "value": "d.ortiz@fab.example"},
    )
    assert scim.key_of(user["id"]).name == "d.ortiz@fab.example"  # type: ignore[union-attr]

    assert scim.client.delete(f"/Users/{user['id']}").status_code == 204
    assert scim.key_of(user["id"]) is None
    assert_error(scim.client.get(f"/Users/{user['id']}"), 404)
    assert_error(scim.client.delete(f"/Users/{user['id']}"), 404)


def test_flag_shape_path_less_replace_with_dotted_and_urn_keys(scim: Scim) -> None:
    """aadOptscim062020: lower-case ops, one path-less replace with nested keys, booleans."""
    user = create_user(scim, "eve@fab.example")
    response = scim.patch(
        f"/Users/{user['id']}",
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "eve2@fab.example"},
        {
            "op": "replace",
            "value": {
                "displayName": "Eve Two",
                "name.familyName": "Two",
                f"{ENTERPRISE}:employeeNumber": "40417-B",
            },
        },
        {"op": "replace", "path": "active", "value": False},
    )
    assert response.status_code == 200, response.text
    read = scim.client.get(f"/Users/{user['id']}").json()
    assert read["displayName"] == "Eve Two"
    assert read["name"]["familyName"] == "Two"
    assert "name.familyName" not in read
    assert read[ENTERPRISE]["employeeNumber"] == "40417-B"
    assert read["emails"][0]["value"] == "eve2@fab.example"
    assert scim.key_of(user["id"]).enabled is False  # type: ignore[union-attr]


def test_manager_arrives_as_a_bare_id_and_reads_back_complex(scim: Scim) -> None:
    """The enterprise manager path with a bare id is stored as {"value": id}; Remove clears."""
    boss = create_user(scim, "boss@fab.example")
    user = create_user(scim, "worker@fab.example")
    path = f"{ENTERPRISE}:manager"
    assert (
        scim.patch(
            f"/Users/{user['id']}", {"op": "Add", "path": path, "value": boss["id"]}
        ).status_code
        == 200
    )
    read = scim.client.get(f"/Users/{user['id']}").json()
    assert read[ENTERPRISE]["manager"]["value"] == boss["id"]
    scim.patch(f"/Users/{user['id']}", {"op": "Remove", "path": path})
    assert "manager" not in scim.client.get(f"/Users/{user['id']}").json().get(ENTERPRISE, {})


def test_missing_typed_entry_is_created_by_a_filter_path(scim: Scim) -> None:
    """phoneNumbers[type eq "fax"].value on a user without a fax creates the entry."""
    user = create_user(scim, "fax@fab.example")
    scim.patch(
        f"/Users/{user['id']}",
        {"op": "Add", "path": 'phoneNumbers[type eq "fax"].value', "value": "+1 222"},
    )
    phones = scim.client.get(f"/Users/{user['id']}").json()["phoneNumbers"]
    assert {"type": "fax", "value": "+1 222"} in phones


def test_duplicate_user_name_is_409_uniqueness(scim: Scim) -> None:
    """userName is unique per account, case-insensitively."""
    create_user(scim, "dup@fab.example")
    assert_error(scim.client.post("/Users", json=entra_user("DUP@fab.example")), 409, "uniqueness")


def test_null_attributes_are_treated_as_absent(scim: Scim) -> None:
    """Old Entra examples send nulls for unused attributes."""
    user = create_user(scim, "nulls@fab.example", addresses=None, title=None, phoneNumbers=None)
    read = scim.client.get(f"/Users/{user['id']}").json()
    assert "addresses" not in read
    assert "title" not in read


def test_unknown_attributes_are_kept_and_read_back(scim: Scim) -> None:
    """What Entra writes reads back, including custom extension attributes."""
    custom = "urn:ietf:params:scim:schemas:extension:Acme:2.0:User"
    user = create_user(scim, "custom@fab.example", **{custom: {"costCenter": "42"}})
    assert scim.client.get(f"/Users/{user['id']}").json()[custom] == {"costCenter": "42"}


def test_attributes_and_excluded_attributes_shape_the_response(scim: Scim) -> None:
    """attributes= keeps only those (plus id/schemas); excludedAttributes= drops them."""
    user = create_user(scim, "shape@fab.example")
    only = scim.client.get(f"/Users/{user['id']}", params={"attributes": "userName"}).json()
    assert set(only) <= {"schemas", "id", "userName"}
    without = scim.client.get(
        f"/Users/{user['id']}", params={"excludedAttributes": "emails"}
    ).json()
    assert "emails" not in without
    assert without["userName"] == "shape@fab.example"
    both = {"attributes": "userName", "excludedAttributes": "emails"}
    assert_error(scim.client.get(f"/Users/{user['id']}", params=both), 400, "invalidValue")
    assert_error(scim.client.get("/Users", params=both), 400, "invalidValue")
    not_a_path = scim.client.get("/Users", params={"attributes": "userName,emails..value"})
    assert_error(not_a_path, 400, "invalidPath")
    assert "'emails..value'" in not_a_path.json()["detail"]


def test_pagination_is_stable_and_complete(scim: Scim) -> None:
    """startIndex/count page through every user once, in a stable order."""
    names = [f"p{i}@fab.example" for i in range(7)]
    for name in names:
        create_user(scim, name)
    seen: list[str] = []
    for start in (1, 4, 7):
        page = scim.client.get("/Users", params={"startIndex": start, "count": 3}).json()
        assert page["totalResults"] == 7
        assert page["startIndex"] == start
        seen += [r["userName"] for r in page["Resources"]]
    assert sorted(seen) == sorted(names)
    assert len(seen) == len(set(seen))


SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
HUGE = 99999999999999999999999  # beyond the 64-bit integers SQLite and PostgreSQL take


@pytest.mark.parametrize("kind", ["Users", "Groups"])
def test_a_start_index_beyond_any_database_integer_is_an_empty_page(scim: Scim, kind: str) -> None:
    """RFC 7644 §3.4.2.4: a startIndex past the results is an empty page with the true total.
    One too large for a 64-bit OFFSET was a 500 on both engines."""
    create_user(scim, "one@fab.example")
    create_group(scim, "One")
    answers = [
        scim.client.get(f"/{kind}", params={"startIndex": str(HUGE)}),
        scim.client.get(f"/{kind}", params={"startIndex": "9" * 5000}),  # past int()'s limit
        scim.client.get(f"/{kind}", params={"startIndex": str(HUGE), "filter": "id pr"}),
        scim.client.post(f"/{kind}/.search", json={"schemas": [SEARCH], "startIndex": HUGE}),
    ]
    for response in answers:
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["totalResults"], page["itemsPerPage"], page["Resources"]) == (1, 0, [])
        assert page["startIndex"] == wire.MAX_START_INDEX
    everything = scim.client.post("/.search", json={"schemas": [SEARCH], "startIndex": HUGE})
    assert everything.status_code == 200, everything.text
    assert (everything.json()["totalResults"], everything.json()["Resources"]) == (2, [])


def test_page_parameters_out_of_range_or_not_integers(scim: Scim) -> None:
    """Below the range: a startIndex under 1 is 1 and a negative count 0 (RFC 7644
    §3.4.2.4), however far below; above it, count is the page limit. Anything that is not an
    integer is 400 invalidValue naming the parameter, in a query or in a search body."""
    create_user(scim, "a@fab.example")
    create_user(scim, "b@fab.example")
    for params, shown, start in (
        ({"startIndex": str(-HUGE)}, 2, 1),
        ({"startIndex": "-" + "9" * 5000}, 2, 1),
        ({"count": str(-HUGE)}, 0, 1),
        ({"count": str(HUGE)}, 2, 1),
        ({"startIndex": "+2", "count": "1"}, 1, 2),
    ):
        page = scim.client.get("/Users", params=params)
        assert page.status_code == 200, page.text
        assert (page.json()["totalResults"], page.json()["startIndex"]) == (2, start)
        assert len(page.json()["Resources"]) == shown
    for body, shown, start in (
        ({"startIndex": -HUGE}, 2, 1),
        ({"count": -HUGE}, 0, 1),
        ({"count": HUGE}, 2, 1),
        ({"startIndex": None, "count": None}, 2, 1),  # null is absent, as for filter
    ):
        page = scim.client.post("/Users/.search", json={"schemas": [SEARCH], **body})
        assert page.status_code == 200, page.text
        assert (page.json()["totalResults"], page.json()["startIndex"]) == (2, start)
        assert len(page.json()["Resources"]) == shown
    for name in ("startIndex", "count"):
        for text in ("1e30", "1.5", "two", "0x10", "1_000", "\u0663"):
            response = scim.client.get("/Users", params={name: text})
            assert_error(response, 400, "invalidValue")
            assert response.json()["detail"].startswith(f"{name} must be an integer")
        for value in (1e30, 1.0, True, "5", [1], {"value": 1}):
            for path in ("/Users/.search", "/Groups/.search", "/.search"):
                response = scim.client.post(path, json={"schemas": [SEARCH], name: value})
                assert_error(response, 400, "invalidValue")
                assert response.json()["detail"].startswith(f"{name} must be an integer")


def test_search_pages_past_the_page_limit_exactly_as_the_listing_does(scim: Scim) -> None:
    """POST .search fetched the first 1,000 resources of each kind and sliced them, so a
    startIndex past 1,000 found nothing; it pages as GET does, and the root search pages
    across Users, then Groups, in one stable order."""
    users = wire.MAX_COUNT + 163
    seeded = scim.seed_users(users, domain="fab.example")
    groups = [create_group(scim, f"Paged {n}")["id"] for n in range(3)]

    def ids(response: httpx.Response, total: int, start: int) -> list[str]:
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["totalResults"], page["startIndex"]) == (total, start)
        assert page["itemsPerPage"] == len(page["Resources"])
        return [resource["id"] for resource in page["Resources"]]

    def listed(start: int, count: int) -> list[str]:
        params = {"startIndex": start, "count": count}
        return ids(scim.client.get("/Users", params=params), users, start)

    def searched(path: str, total: int, **body: Any) -> list[str]:
        response = scim.client.post(path, json={"schemas": [SEARCH], **body})
        return ids(response, total, body.get("startIndex", 1))

    in_order = listed(1, wire.MAX_COUNT) + listed(wire.MAX_COUNT + 1, wire.MAX_COUNT)
    assert in_order == seeded
    for start in (1, 998, 1001, users - 2, users, users + 1):
        found = searched("/Users/.search", users, startIndex=start, count=5)
        assert found == listed(start, 5) == in_order[start - 1 : start + 4]
    assert searched("/Users/.search", users, startIndex=1001)[:1] == in_order[1000:1001]
    assert searched("/Groups/.search", 3, startIndex=2, count=5) == groups[1:]

    everything = in_order + groups
    total = len(everything)
    assert searched("/.search", total, startIndex=users - 1, count=4) == everything[-5:-1]
    assert searched("/.search", total, startIndex=users + 2, count=4) == groups[1:]
    paged: list[str] = []
    for start in range(1, total + 1, 400):
        paged += searched("/.search", total, startIndex=start, count=400)
    assert paged == everything
    only = searched("/.search", 1, filter='userName eq "user1100@fab.example"')
    assert only == [in_order[1100]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "f1@fab.example"', {"f1@fab.example"}),
        ('externalId eq "f2"', {"f2@fab.example"}),
        ('userName sw "f1" or userName sw "f2"', {"f1@fab.example", "f2@fab.example"}),
        ('displayName co "Reyes" and not (userName eq "f1@fab.example")', {"f2@fab.example"}),
        ('emails[type eq "work" and value ew "f2@fab.example"]', {"f2@fab.example"}),
        ("title pr", {"f1@fab.example", "f2@fab.example"}),
        ('emails[type eq "work"].value eq "f1@fab.example"', {"f1@fab.example"}),
    ],
)
def test_filters(scim: Scim, text: str, expected: set[str]) -> None:
    """The RFC 7644 filter grammar (and Entra's email filter form) select the right users."""
    create_user(scim, "f1@fab.example")
    create_user(scim, "f2@fab.example")
    found = scim.client.get("/Users", params={"filter": text}).json()
    assert {r["userName"] for r in found["Resources"]} == expected


def test_group_filters_on_members_see_the_members(scim: Scim) -> None:
    """A filter naming ``members`` is judged against each group with its members (the
    groups are listed without them unless asked)."""
    alice, bob = create_user(scim, "alice@fab.example"), create_user(scim, "bob@fab.example")
    hr = create_group(scim, "HR")
    create_group(scim, "Ops")
    add = {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}
    assert scim.patch(f"/Groups/{hr['id']}", add).status_code in (200, 204)
    for text, expected in [
        (f'members.value eq "{alice["id"]}"', {"HR"}),
        (f'members[value eq "{alice["id"]}"]', {"HR"}),
        (f'id eq "{hr["id"]}" and members.value eq "{alice["id"]}"', {"HR"}),
        (f'id eq "{hr["id"]}" and members.value eq "{bob["id"]}"', set()),
        ("members pr", {"HR"}),
        ('not (members pr) and displayName eq "Ops"', {"Ops"}),
    ]:
        found = scim.client.get(
            "/Groups", params={"filter": text, "excludedAttributes": "members"}
        ).json()
        assert {g["displayName"] for g in found["Resources"]} == expected, text
        assert all("members" not in g for g in found["Resources"])


# --- groups --------------------------------------------------------------------------------


def test_group_lifecycle_moves_access_through_the_matching_dataset_group(scim: Scim) -> None:
    """Members added gain the matching dataset group's datasets; removal (both shapes),
    rename and delete take it away; the users stay."""
    with scim.runtime.db.write() as s:
        f.dataset(s, scim.account_id, "SSN", scim.runtime.master)
        f.dataset_group(s, scim.account_id, "Treasury Analysts", "SSN")
    dana, eve, ann = (create_user(scim, f"{n}@fab.example") for n in ("dana", "eve", "ann"))
    group = create_group(scim, "Treasury Analysts")
    assert group["schemas"] == [CORE_GROUP]  # the Microsoft URN is accepted, not echoed
    assert scim.usable(dana["id"]) == []  # group created: nothing yet

    added = scim.patch(
        f"/Groups/{group['id']}",
        {
            "op": "Add",
            "path": "members",
            "value": [{"$ref": None, "value": u["id"]} for u in (dana, eve, ann)],
        },
    )
    assert added.status_code == 204, added.text
    assert scim.usable(dana["id"]) == scim.usable(eve["id"]) == ["SSN"]

    # Default shape: only the listed member goes.
    scim.patch(
        f"/Groups/{group['id']}",
        {"op": "Remove", "path": "members", "value": [{"value": eve["id"]}]},
    )
    assert scim.usable(eve["id"]) == []
    assert scim.usable(dana["id"]) == ["SSN"]
    # Flag shape: remove by filter.
    scim.patch(
        f"/Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}
    )
    assert scim.usable(ann["id"]) == []
    members = scim.client.get(f"/Groups/{group['id']}").json()["members"]
    assert [m["value"] for m in members] == [dana["id"]]

    scim.patch(
        f"/Groups/{group['id']}", {"op": "Replace", "path": "displayName", "value": "Treasury EMEA"}
    )
    assert scim.usable(dana["id"]) == []
    scim.patch(
        f"/Groups/{group['id']}",
        {"op": "replace", "path": "displayName", "value": " treasury analysts "},
    )
    assert scim.usable(dana["id"]) == ["SSN"]

    assert scim.client.delete(f"/Groups/{group['id']}").status_code == 204
    assert scim.usable(dana["id"]) == []
    assert scim.client.get(f"/Users/{dana['id']}").status_code == 200
    assert_error(scim.client.get(f"/Groups/{group['id']}"), 404)


def test_excluded_members_and_lookup_by_display_name(scim: Scim) -> None:
    """Entra's group lookup excludes members."""
    user = create_user(scim, "m@fab.example")
    group = create_group(scim, "Ops")
    scim.patch(
        f"/Groups/{group['id']}", {"op": "Add", "path": "members", "value": [{"value": user["id"]}]}
    )
    one = scim.client.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"}).json()
    assert "members" not in one
    found = scim.client.get(
        "/Groups", params={"excludedAttributes": "members", "filter": 'displayName eq "Ops"'}
    ).json()
    assert found["totalResults"] == 1
    assert "members" not in found["Resources"][0]


def test_unknown_member_fails_the_whole_patch(scim: Scim) -> None:
    """One unknown member id → 400 naming it, and the known one is not added either."""
    user = create_user(scim, "known@fab.example")
    group = create_group(scim, "G")
    stranger = str(uuid.uuid4())
    response = scim.patch(
        f"/Groups/{group['id']}",
        {"op": "Add", "path": "members", "value": [{"value": user["id"]}, {"value": stranger}]},
    )
    assert_error(response, 400, "invalidValue")
    assert stranger in response.json()["detail"]
    assert "members" not in scim.client.get(f"/Groups/{group['id']}").json()


def test_duplicate_group_display_name_is_409(scim: Scim) -> None:
    """displayName is unique among groups."""
    create_group(scim, "Unique")
    response = scim.client.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "Unique"})
    assert_error(response, 409, "uniqueness")


def test_parallel_member_patches_across_two_processes_lose_nothing(
    scim: Scim, settings: Settings, tmp_path: Path
) -> None:
    """Eight clients spread over two server processes add and remove members of one group
    at once: every add and every remove lands."""
    second = start_server(settings, tmp_path / "second.log")
    try:
        users = [create_user(scim, f"c{i}@fab.example")["id"] for i in range(32)]
        group = create_group(scim, "Crowd")
        keep, drop = users[:24], users[24:]
        scim.patch(
            f"/Groups/{group['id']}",
            {"op": "Add", "path": "members", "value": [{"value": u} for u in drop]},
        )
        bases = [scim.base, scim.base.replace(scim.base.split("/")[2], second.url.split("/")[2])]

        def change(job: tuple[int, str, str]) -> int:
            index, op, user_id = job
            with httpx.Client(
                base_url=bases[index % 2], headers=dict(scim.client.headers), timeout=60
            ) as client:
                body = {
                    "schemas": [PATCH],
                    "Operations": [{"op": op, "path": "members", "value": [{"value": user_id}]}],
                }
                return client.patch(f"/Groups/{group['id']}", json=body).status_code

        jobs = [(i, "Add", u) for i, u in enumerate(keep)] + [
            (i, "Remove", u) for i, u in enumerate(drop)
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(change, jobs))
        assert statuses == [204] * len(jobs)
        members = scim.client.get(f"/Groups/{group['id']}").json()["members"]
        assert sorted(m["value"] for m in members) == sorted(keep)
    finally:
        stop_server(second)


# --- errors and the provisioning log ---------------------------------------------------------


def test_malformed_requests_get_scim_errors_and_change_nothing(scim: Scim) -> None:
    """Bad JSON, bad filters, unknown ids, unknown paths: the right SCIM error, no change."""
    assert_error(scim.client.post("/Users", content=b"{not json"), 400, "invalidSyntax")
    assert_error(scim.client.post("/Users", json=["a"]), 400, "invalidSyntax")
    # Nested past what Python's parser can read (was a 500)
    deep = b'{"userName": "x@fab.example", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert_error(scim.client.post("/Users", content=deep), 400, "invalidSyntax")
    assert_error(scim.client.get("/Users", params={"filter": "userName eq"}), 400, "invalidFilter")
    assert_error(scim.client.get("/Users", params={"count": "many"}), 400, "invalidValue")
    assert_error(scim.client.get(f"/Users/{uuid.uuid4()}"), 404)
    assert_error(
        scim.patch(f"/Groups/{uuid.uuid4()}", {"op": "Add", "path": "displayName", "value": "x"}),
        404,
    )
    assert_error(scim.client.get("/Nothing/here"), 404)
    assert_error(
        scim.client.patch(
            f"/Users/{create_user(scim, 'x@fab.example')['id']}", json={"schemas": [PATCH]}
        ),
        400,
        "invalidSyntax",
    )
    assert scim.client.get("/Users").json()["totalResults"] == 1


def test_text_that_no_column_can_hold_is_400_on_both_engines(scim: Scim) -> None:
    """Limits hold the same on SQLite (which would store anything) and PostgreSQL."""
    refused = [
        (entra_user("long-ext@fab.example", externalId="e" * 257), "externalId"),
        (entra_user("long-name@fab.example", displayName="d" * 257), "displayName"),
        (entra_user("\u00df" * 200), "userName"),  # 400 characters once case-folded
    ]
    for body, what in refused:
        response = scim.client.post("/Users", json=body)
        assert_error(response, 400, "invalidValue")
        assert what in response.json()["detail"] or "256" in response.json()["detail"]
    group = {"schemas": [CORE_GROUP], "displayName": "g", "externalId": "e" * 257}
    assert_error(scim.client.post("/Groups", json=group), 400, "invalidValue")
    # A JSON escape of half a surrogate pair is no character: neither database holds it.
    half = b'{"schemas": ["' + CORE_USER.encode() + b'"], "userName": "half\\ud800@fab"}'
    assert_error(scim.client.post("/Users", content=half), 400, "invalidValue")
    assert scim.client.get("/Users").json()["totalResults"] == 0


def test_invalid_values_are_named_without_the_validating_librarys_text(scim: Scim) -> None:
    """A value of the wrong type is 400 invalidValue naming the attribute and what it must be
    (a PATCH answered pydantic's own report: a class name, a library version, a URL)."""
    user = f"/Users/{create_user(scim, 'v@fab.example')['id']}"
    group = f"/Groups/{create_group(scim, 'Values')['id']}"
    boolean = "must be a boolean (true or false)"
    cases = [
        (scim.patch(user, {"op": "replace", "path": "active", "value": "maybe"}), "active"),
        (scim.patch(user, {"op": "replace", "value": {"active": "maybe"}}), "active"),
        (scim.client.post("/Users", json=entra_user("w@fab.example", active="maybe")), "active"),
        (
            scim.patch(user, {"op": "replace", "path": "userName", "value": 5}),
            "userName: must be a string",
        ),
        (
            scim.patch(user, {"op": "add", "path": "nickName", "value": {"a": 1}}),
            "nickName: must be a string",
        ),
        (
            scim.patch(
                user, {"op": "replace", "path": "emails", "value": [{"primary": "perhaps"}]}
            ),
            f"emails[0].primary: {boolean}",
        ),
        (scim.patch(user, {"op": "add", "path": "name", "value": 5}), "name: must be an object"),
        (
            scim.patch(group, {"op": "replace", "path": "displayName", "value": 5}),
            "displayName: must be a string",
        ),
    ]
    for response, detail in cases:
        assert_error(response, 400, "invalidValue")
        said = response.json()["detail"]
        assert said == (f"active: {boolean}" if detail == "active" else detail)
        for internal in ("pydantic", "EntraUser", "Group", "http", "validation error", "\n"):
            assert internal not in said
    assert scim.client.get(user).json()["active"] is True


def test_a_number_longer_than_python_converts_is_a_clear_400(scim: Scim) -> None:
    """A body with a 5,000-digit number answered with Python's own advice to raise
    sys.set_int_max_str_digits()."""
    limit = sys.get_int_max_str_digits()
    number = b"9" * (limit + 1)
    for path, body in (
        ("/Users", b'{"userName": "n@fab.example", "a": ' + number + b"}"),
        ("/.search", b'{"startIndex": ' + number + b"}"),
    ):
        response = scim.client.post(path, content=body)
        assert_error(response, 400, "invalidSyntax")
        assert response.json()["detail"] == (
            f"request body holds a number with more than {limit} digits"
        )
    assert scim.client.get("/Users").json()["totalResults"] == 0


def test_search_bodies_of_the_wrong_types_are_400(scim: Scim) -> None:
    search = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
    create_user(scim, "found@fab.example")
    cases: list[tuple[dict[str, object], str]] = [
        ({"filter": 1}, "invalidFilter"),
        ({"filter": ["userName pr"]}, "invalidFilter"),
        ({"attributes": {"userName": True}}, "invalidValue"),
        ({"excludedAttributes": [1, 2]}, "invalidValue"),
        ({"count": True}, "invalidValue"),
        ({"attributes": ["userName"], "excludedAttributes": ["emails"]}, "invalidValue"),
    ]
    for body, scim_type in cases:
        assert_error(
            scim.client.post("/.search", json={"schemas": [search], **body}), 400, scim_type
        )
    found = scim.client.post(
        "/Users/.search",
        json={"schemas": [search], "filter": 'userName sw "found"', "attributes": ["userName"]},
    )
    assert found.status_code == 200, found.text
    assert [r["userName"] for r in found.json()["Resources"]] == ["found@fab.example"]


def test_every_request_is_in_the_provisioning_log(scim: Scim) -> None:
    """Successes and failures are logged with the resource and the reason."""
    create_user(scim, "logged@fab.example")
    scim.client.post("/Users", json=entra_user("logged@fab.example"))
    with scim.runtime.db.read() as s:
        events = list(
            s.scalars(
                select(ProvisioningEvent)
                .where(ProvisioningEvent.account_id == scim.account_id)
                .order_by(ProvisioningEvent.id)
            )
        )
    assert [(e.operation, e.outcome, e.status) for e in events] == [
        ("create user", "success", 201),
        ("create user", "failed", 409),
    ]
    assert events[0].resource_name == "logged@fab.example"
    assert events[1].scim_type == "uniqueness"
    assert "already exists" in (events[1].detail or "")


def test_provisioning_log_is_filterable_in_the_admin_api(
    scim: Scim, admin_api: httpx.Client
) -> None:
    """?user=, ?outcome= and ?group= narrow the log an admin reads; a failed request is
    found under the user or group it was about (named from its body)."""
    create_user(scim, "alpha@fab.example")
    scim.client.post("/Users", json=entra_user("alpha@fab.example"))  # 409
    create_group(scim, "Readers")
    failed = admin_api.get("/provisioning/log", params={"outcome": "failed"}).json()
    assert [(e["operation"], e["status"], e["scim_type"]) for e in failed] == [
        ("create user", 409, "uniqueness")
    ]
    alpha = admin_api.get("/provisioning/log", params={"user": "ALPHA@fab"}).json()
    assert [(e["operation"], e["status"]) for e in alpha] == [
        ("create user", 409),
        ("create user", 201),
    ]
    readers = admin_api.get("/provisioning/log", params={"group": "Readers"}).json()
    assert [(e["operation"], e["outcome"]) for e in readers] == [("create group", "success")]


def test_cli_shows_the_scim_url_and_the_provisioning_log(
    scim: Scim, settings: Settings, tmp_path: Path
) -> None:
    """`keystead idp show` and `keystead provisioning log --json` read the same facts."""
    import json
    import os
    import subprocess

    from tests.conftest import keystead_command

    create_user(scim, "cli@fab.example")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")},
        "KEYSTEAD_DATABASE_URL": settings.database_url or "",
        "KEYSTEAD_MASTER_KEY": settings.master_key.get_secret_value()
        if settings.master_key
        else "",
        "KEYSTEAD_DATA_DIR": str(tmp_path),
    }

    def run(*args: str) -> object:
        done = subprocess.run(
            [keystead_command(), *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    shown = run("idp", "show")
    assert isinstance(shown, dict)
    assert shown["enabled"] is True
    assert shown["scim_url"].endswith(f"/{scim.account_id}/api/v3/scim")
    assert scim.token not in json.dumps(shown)
    log = run("provisioning", "log", "--user", "cli@fab.example")
    assert isinstance(log, list)
    assert [(e["operation"], e["outcome"]) for e in log] == [("create user", "success")]


def test_oversized_body_is_413_declared_or_streamed_and_nothing_is_created(scim: Scim) -> None:
    """Over the 1 MiB limit: 413 whether Content-Length says so or the body streams in."""
    body = json.dumps(
        {"schemas": [CORE_USER], "userName": "big@fab.example", "displayName": "x" * (1 << 20)}
    ).encode()
    declared = scim.client.post("/Users", content=body)
    assert_error(declared, 413)
    assert "limit" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    streamed = scim.client.post("/Users", content=chunks())
    assert_error(streamed, 413)
    found = scim.client.get("/Users", params={"filter": 'userName eq "big@fab.example"'})
    assert found.json()["totalResults"] == 0
    # Both refusals are in the provisioning log; a caller without the token writes nothing.
    anonymous = httpx.post(f"{scim.base}/Users", content=body, timeout=30)
    assert_error(anonymous, 413)
    assert _failures(scim) == [("create user", 413), ("create user", 413)]


def test_nul_character_is_400_and_nothing_is_created(scim: Scim) -> None:
    body = json.dumps({"schemas": [CORE_USER], "userName": "nul\u0000@fab.example"}).encode()
    response = scim.client.post("/Users", content=body)
    assert_error(response, 400, "invalidValue")
    assert "NUL" in response.json()["detail"]
    listed = scim.client.get("/Users")
    assert listed.json()["totalResults"] == 0
    assert _failures(scim) == [("create user", 400)]


def _failures(scim: Scim) -> list[tuple[str, int]]:
    with scim.runtime.db.read() as s:
        events = s.scalars(
            select(ProvisioningEvent)
            .where(ProvisioningEvent.account_id == scim.account_id)
            .where(ProvisioningEvent.outcome == "failed")
            .order_by(ProvisioningEvent.id)
        )
        return [(e.operation, e.status) for e in events]


def test_proxy_addresses_mapped_to_other_emails_are_kept(scim: Scim) -> None:
    """Entra's default mapping sends proxyAddresses as emails of type "other": values like
    "SMTP:…" and "X500:…", which are not e-mail addresses. They are stored and read back."""
    proxies = ["SMTP:ana@fab.example", "smtp:ana.alias@fab.example", "X500:/o=ExchangeLabs/ou=x"]
    created = scim.client.post(
        "/Users",
        json={
            "schemas": [CORE_USER],
            "userName": "ana@fab.example",
            "emails": [
                {"type": "work", "value": "ana@fab.example", "primary": True},
                *({"type": "other", "value": value} for value in proxies[:1]),
            ],
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    patched = scim.patch(
        f"/Users/{user_id}",
        {"op": "Add", "path": 'emails[type eq "other"].value', "value": proxies[1]},
    )
    assert patched.status_code in (200, 204), patched.text
    replaced = scim.patch(
        f"/Users/{user_id}",
        {"op": "Replace", "path": 'emails[type eq "other"].value', "value": proxies[2]},
    )
    assert replaced.status_code in (200, 204), replaced.text
    emails = scim.client.get(f"/Users/{user_id}").json()["emails"]
    assert {"type": "work", "value": "ana@fab.example", "primary": True} in emails
    assert any(e.get("value") == proxies[2] for e in emails), emails
