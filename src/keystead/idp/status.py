"""What Keystead has observed of an account's identity provider: the console's status
strip and the ticks of its setup guide.

Everything here is read from what happened (the provisioning log, the synced directory,
the last configuration test), never from what an admin says they did in Entra.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from keystead.directory import listing
from keystead.idp.service import settings_of
from keystead.scim.log import SIGN_IN
from keystead.storage.models import IdpSettings, ProvisioningEvent
from keystead.storage.types import utcnow

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class LastRequest:
    at: datetime
    operation: str
    outcome: str
    status: int
    resource: str | None
    detail: str | None


@dataclass(frozen=True)
class Status:
    window_start: datetime
    last_scim_request: LastRequest | None
    users: int
    groups: int
    failed_scim_requests: int  # in the window
    refused_sign_ins: int  # in the window
    # The setup guide's observations.
    scim_token_created_at: datetime | None
    connected_at: datetime | None  # last SCIM request with the current token (to the minute)
    refused_token_at: datetime | None  # last SCIM request with a missing or wrong token
    unverified_refusals: int  # sign-ins refused before the token's signature verified
    unverified_refusal_at: datetime | None
    last_test_at: datetime | None
    last_test_ok: bool | None  # None until tested again after the settings change
    last_sign_in_at: datetime | None


def _last(row: ProvisioningEvent | None) -> LastRequest | None:
    if row is None:
        return None
    return LastRequest(
        row.at, row.operation, row.outcome, row.status, row.resource_name, row.detail
    )


def of(session: Session, account_id: uuid.UUID, *, now: datetime | None = None) -> Status:
    now = now or utcnow()
    start = now - WINDOW
    settings = settings_of(session, account_id)
    events = select(ProvisioningEvent).where(ProvisioningEvent.account_id == account_id)
    last_scim = session.scalar(
        events.where(ProvisioningEvent.operation != SIGN_IN)
        .order_by(ProvisioningEvent.id.desc())
        .limit(1)
    )
    is_sign_in = case((ProvisioningEvent.operation == SIGN_IN, 1), else_=0)
    failures: dict[int, int] = dict(
        session.execute(
            select(is_sign_in, func.count())
            .where(
                ProvisioningEvent.account_id == account_id,
                ProvisioningEvent.outcome == "failed",
                ProvisioningEvent.at >= start,
            )
            .group_by(is_sign_in)
        ).all()
    )
    last_sign_in_at = session.scalar(
        select(func.max(ProvisioningEvent.at)).where(
            ProvisioningEvent.account_id == account_id,
            ProvisioningEvent.outcome == "success",
            ProvisioningEvent.operation == SIGN_IN,
        )
    )
    users, groups = listing.totals(session, account_id)
    return Status(
        window_start=start,
        last_scim_request=_last(last_scim),
        users=users,
        groups=groups,
        failed_scim_requests=int(failures.get(0, 0)),
        refused_sign_ins=int(failures.get(1, 0)),
        scim_token_created_at=settings.scim_token_created_at,
        connected_at=settings.scim_last_seen_at,
        refused_token_at=settings.scim_last_refused_at,
        unverified_refusals=settings.unverified_refusals or 0,
        unverified_refusal_at=settings.unverified_refusal_at,
        last_test_at=settings.last_test_at,
        last_test_ok=settings.last_test_ok,
        last_sign_in_at=last_sign_in_at,
    )


def record_test(session: Session, account_id: uuid.UUID, ok: bool) -> None:
    """Remember the outcome of "test configuration" for the setup guide."""
    settings = session.get(IdpSettings, account_id)
    if settings is not None:
        settings.last_test_at, settings.last_test_ok = utcnow(), ok
