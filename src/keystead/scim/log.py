"""The provisioning log: what each SCIM request did, for the admin reading Entra's log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from keystead.storage.driver import DriverStatement
from keystead.storage.models import ProvisioningEvent
from keystead.storage.types import as_utc, utcnow

# Every column but the serial id, bound by name (the time too): the statement also compiles
# once for a driver connection (`storage.driver`), as the SSO exchange runs it.
_TABLE = cast(Table, ProvisioningEvent.__table__)
INSERT = _TABLE.insert().values({c.name: bindparam(c.name) for c in _TABLE.c if not c.primary_key})
SIGN_IN = "sso"  # the operation of sign-in exchanges; every other one is directory sync


def record(
    unit: Session | Connection,
    *,
    account_id: uuid.UUID,
    method: str,
    operation: str,
    resource_type: str | None,
    resource_id: str | None,
    resource_name: str | None,
    status: int,
    scim_type: str | None = None,
    detail: str | None = None,
    compiled: DriverStatement | None = None,
) -> None:
    """Write the entry in the current transaction (one INSERT: it commits or rolls back
    with the request's own writes); ``compiled``, :data:`INSERT` compiled for the unit's
    dialect, runs it on the driver connection."""
    entry = {
        "account_id": account_id,
        "at": utcnow(),
        "method": method,
        "operation": operation,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "resource_name": (resource_name or "")[:256] or None,
        "outcome": "success" if status < 400 else "failed",
        "status": status,
        "scim_type": scim_type,
        "detail": (detail or "")[:2000] or None,
    }
    if compiled is None:
        unit.execute(INSERT, entry)
    else:
        connection = unit.connection() if isinstance(unit, Session) else unit
        compiled.run(connection.connection.driver_connection, entry)


def list_events(
    session: Session,
    *,
    account_id: uuid.UUID,
    user: str | None = None,
    group: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[ProvisioningEvent]:
    """Newest first. ``user``/``group`` match part of the resource's name (case-insensitive)
    or its whole id; ``kind`` is
    ``scim`` (directory sync) or ``sso`` (sign-in exchanges); ``since`` is inclusive,
    ``until`` exclusive."""
    query = select(ProvisioningEvent).where(ProvisioningEvent.account_id == account_id)
    for resource_type, wanted in (("User", user), ("Group", group)):
        if wanted:
            query = query.where(
                ProvisioningEvent.resource_type == resource_type,
                ProvisioningEvent.resource_name.icontains(wanted.strip(), autoescape=True)
                | (ProvisioningEvent.resource_id == wanted.strip()),
            )
    if outcome:
        query = query.where(ProvisioningEvent.outcome == outcome)
    if since is not None:
        since = as_utc(since, what="since")
        query = query.where(ProvisioningEvent.at >= since)
    if until is not None:
        until = as_utc(until, what="until")
        query = query.where(ProvisioningEvent.at < until)
    if kind == SIGN_IN:
        query = query.where(ProvisioningEvent.operation == SIGN_IN)
    elif kind == "scim":
        query = query.where(ProvisioningEvent.operation != SIGN_IN)
    if before_id is not None:
        query = query.where(ProvisioningEvent.id < before_id)
    return list(session.scalars(query.order_by(ProvisioningEvent.id.desc()).limit(limit)))
