"""The audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from keystead import audit
from keystead.admin.auth import Reader, RuntimeDep
from keystead.admin.schemas import AuditEventOut, BeforeId

router = APIRouter(tags=["audit"])


@router.get("/audit")
def list_audit(
    principal: Reader,
    runtime: RuntimeDep,
    *,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: BeforeId = None,
    action: Annotated[str | None, Query(max_length=80, description="Action prefix")] = None,
    since: Annotated[datetime | None, Query(description="From this time (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="Before this time")] = None,
    actor: Annotated[
        str | None, Query(max_length=256, description="Part of the actor (an admin's email)")
    ] = None,
) -> list[AuditEventOut]:
    with runtime.db.read() as session:
        events = audit.list_events(
            session,
            account_id=principal.account_id,
            limit=limit,
            before_id=before,
            action_prefix=action,
            since=since,
            until=until,
            actor=actor,
        )
        return [AuditEventOut.of(e) for e in events]
