"""Crash safety: `kill -9` of the server in the middle of a burst of SCIM writes and of
admin writes. After a restart every request that was answered 2xx is there, and nothing is
half-applied (a user without its auto-provisioned key, a membership of a user that is not
there, a dataset without its first key)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from keystead.accounts import service as accounts
from keystead.audit import Actor
from keystead.idp import service as idp
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage.models import (
    ApiKey,
    Dataset,
    DatasetKey,
    DirectoryGroup,
    DirectoryMembership,
    DirectoryUser,
)
from tests.conftest import LiveServer, start_server, stop_server
from tests.support.accounts import FirstAccount
from tests.support.scim import CORE_GROUP, PATCH, entra_user

CLIENTS = 6
ENOUGH = 30  # acknowledged writes before the kill
ACTOR = Actor.cli()


def burst(
    server: LiveServer,
    work: Callable[[httpx.Client, int, int], None],
    acknowledged: Callable[[], int],
) -> None:
    """``CLIENTS`` threads call ``work(client, thread, n)`` for n = 0, 1, … until the server
    is killed under them, once ``acknowledged()`` writes were answered (each call counts
    what was acknowledged itself), with requests in flight."""
    stop = threading.Event()
    failures: list[AssertionError] = []

    def loop(slot: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                try:
                    work(client, slot, n)
                except httpx.TransportError:
                    return  # the server is gone: whatever was not answered is unknown
                except AssertionError as exc:
                    failures.append(exc)
                    return
                n += 1

    threads = [threading.Thread(target=loop, args=(slot,)) for slot in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while acknowledged() < ENOUGH and time.monotonic() < deadline and not failures:
        time.sleep(0.05)
    server.process.kill()  # SIGKILL: no shutdown, no flush, no rollback by Keystead
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not failures, failures[0]


@pytest.fixture
def scim_token(runtime: Runtime, first_account: FirstAccount) -> str:
    account_id = uuid.UUID(first_account.customer_id)
    with runtime.db.write() as s:
        account = accounts.get_account(s, account_id)
        token = idp.rotate_scim_token(s, account, actor=ACTOR).token
        idp.set_enabled(s, account, True, actor=ACTOR, master=runtime.master)
    return token


def test_a_killed_server_loses_no_acknowledged_scim_write_and_applies_none_by_half(
    runtime: Runtime,
    settings: Settings,
    tmp_path: Path,
    first_account: FirstAccount,
    scim_token: str,
) -> None:
    server = start_server(settings, tmp_path / "first.log")
    base = f"/{first_account.customer_id}/api/v3/scim"
    headers = {"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"}
    group = httpx.post(
        f"{server.url}{base}/Groups",
        headers=headers,
        json={"schemas": [CORE_GROUP], "displayName": "Payments", "members": []},
        timeout=10,
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    created: dict[str, str] = {}  # userName → id, for every 201
    joined: set[str] = set()  # user ids whose membership PATCH was answered 204

    def work(client: httpx.Client, slot: int, n: int) -> None:
        name = f"crash-{slot}-{n}@example.com"
        made = client.post(f"{base}/Users", headers=headers, json=entra_user(name))
        assert made.status_code == 201, made.text
        created[name] = made.json()["id"]
        member = {"op": "add", "path": "members", "value": [{"value": created[name]}]}
        patched = client.patch(
            f"{base}/Groups/{group_id}",
            headers=headers,
            json={"schemas": [PATCH], "Operations": [member]},
        )
        assert patched.status_code == 204, patched.text
        joined.add(created[name])

    burst(server, work, lambda: len(joined))
    assert len(joined) >= ENOUGH

    restarted = start_server(settings, tmp_path / "second.log")
    try:
        with runtime.db.read() as s:
            rows = s.execute(select(DirectoryUser.user_name, DirectoryUser.id))
            users = {row[0]: row[1] for row in rows}
            keyless = s.scalar(
                select(func.count())
                .select_from(DirectoryUser)
                .outerjoin(ApiKey, ApiKey.directory_user_id == DirectoryUser.id)
                .where(ApiKey.id.is_(None))
            )
            members = set(
                s.scalars(
                    select(DirectoryMembership.user_id)
                    .join(DirectoryGroup, DirectoryGroup.id == DirectoryMembership.group_id)
                    .where(DirectoryGroup.display_name == "Payments")
                )
            )
        for name, user_id in created.items():
            assert str(users.get(name)) == user_id, f"{name} was acknowledged and is gone"
        assert keyless == 0, "a user was stored without its auto-provisioned key"
        assert {uuid.UUID(u) for u in joined} <= members, "an acknowledged membership is gone"
        # The restarted server serves what survived.
        listed = httpx.get(
            f"{restarted.url}{base}/Groups/{group_id}", headers=headers, timeout=10
        ).json()
        assert {m["value"] for m in listed["members"]} == {str(u) for u in members}
    finally:
        stop_server(restarted)


def test_a_killed_server_loses_no_acknowledged_admin_write_and_applies_none_by_half(
    runtime: Runtime, settings: Settings, tmp_path: Path, first_account: FirstAccount
) -> None:
    server = start_server(settings, tmp_path / "first.log")
    headers = {"Authorization": f"Bearer {first_account.admin_token}"}
    created: set[str] = set()

    def work(client: httpx.Client, slot: int, n: int) -> None:
        name = f"DS_{slot}_{n}"
        made = client.post(
            "/api/admin/v1/datasets",
            headers=headers,
            json={"name": name, "type": "structured", "template": "ssn"},
        )
        assert made.status_code == 201, made.text
        created.add(name)

    burst(server, work, lambda: len(created))
    assert len(created) >= ENOUGH

    restarted = start_server(settings, tmp_path / "second.log")
    try:
        with runtime.db.read() as s:
            stored = set(s.scalars(select(Dataset.name).where(Dataset.name.like("DS_%"))))
            keyless = s.scalar(
                select(func.count())
                .select_from(Dataset)
                .outerjoin(DatasetKey, DatasetKey.dataset_id == Dataset.id)
                .where(DatasetKey.dataset_id.is_(None))
            )
        assert created <= stored, f"acknowledged and gone: {sorted(created - stored)[:5]}"
        assert keyless == 0, "a dataset was stored without its first key"
        listed = httpx.get(f"{restarted.url}/api/admin/v1/datasets", headers=headers, timeout=10)
        assert listed.status_code == 200, listed.text
    finally:
        stop_server(restarted)
