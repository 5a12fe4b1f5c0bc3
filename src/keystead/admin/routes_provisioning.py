"""The provisioning log: what each SCIM request from the identity provider did, and each
sign-in exchange."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from keystead.admin.auth import Reader, RuntimeDep
from keystead.admin.params import BeforeId
from keystead.admin.schemas import ProvisioningEventOut
from keystead.scim import log as provisioning_log

router = APIRouter(tags=["IDP integration"])


@dataclass(frozen=True)
class Wanted:
    """Which entries a page of the provisioning log shows (``list_events``' filters)."""

    user: Annotated[
        str | None, Query(max_length=256, description="Part of a userName, or a user's id")
    ] = None
    group: Annotated[
        str | None, Query(max_length=256, description="Part of a displayName, or a group's id")
    ] = None
    outcome: Annotated[Literal["success", "failed"] | None, Query()] = None
    kind: Annotated[
        Literal["scim", "sso"] | None,
        Query(description="scim: directory sync; sso: sign-in exchanges"),
    ] = None
    since: Annotated[datetime | None, Query(description="From this time (inclusive)")] = None
    until: Annotated[datetime | None, Query(description="Before this time")] = None
    limit: Annotated[int, Query(ge=1, le=1000)] = 100
    before_id: Annotated[BeforeId, Query(alias="before")] = None


@router.get("/provisioning/log")
def provisioning_events(
    principal: Reader, runtime: RuntimeDep, wanted: Annotated[Wanted, Depends()]
) -> list[ProvisioningEventOut]:
    runtime.sign_in_log.flush()  # this process's sign-ins, written before they are listed
    with runtime.db.read() as session:
        events = provisioning_log.list_events(
            session, account_id=principal.account_id, **asdict(wanted)
        )
        return [ProvisioningEventOut.of(e) for e in events]
