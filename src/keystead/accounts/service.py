"""Accounts, admins and the credentials admins authenticate with."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keystead import audit, names
from keystead.audit import Actor
from keystead.crypto import passwords, tokens
from keystead.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from keystead.storage.models import Account, Admin, AdminSession, AdminToken
from keystead.storage.types import utcnow

Plan = Literal["standard", "enterprise"]
Role = Literal["admin", "viewer"]
PLANS: tuple[Plan, ...] = ("standard", "enterprise")
ROLES: tuple[Role, ...] = ("admin", "viewer")
TOKEN_PREFIX = "kst_"  # noqa: S105 - a public prefix, not a secret
_EMAIL = re.compile(
    r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,190}\.[^@\s\x00-\x1f\x7f]{1,63}"
)
MIN_PASSWORD_LENGTH = 12


@dataclass(frozen=True)
class Principal:
    """An authenticated console admin or script, and the account it acts in."""

    admin_id: uuid.UUID
    account_id: uuid.UUID
    email: str
    role: str
    via: Literal["token", "session"]
    session_id: uuid.UUID | None = None
    # Still on a one-time password: may only choose a new one (``admin.auth``).
    password_change_required: bool = False

    @property
    def actor(self) -> Actor:
        return Actor("admin", str(self.admin_id), self.email)

    @property
    def may_write(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class NewAdmin:
    admin: Admin
    password: str


def _account(account: Account) -> audit.Subject:
    return audit.Subject(account.id, "account", account.id, account.name)


def _admin(admin: Admin) -> audit.Subject:
    return audit.Subject(admin.account_id, "admin", admin.id, admin.email)


def _token(token: AdminToken, admin: Admin) -> audit.Subject:
    return audit.Subject(admin.account_id, "admin_token", token.id, f"{admin.email}: {token.name}")


def _check_one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInput(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


# --- accounts ---------------------------------------------------------------------------


def create_account(session: Session, *, name: str, plan: str, actor: Actor) -> Account:
    _check_one_of("plan", plan, PLANS)
    account = Account(name=names.display_name(name, what="account", max_length=200), plan=plan)
    session.add(account)
    session.flush()
    audit.record_about(session, _account(account), actor, "account.created", {"plan": plan})
    return account


def get_account(session: Session, account_id: uuid.UUID) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account with customer id {account_id}")
    return account


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.created_at, Account.id)))


def update_account(
    session: Session, account: Account, *, actor: Actor, name: str | None, plan: str | None
) -> Account:
    before = {"name": account.name, "plan": account.plan}
    if name is not None:
        account.name = names.display_name(name, what="account", max_length=200)
    if plan is not None:
        _check_one_of("plan", plan, PLANS)
        account.plan = plan
    after = {"name": account.name, "plan": account.plan}
    if after != before:
        audit.record_about(
            session, _account(account), actor, "account.updated", {"before": before, "after": after}
        )
    return account


# --- admins -----------------------------------------------------------------------------


def create_admin(
    session: Session,
    *,
    account_id: uuid.UUID,
    email: str,
    role: str,
    actor: Actor,
    password: HashedPassword | None = None,
) -> NewAdmin:
    """Create an admin with a one-time password (they must change it at first sign-in)."""
    _check_one_of("role", role, ROLES)
    address = email.strip()
    if not _EMAIL.fullmatch(address):
        message = f"{email!r} is not an email address"
        raise InvalidInput(message, fields={"email": message})
    address = address.lower()
    # Unique within the account only: another account's admins are not this one's business.
    taken = select(Admin.id).where(Admin.account_id == account_id, Admin.email == address)
    if session.scalar(taken) is not None:
        raise Conflict(f"an admin with email {address} already exists in this account")
    password = password or HashedPassword.one_time()
    admin = Admin(
        account_id=account_id,
        email=address,
        role=role,
        password_hash=password.password_hash,
        password_change_required=True,
    )
    session.add(admin)
    session.flush()
    audit.record_about(session, _admin(admin), actor, "admin.created", {"role": role})
    return NewAdmin(admin, password.password)


def list_admins(session: Session, account_id: uuid.UUID) -> list[Admin]:
    return list(
        session.scalars(select(Admin).where(Admin.account_id == account_id).order_by(Admin.email))
    )


def get_admin(session: Session, account_id: uuid.UUID, ref: str) -> Admin:
    wanted = names.as_id(ref)
    by_ref = Admin.email == ref.strip().lower() if wanted is None else Admin.id == wanted
    admin = session.scalar(select(Admin).where(Admin.account_id == account_id, by_ref))
    if admin is None:
        raise NotFound(f"no admin {ref!r} in this account")
    return admin


def delete_admin(session: Session, admin: Admin, *, actor: Actor) -> None:
    if admin.role == "admin" and not _another_admin(session, admin):
        raise Conflict("cannot delete the account's last admin; add another admin first")
    session.delete(admin)
    audit.record_about(session, _admin(admin), actor, "admin.deleted")


@dataclass(frozen=True)
class HashedPassword:
    """A password and its argon2 hash, made before the write transaction that stores it:
    hashing takes tens of milliseconds and must not hold the database's write lock."""

    password: str
    password_hash: str

    @classmethod
    def of(cls, password: str) -> HashedPassword:
        return cls(password, passwords.hash_password(password))

    @classmethod
    def one_time(cls) -> HashedPassword:
        return cls.of(tokens.random_secret(18))


def check_new_password(new: str, *, current: str | None = None) -> None:
    if len(new) < MIN_PASSWORD_LENGTH:
        message = f"the new password must be at least {MIN_PASSWORD_LENGTH} characters"
        raise InvalidInput(message, fields={"new_password": message})
    if current is not None and new == current:
        message = "the new password must differ from the current one"
        raise InvalidInput(message, fields={"new_password": message})


def _revoke_credentials(
    session: Session, admin: Admin, *, keep_session: uuid.UUID | None = None
) -> None:
    """End every console session (but ``keep_session``) and revoke every API token of
    ``admin``: whoever held the old password may have made them."""
    sessions = delete(AdminSession).where(AdminSession.admin_id == admin.id)
    if keep_session is not None:
        sessions = sessions.where(AdminSession.id != keep_session)
    session.execute(sessions)
    session.execute(delete(AdminToken).where(AdminToken.admin_id == admin.id))


def change_password(
    session: Session,
    admin: Admin,
    *,
    verified_hash: str,
    new: HashedPassword,
    actor: Actor,
    keep_session: uuid.UUID | None = None,
) -> None:
    """Store ``new`` for ``admin``, whose current password the caller verified against
    ``verified_hash`` outside this transaction (refused if it changed since). Every other
    session and every API token of the admin ends."""
    if not tokens.same(admin.password_hash, verified_hash):
        raise Conflict("the password was changed meanwhile; sign in again")
    admin.password_hash = new.password_hash
    admin.password_change_required = False
    _revoke_credentials(session, admin, keep_session=keep_session)
    audit.record_about(session, _admin(admin), actor, "admin.password_changed")


def reset_password(
    session: Session, admin: Admin, *, actor: Actor, new: HashedPassword | None = None
) -> str:
    """A new one-time password for ``admin``; every session ends and every API token of
    the admin is revoked. Returns the password (shown once)."""
    new = new or HashedPassword.one_time()
    admin.password_hash = new.password_hash
    admin.password_change_required = True
    _revoke_credentials(session, admin)
    audit.record_about(session, _admin(admin), actor, "admin.password_reset")
    return new.password


def set_role(session: Session, admin: Admin, role: str, *, actor: Actor) -> None:
    _check_one_of("role", role, ROLES)
    if role == admin.role:
        return
    if admin.role == "admin" and not _another_admin(session, admin):
        raise Conflict("cannot make the account's last admin a viewer; add another admin first")
    before, admin.role = admin.role, role
    audit.record_about(
        session, _admin(admin), actor, "admin.role_changed", {"before": before, "after": role}
    )


def _another_admin(session: Session, admin: Admin) -> bool:
    others = select(Admin.id).where(
        Admin.account_id == admin.account_id, Admin.role == "admin", Admin.id != admin.id
    )
    return session.scalar(others.limit(1)) is not None


def _principal(admin: Admin, via: Literal["token", "session"], sid: uuid.UUID | None) -> Principal:
    return Principal(
        admin.id,
        admin.account_id,
        admin.email,
        admin.role,
        via,
        sid,
        admin.password_change_required,
    )


# --- admin API tokens ---------------------------------------------------------------------


# Tokens with the admin each belongs to.
_TOKENS = select(AdminToken, Admin).join(Admin, Admin.id == AdminToken.admin_id)


@dataclass(frozen=True)
class NewToken:
    token: AdminToken
    secret: str


def create_token(
    session: Session, admin: Admin, *, name: str, actor: Actor, expires_in: timedelta | None = None
) -> NewToken:
    secret = TOKEN_PREFIX + tokens.random_secret(32)
    token = AdminToken(
        admin_id=admin.id,
        name=names.display_name(name, what="token", max_length=200),
        token_hash=tokens.token_hash(secret),
        hint=secret[: len(TOKEN_PREFIX) + 4],
        expires_at=utcnow() + expires_in if expires_in else None,
    )
    session.add(token)
    session.flush()
    audit.record_about(session, _token(token, admin), actor, "admin_token.created")
    return NewToken(token, secret)


def list_tokens(session: Session, account_id: uuid.UUID) -> list[tuple[AdminToken, Admin]]:
    query = _TOKENS.where(Admin.account_id == account_id).order_by(AdminToken.created_at)
    return list(session.execute(query).all())


def revoke_token(session: Session, account_id: uuid.UUID, token_id: str, *, actor: Actor) -> None:
    tid = names.as_id(token_id)
    if tid is None:
        raise NotFound(f"no admin token {token_id!r}")
    row = session.execute(
        _TOKENS.where(AdminToken.id == tid, Admin.account_id == account_id)
    ).first()
    if row is None:
        raise NotFound(f"no admin token {token_id!r} in this account")
    token, admin = row
    session.delete(token)
    audit.record_about(session, _token(token, admin), actor, "admin_token.revoked")


def authenticate_token(session: Session, secret: str) -> Principal:
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise Unauthenticated("the admin API token is not valid")
    digest = tokens.token_hash(secret)
    row = session.execute(_TOKENS.where(AdminToken.token_hash == digest)).first()
    if row is None or not tokens.same(row.AdminToken.token_hash, digest):
        raise Unauthenticated("the admin API token is not valid")
    token, admin = row
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise Unauthenticated("the admin API token has expired; create a new one")
    return _principal(admin, "token", None)


# --- console sessions ---------------------------------------------------------------------
# Signing in (password check, throttling) is ``accounts.signin``; here a session is made,
# resolved and ended.


@dataclass(frozen=True)
class NewSession:
    principal: Principal
    cookie: str
    csrf_token: str
    expires_at: datetime


def csrf_token_for(cookie: str) -> str:
    """The session's CSRF token, derived from the (HttpOnly) cookie so that it is stored
    nowhere and the signed-in page can always ask for it again (``GET /session``). Without
    the cookie it cannot be computed; with the database alone neither can the cookie."""
    return hmac.new(cookie.encode(), b"keystead console csrf v1", hashlib.sha256).hexdigest()


def open_session(session: Session, admin: Admin, *, ttl: timedelta) -> NewSession:
    cookie = tokens.random_secret(32)
    record = AdminSession(
        admin_id=admin.id, token_hash=tokens.token_hash(cookie), expires_at=utcnow() + ttl
    )
    session.add(record)
    admin.last_login_at = utcnow()
    session.flush()
    principal = _principal(admin, "session", record.id)
    audit.record_about(session, _admin(admin), principal.actor, "admin.logged_in")
    return NewSession(principal, cookie, csrf_token_for(cookie), record.expires_at)


def authenticate_session(session: Session, cookie: str, csrf: str | None) -> Principal:
    """Resolve a console session cookie; ``csrf`` is checked when given (unsafe methods)."""
    row = session.execute(
        select(AdminSession, Admin)
        .join(Admin, Admin.id == AdminSession.admin_id)
        .where(AdminSession.token_hash == tokens.token_hash(cookie))
    ).first()
    if row is None:
        raise Unauthenticated("the console session is not valid; sign in again")
    record, admin = row
    if record.expires_at <= utcnow():
        raise Unauthenticated("the console session has expired; sign in again")
    if csrf is not None and not tokens.same(csrf_token_for(cookie), csrf):
        raise Forbidden("the CSRF token is missing or wrong; reload the console")
    return _principal(admin, "session", record.id)


def session_expiry(session: Session, session_id: uuid.UUID) -> datetime:
    expires = session.scalar(select(AdminSession.expires_at).where(AdminSession.id == session_id))
    if expires is None:
        raise Unauthenticated("the console session is not valid; sign in again")
    return expires


def logout(session: Session, session_id: uuid.UUID) -> None:
    session.execute(delete(AdminSession).where(AdminSession.id == session_id))
