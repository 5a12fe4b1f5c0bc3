"""Usage reported by the Ubiq clients, summarised per day, dataset, key and action."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from keystead.admin.auth import Reader, RuntimeDep
from keystead.admin.schemas import UsageRowOut
from keystead.dataplane import events

router = APIRouter(tags=["usage"])


@router.get("/usage", response_model=list[UsageRowOut])
def usage_summary(
    principal: Reader,
    runtime: RuntimeDep,
    *,
    since: Annotated[date | None, Query(description="First day (UTC) to include")] = None,
    dataset: Annotated[str | None, Query(max_length=256)] = None,
    api_key: Annotated[str | None, Query(max_length=64, description="Access key id")] = None,
) -> list[UsageRowOut]:
    with runtime.db.read() as session:
        rows = events.summary(
            session, account_id=principal.account_id, since=since, dataset=dataset, api_key=api_key
        )
        return [UsageRowOut(**row.model_dump()) for row in rows]
