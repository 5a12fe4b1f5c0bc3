"""Retention: what is older than its setting goes, in batches, by command or by itself;
the audit log stays unless the operator says otherwise."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from keystead import retention
from keystead.audit import Actor
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage.models import (
    AuditEvent,
    ProvisioningEvent,
    SignInFailure,
    UsageEvent,
)
from tests import factories as f
from tests.conftest import start_server, stop_server
from tests.functional.test_cli import Cli, cli  # noqa: F401 (the fixture)

NOW = datetime.now(UTC)
OLD, RECENT = NOW - timedelta(days=500), NOW - timedelta(hours=1)


@dataclass(frozen=True)
class Seeded:
    account_id: uuid.UUID
    old: int  # rows of each seeded kind that are past every default retention


def seed(runtime: Runtime, old: int = 3, recent: int = 2) -> Seeded:
    """Old and recent rows of each kind, in one account."""
    with runtime.db.write() as session:
        account_id = f.account(session, name=f"Retained {uuid.uuid4().hex[:6]}")

        def event(at: datetime) -> dict[str, object]:
            return {
                "account_id": account_id,
                "at": at,
                "method": "POST",
                "operation": "create_user",
                "outcome": "success",
                "status": 201,
            }

        def usage(at: datetime) -> dict[str, object]:
            return {
                "account_id": account_id,
                "reported_by": "key",
                "api_key": "key",
                "dataset": "SSN",
                "dataset_type": "structured",
                "action": "encrypt",
                "count": 1,
                "day": at.date(),
                "received_at": at,
            }

        def audit_row(at: datetime) -> dict[str, object]:
            return {"account_id": account_id, "at": at, "actor_type": "cli", "action": "x"}

        for make, model in (
            (event, ProvisioningEvent),
            (usage, UsageEvent),
            (audit_row, AuditEvent),
        ):
            rows = [make(OLD) for _ in range(old)] + [make(RECENT) for _ in range(recent)]
            session.execute(insert(model), rows)
        session.execute(
            insert(SignInFailure),
            [
                {
                    "scope": "email",
                    "subject": f"old{n}@{account_id}",
                    "count": 3,
                    "window_started_at": OLD,
                }
                for n in range(old)
            ]
            + [
                {
                    "scope": "email",
                    "subject": f"new{n}@{account_id}",
                    "count": 3,
                    "window_started_at": RECENT,
                }
                for n in range(recent)
            ],
        )
    return Seeded(account_id, old)


def counts(runtime: Runtime, account_id: uuid.UUID) -> dict[str, int]:
    with runtime.db.read() as session:

        def count(model: type, *where: object) -> int:
            query = select(func.count()).select_from(model)
            return int(session.scalar(query.where(*where)) or 0)  # type: ignore[arg-type]

        return {
            "provisioning": count(ProvisioningEvent, ProvisioningEvent.account_id == account_id),
            "usage": count(UsageEvent, UsageEvent.account_id == account_id),
            "audit": count(
                AuditEvent, AuditEvent.account_id == account_id, AuditEvent.action == "x"
            ),
            "sign_in": count(SignInFailure, SignInFailure.subject.like(f"%@{account_id}")),
        }


def test_prune_dry_run_shows_what_would_go_and_prune_deletes_only_that(
    cli: Cli,  # noqa: F811 (the fixture imported above)
    runtime: Runtime,
) -> None:
    seeded = seed(runtime)
    before = counts(runtime, seeded.account_id)
    assert before == {"provisioning": 5, "usage": 5, "audit": 5, "sign_in": 5}

    shown = {row["kind"]: row for row in cli.ok("prune", "--dry-run", "--json")}
    assert shown["provisioning log entries"]["due"] == 3
    assert shown["provisioning log entries"]["kept_days"] == 90
    assert shown["usage events"]["due"] == 3
    assert shown["refused sign-in counts"]["due"] == 3
    assert shown["audit events"] == {
        "kind": "audit events",
        "kept_days": None,
        "due": 0,
        "deleted": 0,
    }
    assert all(row["deleted"] == 0 for row in shown.values())
    assert counts(runtime, seeded.account_id) == before  # a dry run deletes nothing

    done = {row["kind"]: row["deleted"] for row in cli.ok("prune", "--json")}
    assert done["provisioning log entries"] == 3
    assert done["usage events"] == 3
    assert done["refused sign-in counts"] == 3
    assert done["audit events"] == 0
    assert counts(runtime, seeded.account_id) == {
        "provisioning": 2,
        "usage": 2,
        "audit": 5,  # kept: no audit retention is set
        "sign_in": 2,
    }
    # The operator chose to keep the audit log a year: the old events go, and the pruning
    # itself is audited.
    done = {
        row["kind"]: row["deleted"]
        for row in cli.ok("prune", "--json", env={"KEYSTEAD_RETENTION_AUDIT_DAYS": "365"})
    }
    assert done["audit events"] == 3
    assert counts(runtime, seeded.account_id)["audit"] == 2
    with runtime.db.read() as session:
        pruned = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "retention.pruned")
        ).all()
    assert {"audit events": 3} in pruned
    assert cli.ok("prune", "--json")[0]["deleted"] == 0  # nothing left to do


def test_pruning_goes_in_batches_until_nothing_old_is_left(
    runtime: Runtime, settings: Settings
) -> None:
    many = retention.BATCH * 2 + 17
    seeded = seed(runtime, old=many, recent=4)
    deleted = retention.prune(runtime.db, settings, actor=Actor.system())
    assert deleted["provisioning log entries"] == many
    assert deleted["usage events"] == many
    assert counts(runtime, seeded.account_id)["provisioning"] == 4
    assert counts(runtime, seeded.account_id)["usage"] == 4


def test_retention_of_zero_days_keeps_everything(runtime: Runtime, settings: Settings) -> None:
    seeded = seed(runtime)
    keep_all = settings.model_copy(
        update={
            "retention_provisioning_days": 0,
            "retention_usage_days": 0,
            "retention_sign_in_failures_days": 0,
        }
    )
    assert retention.prune(runtime.db, keep_all, actor=Actor.system()) == {}
    assert counts(runtime, seeded.account_id) == {
        "provisioning": 5,
        "usage": 5,
        "audit": 5,
        "sign_in": 5,
    }


@pytest.mark.engines("sqlite", "postgresql")
def test_the_server_prunes_by_itself(runtime: Runtime, settings: Settings, tmp_path: Path) -> None:
    seeded = seed(runtime)
    server = start_server(
        settings, tmp_path / "server.log", {"KEYSTEAD_PRUNE_INTERVAL_SECONDS": "1"}
    )
    # The server prunes one kind after another: wait for all of them, not the first.
    pruned = {"provisioning": 2, "usage": 2, "audit": 5, "sign_in": 2}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if counts(runtime, seeded.account_id) == pruned:
                break
            time.sleep(0.2)
        assert counts(runtime, seeded.account_id) == pruned
    finally:
        stop_server(server)
    assert '"event": "pruned"' in server.log()
