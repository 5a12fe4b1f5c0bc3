"""The audit log."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from keystead import audit
from keystead.admin.auth import Reader, RuntimeDep
from keystead.admin.params import BeforeId
from keystead.admin.schemas import AuditEventOut

router = APIRouter(tags=["audit"])


@dataclass(frozen=True)
class Wanted:
    """Which events a page of the audit log shows (``list_events``' filters)."""

    limit: Annotated[int, Query(ge=1, le=1000)] = 100
    before_id: Annotated[BeforeId, Query(alias="before")] = None
    action_prefix: Annotated[
        str | None, Query(alias="action", max_length=80, description="Action prefix")
    ] = None
    since: Annotated[datetime | None, Query(description="From this time (inclusive)")] = None
    until: Annotated[datetime | None, Query(description="Before this time")] = None
    actor: Annotated[
        str | None, Query(max_length=256, description="Part of the actor (an admin's email)")
    ] = None


@router.get("/audit")
def list_audit(
    principal: Reader, runtime: RuntimeDep, wanted: Annotated[Wanted, Depends()]
) -> list[AuditEventOut]:
    with runtime.db.read() as session:
        events = audit.list_events(session, account_id=principal.account_id, **asdict(wanted))
        return [AuditEventOut.of(e) for e in events]
