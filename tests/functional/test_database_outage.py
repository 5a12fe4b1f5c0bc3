"""PostgreSQL stopped and started under load: while it is down every request is answered 503
at once (no hang, no 500), and Keystead recovers by itself when it is back, without a
restart. The test runs its own PostgreSQL server (tests/support/postgres.py), which it may
stop; the suite's shared one stays up for every other test."""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from keystead.runtime import open_runtime
from keystead.settings import Settings
from tests import factories as f
from tests.conftest import LiveServer, start_server, stop_server
from tests.functional.test_dataplane_signatures import Signer
from tests.support import accounts as support_accounts
from tests.support.postgres import PrivatePostgres

# A request that finds the database gone must be answered within this long; a hung one
# would wait for the client's own timeout (30 s).
PROMPT_S = 6.0


@dataclass
class Outage:
    server: LiveServer
    database: PrivatePostgres
    signer: Signer
    admin_token: str
    target: str


@pytest.fixture
def outage(engine_name: str, tmp_path: Path) -> Iterator[Outage]:
    """(``engine_name``: a run of the suite on SQLite only has no such test.)"""
    database = PrivatePostgres().create()
    settings = Settings(
        database_url=database.url,
        master_key=SecretStr(base64.b64encode(os.urandom(32)).decode()),
        data_dir=tmp_path / "data",
    )
    runtime = open_runtime(settings)
    first = support_accounts.first_account(runtime)
    with runtime.db.write() as session:
        account_id = uuid.UUID(first.customer_id)
        f.dataset(session, account_id, "SSN", runtime.master)
        app = f.manual_key(session, account_id, runtime.master, "app", datasets=("SSN",))
    runtime.close()
    server = start_server(settings, tmp_path / "server.log")
    signer = Signer(server.url, app.secrets.access_key_id, app.secrets.secret_signing_key)
    try:
        yield Outage(
            server,
            database,
            signer,
            first.admin_token,
            f"/api/v0/fpe/def_keys?ffs_name=SSN&papi={signer.key_id}",
        )
    finally:
        stop_server(server)
        database.destroy()


@pytest.mark.engines("postgresql")
def test_a_postgresql_restart_under_load_is_a_quick_503_and_heals_by_itself(
    outage: Outage,
) -> None:
    answers: list[tuple[float, float, int]] = []  # (sent at, seconds taken, status)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=outage.server.url, timeout=30) as client:
            while not stop.is_set():
                prepared = outage.signer.prepare("GET", outage.target)
                sent = time.monotonic()
                response = client.get(prepared.target, headers=prepared.headers)
                answers.append((sent, time.monotonic() - sent, response.status_code))
                if response.status_code != 200:
                    time.sleep(0.05)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        outage.database.stop()
        down_at = time.monotonic()
        time.sleep(3.0)
        with httpx.Client(base_url=outage.server.url, timeout=30) as admin:
            during = admin.get(
                "/api/admin/v1/datasets",
                headers={"Authorization": f"Bearer {outage.admin_token}"},
            )
        assert during.status_code == 503, during.text
        assert "database" in during.json()["message"]
        outage.database.start()
        up_at = time.monotonic()
        deadline = up_at + 20
        while time.monotonic() < deadline:
            if [a for a in answers if a[0] > up_at + 0.5 and a[2] == 200][:20]:
                break
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)

    statuses = {status for _, _, status in answers}
    assert statuses <= {200, 503}, f"answers other than 200 and 503: {statuses}"
    while_down = [a for a in answers if down_at + 0.5 < a[0] < up_at - 0.5]
    assert while_down, "no request was sent while the database was down"
    assert {status for _, _, status in while_down} == {503}
    slowest = max(seconds for _, seconds, _ in answers)
    assert slowest < PROMPT_S, f"a request took {slowest:.1f} s: it hung on the database"
    healed = [a for a in answers if a[0] > up_at and a[2] == 200]
    assert len(healed) >= 20, "the data plane did not recover after PostgreSQL came back"
    assert outage.server.process.poll() is None, "the server did not survive the outage"
