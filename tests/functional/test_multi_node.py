"""Several nodes on one PostgreSQL behave as one service. Two `keystead serve` processes on
loopback ports share the suite's database: a change made through node A is obeyed by node
B on every call that starts 100 ms after it committed (no node keeps a copy of who may do
what: access, `enabled`, `suspended` and memberships are read on every request), SCIM
writes through both at once lose nothing, and an admin session opened on one node works
on the other."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from keystead.accounts import service as accounts
from keystead.apikeys.service import signing_key_context
from keystead.audit import Actor
from keystead.idp import service as idp
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage.models import ApiKey, DirectoryUser
from tests import factories as f
from tests.conftest import LiveServer, start_server, stop_server
from tests.functional.test_dataplane_signatures import Signer
from tests.support.accounts import FirstAccount
from tests.support.scim import CORE_GROUP, PATCH, entra_user

pytestmark = pytest.mark.engines("postgresql")
BOUND_S = 0.1  # a change is obeyed everywhere by calls that start this long after it
ACTOR = Actor.cli()


@dataclass
class Nodes:
    a: LiveServer
    b: LiveServer
    customer_id: str
    admin: dict[str, str]  # the admin API's headers
    scim: dict[str, str]  # SCIM's headers

    def scim_base(self, node: LiveServer) -> str:
        return f"{node.url}/{self.customer_id}/api/v3/scim"


@pytest.fixture
def nodes(
    runtime: Runtime, settings: Settings, tmp_path: Path, first_account: FirstAccount
) -> Iterator[Nodes]:
    account_id = uuid.UUID(first_account.customer_id)
    with runtime.db.write() as s:
        account = accounts.get_account(s, account_id)
        token = idp.rotate_scim_token(s, account, actor=ACTOR).token
        idp.set_enabled(s, account, True, actor=ACTOR, master=runtime.master)
    a = start_server(settings, tmp_path / "a.log")
    try:
        b = start_server(settings, tmp_path / "b.log")
    except BaseException:
        stop_server(a)
        raise
    try:
        yield Nodes(
            a,
            b,
            first_account.customer_id,
            {"Authorization": f"Bearer {first_account.admin_token}"},
            {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        )
    finally:
        stop_server(a)
        stop_server(b)


def def_keys(signer: Signer, dataset: str = "SSN") -> int:
    prepared = signer.prepare(
        "GET", f"/api/v0/fpe/def_keys?ffs_name={dataset}&papi={signer.key_id}"
    )
    return httpx.get(
        signer.base_url + prepared.target, headers=prepared.headers, timeout=10
    ).status_code


def after_bound(committed_at: float) -> None:
    time.sleep(max(0.0, committed_at + BOUND_S - time.monotonic()))


def test_grants_and_key_state_changed_on_one_node_are_obeyed_by_the_other(
    nodes: Nodes, runtime: Runtime, first_account: FirstAccount
) -> None:
    account_id = uuid.UUID(first_account.customer_id)
    with runtime.db.write() as s:
        f.dataset(s, account_id, "SSN", runtime.master)
        app = f.manual_key(s, account_id, runtime.master, "app", datasets=("SSN",))
    at_b = Signer(nodes.b.url, app.secrets.access_key_id, app.secrets.secret_signing_key)
    assert def_keys(at_b) == 200
    admin_a = f"{nodes.a.url}/api/admin/v1/api-keys/app"

    def change_at_a(method: str, path: str, body: dict[str, object]) -> float:
        response = httpx.request(method, admin_a + path, json=body, headers=nodes.admin, timeout=10)
        assert response.status_code == 200, response.text
        return time.monotonic()

    after_bound(change_at_a("POST", "/revoke", {"datasets": ["SSN"]}))
    assert def_keys(at_b) != 200, "node B served a grant node A had revoked"
    after_bound(change_at_a("POST", "/grants", {"datasets": ["SSN"]}))
    assert def_keys(at_b) == 200
    after_bound(change_at_a("PATCH", "", {"enabled": False}))
    assert def_keys(at_b) != 200, "node B served a key node A had disabled"
    after_bound(change_at_a("PATCH", "", {"enabled": True}))
    assert def_keys(at_b) == 200
    after_bound(change_at_a("POST", "/suspend", {}))
    assert def_keys(at_b) != 200, "node B served a key node A had suspended"


def test_a_user_removed_from_a_group_on_one_node_is_refused_by_the_other(
    nodes: Nodes, runtime: Runtime, first_account: FirstAccount
) -> None:
    account_id = uuid.UUID(first_account.customer_id)
    with runtime.db.write() as s:
        f.dataset(s, account_id, "SSN", runtime.master)
        f.dataset_group(s, account_id, "Payments", "SSN")
    scim_a = nodes.scim_base(nodes.a)
    user = httpx.post(
        f"{scim_a}/Users", json=entra_user("dana@example.com"), headers=nodes.scim, timeout=10
    )
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    group = httpx.post(
        f"{scim_a}/Groups",
        json={
            "schemas": [CORE_GROUP],
            "displayName": "Payments",
            "members": [{"value": user_id}],
        },
        headers=nodes.scim,
        timeout=10,
    )
    assert group.status_code == 201, group.text
    with runtime.db.read() as s:
        key = s.scalars(select(ApiKey).where(ApiKey.directory_user_id == uuid.UUID(user_id))).one()
    secret = runtime.master.unwrap(key.wrapped_signing_key, signing_key_context(key.id)).decode()
    at_b = Signer(nodes.b.url, key.access_key_id, secret)
    assert def_keys(at_b) == 200
    removed = httpx.patch(
        f"{scim_a}/Groups/{group.json()['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [{"op": "remove", "path": f'members[value eq "{user_id}"]'}],
        },
        headers=nodes.scim,
        timeout=10,
    )
    assert removed.status_code == 204, removed.text
    after_bound(time.monotonic())
    assert def_keys(at_b) != 200, "node B served a membership node A had removed"


def test_scim_writes_through_both_nodes_at_once_lose_nothing(
    nodes: Nodes, runtime: Runtime, first_account: FirstAccount
) -> None:
    created: list[str] = []
    failures: list[str] = []

    def provision(node: LiveServer, prefix: str) -> None:
        with httpx.Client(base_url=nodes.scim_base(node), headers=nodes.scim, timeout=30) as c:
            for n in range(40):
                # Every user twice, once through each node: one 201, one 409, never both.
                name = f"user{n}@example.com"
                answer = c.post("/Users", json=entra_user(name))
                if answer.status_code == 201:
                    created.append(name)
                elif answer.status_code != 409:
                    failures.append(f"{prefix} {name}: {answer.status_code} {answer.text}")

    threads = [
        threading.Thread(target=provision, args=(node, prefix))
        for node, prefix in ((nodes.a, "A"), (nodes.b, "B"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures[:3]
    assert sorted(created) == sorted(f"user{n}@example.com" for n in range(40))
    with runtime.db.read() as s:
        stored = s.scalar(select(func.count()).select_from(DirectoryUser))
        keys = s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.auto_provisioned))
    assert stored == 40
    assert keys == 40


def test_an_admin_session_opened_on_one_node_works_on_the_other(
    nodes: Nodes, first_account: FirstAccount
) -> None:
    signed_in = httpx.post(
        f"{nodes.a.url}/api/admin/v1/session",
        json={"email": first_account.admin_email, "password": first_account.admin_password},
        timeout=10,
    )
    assert signed_in.status_code == 200, signed_in.text
    cookie = signed_in.cookies["keystead_session"]
    csrf = signed_in.json()["csrf_token"]
    on_b = httpx.Client(
        base_url=f"{nodes.b.url}/api/admin/v1",
        headers={"Cookie": f"keystead_session={cookie}", "X-CSRF-Token": csrf},
        timeout=10,
    )
    with on_b:
        assert on_b.get("/session").status_code == 200
        made = on_b.post(
            "/datasets", json={"name": "PAN", "type": "structured", "template": "digits"}
        )
        assert made.status_code == 201, made.text
        # Signed out on B: the session is gone on A too.
        assert on_b.delete("/session").status_code in (200, 204)
    again = httpx.get(
        f"{nodes.a.url}/api/admin/v1/session",
        headers={"Cookie": f"keystead_session={cookie}"},
        timeout=10,
    )
    assert again.status_code == 401
