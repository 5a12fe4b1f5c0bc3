"""An account's IDP integration: enabling it and the SCIM secret token.

The SCIM token is shown once, stored as a SHA-256 hash and compared in constant time;
rotating it replaces the hash, so the old token stops working at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from keystead import audit
from keystead.audit import Actor
from keystead.crypto import tokens
from keystead.errors import Forbidden, Unauthenticated
from keystead.storage.models import Account, IdpSettings

__all__ = ["IdpSettings"]
from keystead.storage.types import utcnow

SCIM_TOKEN_PREFIX = "scim_"  # noqa: S105 - a public prefix, not a secret


@dataclass(frozen=True)
class NewScimToken:
    token: str
    hint: str


def settings_of(session: Session, account_id: uuid.UUID) -> IdpSettings:
    """The account's settings (a disabled default when never configured)."""
    found = session.get(IdpSettings, account_id)
    return found if found is not None else IdpSettings(account_id=account_id, enabled=False)


def _require_enterprise(account: Account) -> None:
    if account.plan != "enterprise":
        raise Forbidden(
            f"IDP integration needs the enterprise plan; account {account.id} is on "
            f"{account.plan!r}"
        )


def set_enabled(session: Session, account: Account, enabled: bool, *, actor: Actor) -> IdpSettings:
    if enabled:
        _require_enterprise(account)
    settings = session.get(IdpSettings, account.id)
    if settings is None:
        settings = IdpSettings(account_id=account.id, enabled=False)
        session.add(settings)
    if settings.enabled != enabled:
        settings.enabled, settings.updated_at = enabled, utcnow()
        audit.record(
            session,
            account_id=account.id,
            actor=actor,
            action="idp.enabled" if enabled else "idp.disabled",
            subject_type="account",
            subject_id=account.id,
            subject_label=account.name,
        )
    session.flush()
    return settings


def rotate_scim_token(session: Session, account: Account, *, actor: Actor) -> NewScimToken:
    """Issue a new SCIM secret token; any previous one stops working at once."""
    _require_enterprise(account)
    settings = session.get(IdpSettings, account.id)
    if settings is None:
        settings = IdpSettings(account_id=account.id, enabled=False)
        session.add(settings)
    secret = SCIM_TOKEN_PREFIX + tokens.random_secret(32)
    rotated = settings.scim_token_hash is not None
    settings.scim_token_hash = tokens.token_hash(secret)
    settings.scim_token_hint = secret[: len(SCIM_TOKEN_PREFIX) + 4]
    settings.scim_token_created_at = settings.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        account_id=account.id,
        actor=actor,
        action="idp.scim_token_rotated" if rotated else "idp.scim_token_created",
        subject_type="account",
        subject_id=account.id,
        subject_label=account.name,
    )
    return NewScimToken(secret, settings.scim_token_hint)


def check_scim_token(settings: IdpSettings | None, presented: str | None) -> None:
    """Raise Unauthenticated unless ``presented`` is this account's current SCIM token."""
    check_scim_token_hash(settings.scim_token_hash if settings is not None else None, presented)


def check_scim_token_hash(expected: str | None, presented: str | None) -> None:
    """The same check against the stored hash itself (the SCIM hot path reads only it)."""
    if not presented:
        raise Unauthenticated("a SCIM secret token is required (Authorization: Bearer …)")
    digest = tokens.token_hash(presented)
    if expected is None or not tokens.same(expected, digest):
        raise Unauthenticated("the SCIM secret token is not valid for this account")
