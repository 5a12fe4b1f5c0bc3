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
from keystead.audit import Actor
from keystead.idp import service as idp
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage.models import ApiKey, DirectoryGroup, DirectoryUser
from tests import factories as f
from tests.conftest import LiveServer, start_server, stop_server
from tests.functional.test_dataplane_certificates import def_keys as cert_def_keys
from tests.functional.test_dataplane_certificates import get, join_group, sign_in
from tests.functional.test_dataplane_signatures import Signer
from tests.support.accounts import FirstAccount
from tests.support.fake_entra import FakeEntra
from tests.support.scim import PATCH, entra_user
from tests.support.signin import client_key, provision, signin_account

pytestmark = pytest.mark.engines("postgresql")
DANA = "dana@contoso.example"
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
    admin_a = f"{nodes.a.url}/api/admin/v1/api-keys/{app.secrets.access_key_id}"

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


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        tenant.add_user(DANA, "pw-dana")
        yield tenant


def test_a_certificate_from_one_node_works_on_the_other_until_a_group_removal_there(
    nodes: Nodes, runtime: Runtime, entra: FakeEntra
) -> None:
    """Dana signs in at node A (the SSO exchange: key, secret and a certificate) and uses
    the data plane at node B; her removal from the group, through SCIM at node A, is obeyed
    by node B."""
    account = signin_account(runtime, nodes.a.url, entra)
    with runtime.db.write() as s:
        f.dataset(s, account.account_id, "SSN", runtime.master)
        f.dataset_group(s, account.account_id, "Payments", "SSN")
        scim_token = idp.rotate_scim_token(
            s, accounts.get_account(s, account.account_id), actor=ACTOR
        ).token
    dana = provision(runtime, account.account_id, DANA)
    join_group(runtime, account.account_id, "Payments", dana)
    signed = sign_in(nodes.a, account, dana, client_key(), entra.token_for(DANA))
    at_b = Signer(nodes.b.url, signed.signer.key_id, signed.signer.secret)
    assert get(at_b, cert_def_keys(at_b, signed.cert)).status_code == 200

    with runtime.db.read() as s:
        group_id = s.scalars(select(DirectoryGroup.id)).one()
    removed = httpx.patch(
        f"{nodes.a.url}/{account.account_id}/api/v3/scim/Groups/{group_id}",
        json={
            "schemas": [PATCH],
            "Operations": [{"op": "remove", "path": f'members[value eq "{dana.user_id}"]'}],
        },
        headers={"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"},
        timeout=10,
    )
    assert removed.status_code == 204, removed.text
    after_bound(time.monotonic())
    refused = get(at_b, cert_def_keys(at_b, signed.cert))
    assert refused.status_code != 200, "node B served a membership node A had removed"


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
