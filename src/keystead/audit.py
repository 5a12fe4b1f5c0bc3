"""The audit log: who changed what, when, with before/after where it helps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import String, Table, select
from sqlalchemy.orm import Session

from keystead.storage.models import AuditEvent
from keystead.storage.types import as_utc

ActorType = Literal["admin", "cli", "scim", "system", "anonymous"]


@dataclass(frozen=True)
class Actor:
    """Who is making a change."""

    type: ActorType
    id: str | None = None
    label: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        import getpass

        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            user = "unknown"
        return cls("cli", None, f"cli:{user}")

    @classmethod
    def system(cls) -> Actor:
        return cls("system", None, "system")


_TABLE = cast(Table, AuditEvent.__table__)
_INSERT = _TABLE.insert()
# actor_label and subject_label are columns of the same length.
_LABEL_LENGTH = cast(String, _TABLE.c.subject_label.type).length or 256


def _label(text: str | None) -> str | None:
    """A label describes its actor or subject and may be cut to fit its column (an admin's
    254-character email and a 200-character token name make a longer one): '…' marks it.
    The ids beside it identify; they are never cut."""
    if text is None or len(text) <= _LABEL_LENGTH:
        return text
    return text[: _LABEL_LENGTH - 1] + "\u2026"


def record(
    session: Session,
    *,
    account_id: uuid.UUID | None,
    actor: Actor,
    action: str,
    subject_type: str | None = None,
    subject_id: str | uuid.UUID | None = None,
    subject_label: str | None = None,
    detail: dict[str, Any] | None = None,
    immediate: bool = False,
) -> None:
    """Record an audit event in the current transaction (it commits with the change).

    By default it joins the unit of work; ``immediate`` writes it at once with one INSERT
    (no ORM object, no flush), for hot paths whose other writes are not pending in the
    session either.
    """
    row = {
        "account_id": account_id,
        "actor_type": actor.type,
        "actor_id": actor.id,
        "actor_label": _label(actor.label),
        "action": action,
        "subject_type": subject_type,
        "subject_id": str(subject_id) if subject_id is not None else None,
        "subject_label": _label(subject_label),
        "detail": detail or {},
    }
    if immediate:
        session.connection().execute(_INSERT, row)
    else:
        session.add(AuditEvent(**row))


@dataclass(frozen=True)
class Subject:
    """What an event is about: the account it belongs to, its kind, id and label."""

    account_id: uuid.UUID | None
    type: str
    id: str | uuid.UUID
    label: str | None


def record_about(
    session: Session,
    subject: Subject,
    actor: Actor,
    action: str,
    detail: dict[str, Any] | None = None,
    *,
    immediate: bool = False,
) -> None:
    """``record()`` an event about ``subject``."""
    record(
        session,
        account_id=subject.account_id,
        actor=actor,
        action=action,
        subject_type=subject.type,
        subject_id=subject.id,
        subject_label=subject.label,
        detail=detail,
        immediate=immediate,
    )


def list_events(
    session: Session,
    *,
    account_id: uuid.UUID,
    limit: int = 100,
    before_id: int | None = None,
    action_prefix: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
) -> list[AuditEvent]:
    """Newest first; page with ``before_id`` (the smallest id of the previous page).
    ``actor`` is part of the actor's label (an admin's email), case-insensitive."""
    query = select(AuditEvent).where(AuditEvent.account_id == account_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if action_prefix:
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    if since is not None:
        query = query.where(AuditEvent.at >= as_utc(since, what="since"))
    if until is not None:
        query = query.where(AuditEvent.at < as_utc(until, what="until"))
    if actor:
        query = query.where(AuditEvent.actor_label.icontains(actor, autoescape=True))
    return list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))
