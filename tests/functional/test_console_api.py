"""The admin API the console reads, on the live server: paged key search, the synced
directory, the integration's observed status, dataset-group matches, usage by range and as
CSV, and the log filters."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from keystead.runtime import Runtime
from keystead.storage.models import ProvisioningEvent, UsageEvent
from tests.support.accounts import FirstAccount
from tests.support.scim import Scim, create_group, create_user


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def add_members(scim: Scim, group_id: str, *user_ids: str) -> None:
    response = scim.patch(
        f"/Groups/{group_id}",
        {"op": "add", "path": "members", "value": [{"value": u} for u in user_ids]},
    )
    assert response.status_code == 204, response.text


# --- API keys ---------------------------------------------------------------------------------


def test_api_keys_are_searched_filtered_and_paged(admin_api: httpx.Client, scim: Scim) -> None:
    ok(
        admin_api.post("/datasets", json={"name": "SSN", "type": "structured", "template": "ssn"}),
        201,
    )
    ok(admin_api.post("/dataset-groups", json={"name": "Payroll", "datasets": ["SSN"]}), 201)
    for name in ("billing-app", "Billing-batch", "reports"):
        ok(admin_api.post("/api-keys", json={"name": name, "datasets": ["SSN"]}), 201)
    dana = create_user(scim, "dana@fabrikam.example")
    create_user(scim, "lee@fabrikam.example", active=False)
    group = create_group(scim, "payroll")
    add_members(scim, group["id"], dana["id"])

    every = ok(admin_api.get("/api-keys"))
    assert every["total"] == 5
    assert [k["name"] for k in every["items"]] == [
        "Billing-batch",
        "billing-app",
        "dana@fabrikam.example",
        "lee@fabrikam.example",
        "reports",
    ]
    by_name = {k["name"]: k for k in every["items"]}
    assert by_name["dana@fabrikam.example"]["directory_user"] == "dana@fabrikam.example"
    assert by_name["dana@fabrikam.example"]["auto_provisioned"] is True
    assert by_name["dana@fabrikam.example"]["datasets_count"] == 1  # through "payroll"
    assert by_name["lee@fabrikam.example"]["datasets_count"] == 0
    assert by_name["reports"]["directory_user"] is None
    assert by_name["reports"]["datasets_count"] == 1

    billing = ok(admin_api.get("/api-keys", params={"q": "BILLING"}))
    assert billing["total"] == 2
    assert {k["name"] for k in billing["items"]} == {"billing-app", "Billing-batch"}
    kid = by_name["reports"]["access_key_id"]
    assert [k["name"] for k in ok(admin_api.get("/api-keys", params={"q": kid}))["items"]] == [
        "reports"
    ]
    # LIKE wildcards are plain characters in a search.
    assert ok(admin_api.get("/api-keys", params={"q": "%"}))["total"] == 0
    assert ok(admin_api.get("/api-keys", params={"q": "_"}))["total"] == 0

    kinds = {
        kind: {k["name"] for k in ok(admin_api.get("/api-keys", params={"kind": kind}))["items"]}
        for kind in ("manual", "auto", "enabled", "disabled")
    }
    assert kinds["auto"] == {"dana@fabrikam.example", "lee@fabrikam.example"}
    assert kinds["manual"] == {"billing-app", "Billing-batch", "reports"}
    assert kinds["disabled"] == {"lee@fabrikam.example"}
    assert len(kinds["enabled"]) == 4

    page = ok(admin_api.get("/api-keys", params={"limit": 2, "offset": 2}))
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [k["name"] for k in page["items"]] == ["dana@fabrikam.example", "lee@fabrikam.example"]
    assert ok(admin_api.get("/api-keys", params={"offset": 10}))["items"] == []
    for bad in ({"kind": "robots"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"q": "x" * 300}):
        assert admin_api.get("/api-keys", params=bad).status_code == 422, bad


# --- the directory -------------------------------------------------------------------------


def test_the_directory_lists_users_and_groups_with_keys_counts_and_matches(
    admin_api: httpx.Client, scim: Scim
) -> None:
    ok(admin_api.post("/datasets", json={"name": "Notes", "type": "unstructured"}), 201)
    ok(admin_api.post("/dataset-groups", json={"name": "HR Team", "datasets": ["Notes"]}), 201)
    users = [create_user(scim, f"user{n}@fabrikam.example") for n in range(3)]
    inactive = create_user(scim, "gone@fabrikam.example", active=False)
    hr = create_group(scim, "hr team")
    other = create_group(scim, "Engineering")
    add_members(scim, hr["id"], users[0]["id"], users[1]["id"])
    add_members(scim, other["id"], users[0]["id"])

    listed = ok(admin_api.get("/directory/users"))
    assert listed["total"] == 4
    names = [u["user_name"] for u in listed["items"]]
    assert names == sorted(names, key=str.casefold)
    first = next(u for u in listed["items"] if u["id"] == users[0]["id"])
    assert first["group_count"] == 2
    assert first["active"] is True
    assert first["api_key"]["name"] == "user0@fabrikam.example"
    assert first["api_key"]["enabled"] is True
    gone = next(u for u in listed["items"] if u["id"] == inactive["id"])
    assert gone["active"] is False
    assert gone["api_key"]["enabled"] is False

    assert ok(admin_api.get("/directory/users", params={"q": "USER1"}))["total"] == 1
    assert ok(admin_api.get("/directory/users", params={"active": "false"}))["total"] == 1
    assert ok(admin_api.get("/directory/users", params={"limit": 1, "offset": 1}))["total"] == 4

    groups = ok(admin_api.get("/directory/groups"))
    assert [
        (g["display_name"], g["member_count"], g["dataset_group"]) for g in groups["items"]
    ] == [
        ("Engineering", 1, None),
        ("hr team", 2, "HR Team"),
    ]
    assert ok(admin_api.get("/directory/groups", params={"matched": "true"}))["total"] == 1
    assert ok(admin_api.get("/directory/groups", params={"q": "ENGIN"}))["total"] == 1

    detail = ok(admin_api.get(f"/directory/users/{users[0]['id']}"))
    assert [g["display_name"] for g in detail["groups"]] == ["Engineering", "hr team"]
    group = ok(admin_api.get(f"/directory/groups/{hr['id']}", params={"limit": 1}))
    assert group["members"]["total"] == 2
    assert len(group["members"]["items"]) == 1
    for path in ("/directory/users/nope", f"/directory/groups/{uuid.uuid4()}"):
        assert admin_api.get(path).status_code == 404


def test_another_accounts_directory_is_not_listed_or_readable(
    admin_api: httpx.Client, scim: Scim, live_server: Any, runtime: Runtime
) -> None:
    from keystead.accounts import service as accounts
    from tests.factories import ACTOR
    from tests.support.accounts import admin_token

    user = create_user(scim, "dana@fabrikam.example")
    group = create_group(scim, "HR")
    with runtime.db.write() as s:
        other = accounts.create_account(s, name="B", plan="enterprise", actor=ACTOR)
    token = admin_token(runtime, other.id, "b@example.com")
    with httpx.Client(
        base_url=f"{live_server.url}/api/admin/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as b:
        assert ok(b.get("/directory/users"))["total"] == 0
        assert ok(b.get("/directory/groups"))["total"] == 0
        assert ok(b.get("/api-keys"))["total"] == 0
        assert b.get(f"/directory/users/{user['id']}").status_code == 404
        assert b.get(f"/directory/groups/{group['id']}").status_code == 404


# --- dataset groups ---------------------------------------------------------------------------


def test_a_dataset_groups_page_names_its_directory_matches_and_counts_keys(
    admin_api: httpx.Client, scim: Scim
) -> None:
    ok(
        admin_api.post("/datasets", json={"name": "SSN", "type": "structured", "template": "ssn"}),
        201,
    )
    ok(admin_api.post("/dataset-groups", json={"name": "Payroll", "datasets": ["SSN"]}), 201)
    alone = ok(admin_api.get("/dataset-groups/Payroll"))
    assert alone["matching_directory_groups"] == []
    assert alone["keys_with_access"] == 0

    ok(admin_api.post("/api-keys", json={"name": "batch", "dataset_groups": ["Payroll"]}), 201)
    a, b, c = (create_user(scim, f"{n}@fabrikam.example") for n in "abc")
    payroll = create_group(scim, "PAYROLL")
    twin = create_group(scim, "payroll")
    add_members(scim, payroll["id"], a["id"], b["id"])
    add_members(scim, twin["id"], b["id"], c["id"])

    detail = ok(admin_api.get("/dataset-groups/Payroll"))
    assert [
        (g["display_name"], g["member_count"]) for g in detail["matching_directory_groups"]
    ] == [
        ("PAYROLL", 2),
        ("payroll", 2),
    ]
    assert detail["keys_with_access"] == 4  # batch, and a, b (in both groups, once), c
    listed = ok(admin_api.get("/dataset-groups"))
    assert listed[0]["directory_groups"] == ["PAYROLL", "payroll"]


# --- the integration's status --------------------------------------------------------------


def test_the_status_counts_what_happened_in_the_last_day(
    admin_api: httpx.Client, scim: Scim, runtime: Runtime, first_account: FirstAccount
) -> None:
    before = ok(admin_api.get("/idp/status"))
    assert before["scim_token_created_at"] is not None
    assert before["connected_at"] is None  # no SCIM request yet with this token
    assert before["last_scim_request"] is None
    assert (before["users"], before["groups"]) == (0, 0)

    probe = scim.client.get("/Users", params={"filter": f'userName eq "{uuid.uuid4()}"'})
    assert probe.status_code == 200  # what Entra's Test Connection sends: a read, not logged
    seen = ok(admin_api.get("/idp/status"))
    assert seen["connected_at"] is not None
    assert seen["last_scim_request"] is None
    create_user(scim, "dana@fabrikam.example")
    create_group(scim, "HR")
    assert scim.client.post("/Users", json={"userName": ""}).status_code == 400
    assert scim.client.delete(f"/Users/{uuid.uuid4()}").status_code == 404

    status = ok(admin_api.get("/idp/status"))
    assert status["connected_at"] is not None
    assert (status["users"], status["groups"]) == (1, 1)
    assert status["failed_scim_requests"] == 2
    assert status["refused_sign_ins"] == 0
    last = status["last_scim_request"]
    assert (last["operation"], last["outcome"], last["status"]) == ("delete user", "failed", 404)

    # Failures older than a day drop out of the count.
    with runtime.db.write() as s:
        s.execute(
            update(ProvisioningEvent)
            .where(ProvisioningEvent.status == 404)
            .values(at=datetime.now(UTC) - timedelta(hours=25))
        )
    assert ok(admin_api.get("/idp/status"))["failed_scim_requests"] == 1

    # A new token: Entra has not connected with it yet.
    ok(admin_api.post("/idp/scim-token"))
    assert ok(admin_api.get("/idp/status"))["connected_at"] is None


# --- usage ------------------------------------------------------------------------------------


def _usage(
    runtime: Runtime, account_id: uuid.UUID, key: str, day: date, count: int, dataset: str
) -> None:
    with runtime.db.write() as s:
        s.add(
            UsageEvent(
                account_id=account_id,
                reported_by=key,
                api_key=key,
                dataset=dataset,
                dataset_type="structured",
                action="encrypt",
                count=count,
                day=day,
            )
        )


def test_usage_is_summarised_for_a_range_of_days_and_downloads_as_csv(
    admin_api: httpx.Client, runtime: Runtime, first_account: FirstAccount
) -> None:
    ok(
        admin_api.post("/datasets", json={"name": "SSN", "type": "structured", "template": "ssn"}),
        201,
    )
    key = ok(admin_api.post("/api-keys", json={"name": "=HYPERLINK(1)", "datasets": ["SSN"]}), 201)
    account = uuid.UUID(first_account.customer_id)
    kid = key["access_key_id"]
    for offset, count in ((0, 5), (1, 7), (9, 11)):
        _usage(runtime, account, kid, date(2026, 11, 20) - timedelta(days=offset), count, "SSN")

    rows = ok(admin_api.get("/usage", params={"since": "2026-11-19", "until": "2026-11-20"}))
    assert [(r["day"], r["count"], r["api_key_name"]) for r in rows] == [
        ("2026-11-20", 5, "=HYPERLINK(1)"),
        ("2026-11-19", 7, "=HYPERLINK(1)"),
    ]
    backwards = admin_api.get("/usage", params={"since": "2026-11-20", "until": "2026-11-01"})
    assert backwards.status_code == 422
    assert "before since" in backwards.json()["message"]

    exported = admin_api.get("/usage.csv", params={"until": "2026-11-19"})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(exported.text)))
    assert table[0] == [
        "day",
        "dataset",
        "dataset_type",
        "api_key",
        "api_key_name",
        "action",
        "count",
    ]
    assert [(r[0], r[6]) for r in table[1:]] == [("2026-11-19", "7"), ("2026-11-11", "11")]
    assert table[1][4] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert exported.text.splitlines()[1].startswith('"2026-11-19",')  # every cell quoted


def test_usage_sums_never_overflow(
    admin_api: httpx.Client, runtime: Runtime, first_account: FirstAccount
) -> None:
    """Clients may report counts up to 2**53 each; two thousand of them add up past a
    64-bit integer, which SQLite's SUM refuses. The summary still answers."""
    ok(
        admin_api.post("/datasets", json={"name": "SSN", "type": "structured", "template": "ssn"}),
        201,
    )
    kid = ok(admin_api.post("/api-keys", json={"name": "app", "datasets": ["SSN"]}), 201)[
        "access_key_id"
    ]
    account = uuid.UUID(first_account.customer_id)
    with runtime.db.write() as s:
        s.add_all(
            UsageEvent(
                account_id=account,
                reported_by=kid,
                api_key=kid,
                dataset="SSN",
                dataset_type="structured",
                action="encrypt",
                count=2**53,
                day=date(2026, 11, 20),
            )
            for _ in range(2000)
        )
    rows = ok(admin_api.get("/usage"))
    assert [r["count"] for r in rows] == [2**63 - 1]
    assert admin_api.get("/usage.csv").status_code == 200


# --- log filters ---------------------------------------------------------------------------


def test_log_filters_by_kind_time_range_and_actor(
    admin_api: httpx.Client, scim: Scim, first_account: FirstAccount
) -> None:
    create_user(scim, "dana@fabrikam.example")
    start = datetime.now(UTC) - timedelta(minutes=1)
    scim_only = ok(admin_api.get("/provisioning/log", params={"kind": "scim"}))
    assert {e["operation"] for e in scim_only} == {"create user"}
    assert ok(admin_api.get("/provisioning/log", params={"kind": "sso"})) == []
    assert ok(admin_api.get("/provisioning/log", params={"until": start.isoformat()})) == []
    assert len(ok(admin_api.get("/provisioning/log", params={"since": start.isoformat()}))) == 1

    ok(admin_api.post("/datasets", json={"name": "Notes", "type": "unstructured"}), 201)
    mine = ok(admin_api.get("/audit", params={"actor": first_account.admin_email.upper()}))
    assert [e["action"] for e in mine] == ["dataset.created"]
    assert ok(admin_api.get("/audit", params={"actor": "nobody"})) == []
    assert (
        ok(admin_api.get("/audit", params={"until": start.isoformat(), "action": "dataset."})) == []
    )
