"""An account's IDP integration: enabling it, the SCIM secret token, the sign-in settings
and the account's SSO certificate authority.

The SCIM token is shown once, stored as a SHA-256 hash and compared in constant time;
rotating it replaces the hash, so the old token stops working at once. The CA is created
when the integration is first enabled; its key is wrapped under the master key, bound to
the account.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.orm import Session

from keystead import audit
from keystead.audit import Actor
from keystead.crypto import tokens
from keystead.crypto.masterkey import MasterKey
from keystead.errors import Conflict, Forbidden, Unauthenticated
from keystead.idp.config import SignInChanges
from keystead.sso import certificates
from keystead.storage.models import Account, ApiKey, IdpSettings
from keystead.storage.types import utcnow

# They load httpx and joserfc, which only `check_configuration` needs (the CLI starts faster).
if TYPE_CHECKING:
    from keystead.idp.outbound import Fetch
    from keystead.idp.preflight import PreflightReport

__all__ = ["IdpSettings"]

SCIM_TOKEN_PREFIX = "scim_"  # noqa: S105 - a public prefix, not a secret


@dataclass(frozen=True)
class NewScimToken:
    token: str
    hint: str


def settings_of(session: Session, account_id: uuid.UUID) -> IdpSettings:
    """The account's settings (a disabled default when never configured)."""
    found = session.get(IdpSettings, account_id)
    return found if found is not None else IdpSettings(account_id=account_id, enabled=False)


ENTERPRISE = "enterprise"


def integration_active(plan: str, enabled: bool) -> bool:
    """Whether SCIM and sign-in are served for an account: the enterprise plan, and the
    integration switched on (a plan changed down leaves the switch as it was)."""
    return plan == ENTERPRISE and enabled


def _require_enterprise(account: Account) -> None:
    if account.plan != ENTERPRISE:
        raise Forbidden(
            f"IDP integration needs the enterprise plan; account {account.id} is on "
            f"{account.plan!r}"
        )


def ca_key_context(account_id: uuid.UUID) -> str:
    return f"sso-ca:{account_id}"


def _subject(account: Account) -> audit.Subject:
    return audit.Subject(account.id, "account", account.id, account.name)


def _stored(session: Session, account: Account) -> IdpSettings:
    settings = session.get(IdpSettings, account.id)
    if settings is None:
        settings = IdpSettings(account_id=account.id, enabled=False)
        session.add(settings)
        session.flush()
    return settings


def ensure_authority(session: Session, settings: IdpSettings, master: MasterKey) -> None:
    """Give the account its SSO certificate authority unless it has one."""
    if settings.ca_cert_pem is not None and settings.ca_key_wrapped is not None:
        return
    authority = certificates.new_authority(settings.account_id)
    settings.ca_cert_pem = authority.cert_pem
    settings.ca_key_wrapped = master.wrap(authority.key_der(), ca_key_context(settings.account_id))
    session.flush()


def set_enabled(
    session: Session, account: Account, enabled: bool, *, actor: Actor, master: MasterKey
) -> IdpSettings:
    if enabled:
        _require_enterprise(account)
    settings = _stored(session, account)
    if enabled:
        ensure_authority(session, settings, master)
    if settings.enabled != enabled:
        settings.enabled, settings.updated_at = enabled, utcnow()
        action = "idp.enabled" if enabled else "idp.disabled"
        audit.record_about(session, _subject(account), actor, action)
    session.flush()
    return settings


def rotate_scim_token(session: Session, account: Account, *, actor: Actor) -> NewScimToken:
    """Issue a new SCIM secret token; any previous one stops working at once."""
    _require_enterprise(account)
    settings = _stored(session, account)
    secret = SCIM_TOKEN_PREFIX + tokens.random_secret(32)
    rotated = settings.scim_token_hash is not None
    settings.scim_token_hash = tokens.token_hash(secret)
    settings.scim_token_hint = secret[: len(SCIM_TOKEN_PREFIX) + 4]
    settings.scim_token_created_at = settings.updated_at = utcnow()
    settings.scim_last_seen_at = None  # Entra has not used this token yet
    session.flush()
    action = "idp.scim_token_rotated" if rotated else "idp.scim_token_created"
    audit.record_about(session, _subject(account), actor, action)
    return NewScimToken(secret, settings.scim_token_hint)


def check_scim_token_hash(expected: str | None, presented: str | None) -> None:
    """Raise Unauthenticated unless ``presented`` is the SCIM token whose hash the account
    stores (the SCIM hot path reads only the hash)."""
    if not presented:
        raise Unauthenticated("a SCIM secret token is required (Authorization: Bearer …)")
    digest = tokens.token_hash(presented)
    if expected is None or not tokens.same(expected, digest):
        raise Unauthenticated("the SCIM secret token is not valid for this account")


def configure(
    session: Session,
    account: Account,
    changes: SignInChanges,
    *,
    actor: Actor,
    allow_private: bool = False,
) -> IdpSettings:
    """Change the sign-in settings (shape-checked; the provider itself is not contacted)."""
    if changes == SignInChanges():
        return settings_of(session, account.id)
    _require_enterprise(account)
    checked = changes.checked(allow_private=allow_private)
    settings = _stored(session, account)
    changed = []
    for name, value in asdict(checked).items():
        if value is not None and getattr(settings, name) != value:
            setattr(settings, name, value)
            changed.append(name)
    if "group_policy" in changed and settings.group_policy == "directory":
        # Token groups stop counting at once; under the stricter policy they take effect
        # at each key's next sign-in.
        session.execute(
            update(ApiKey)
            .where(ApiKey.account_id == account.id, ApiKey.token_groups_enforced.is_(True))
            .values(token_groups_enforced=False)
        )
    if changed:
        settings.updated_at = utcnow()
        # An earlier "test configuration" tested other settings.
        settings.last_test_at = settings.last_test_ok = None
        detail = {name: getattr(settings, name) for name in changed}
        audit.record_about(session, _subject(account), actor, "idp.sign_in_configured", detail)
    session.flush()
    return settings


def authority_of(settings: IdpSettings, master: MasterKey) -> certificates.Authority:
    """The account's CA with its key unwrapped (only the SSO exchange needs the key)."""
    if settings.ca_cert_pem is None or settings.ca_key_wrapped is None:
        raise Forbidden("IDP integration has never been enabled for this account")
    return unwrapped_authority(
        settings.account_id, settings.ca_cert_pem, settings.ca_key_wrapped, master
    )


def unwrapped_authority(
    account_id: uuid.UUID, cert_pem: str, key_wrapped: bytes, master: MasterKey
) -> certificates.Authority:
    key = master.unwrap(key_wrapped, ca_key_context(account_id))
    return certificates.load_authority(cert_pem, key)


def check_configuration(settings: IdpSettings, *, fetch: Fetch) -> PreflightReport:
    """Fetch the discovery document and keys (through ``fetch``: the outbound policy) and
    report every problem an admin can fix. Call it outside any database transaction: it
    waits on the network."""
    if not (settings.discovery_url and settings.issuer and settings.audience):
        raise Conflict(
            "sign-in is not configured yet: set the discovery URL, issuer and audience first "
            "(`keystead idp configure`)"
        )
    from keystead.idp import preflight

    return preflight.check(settings.discovery_url, settings.issuer, settings.audience, fetch)


SEEN_GRANULARITY_SECONDS = 60  # how stale scim_last_seen_at may get before it is rewritten


def seen_is_stale(last_seen: datetime | None, now: datetime) -> bool:
    return last_seen is None or (now - last_seen).total_seconds() >= SEEN_GRANULARITY_SECONDS


def note_scim_refusal(session: Session, account_id: uuid.UUID, now: datetime) -> None:
    """A SCIM request with a missing or wrong token arrived for the account."""
    _note(session, account_id, scim_last_refused_at=now)


def note_scim_contact(session: Session, account_id: uuid.UUID, now: datetime) -> None:
    """Entra reached the account with the current token (for the setup guide)."""
    _note(session, account_id, scim_last_seen_at=now)


def _note(session: Session, account_id: uuid.UUID, **moments: datetime) -> None:
    session.execute(update(IdpSettings).where(IdpSettings.account_id == account_id).values(moments))
