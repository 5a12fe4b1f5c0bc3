"""Console sign-in: throttled, audited, and with the password check outside any write.

Unlike the services, sign-in owns its transactions: the argon2 check takes tens of
milliseconds and must not hold the database's write lock (on SQLite it would stall every
other account's writes). So one attempt is

1. a short write that refuses a locked email or client address, and otherwise counts the
   attempt as failed *in advance* (so a burst of parallel guesses cannot slip past the
   limit while their checks run), and reads the admin's hash;
2. the password check, outside any transaction;
3. a short write: on success the advance count is taken back and the session opened, on
   failure the failure is audited.

An email is unique within an account only, so a sign-in names its account: implicitly on
an installation that holds one, by customer id otherwise. Whether that is needed depends
on the installation alone, never on the email, and only one admin's password is ever
checked, so an attempt's answer and timing say nothing about other accounts' admins.
"""

from __future__ import annotations

import uuid
from dataclasses import astuple, dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from keystead import audit
from keystead.accounts import throttle
from keystead.accounts.service import NewSession, open_session
from keystead.accounts.throttle import Failures, Scope
from keystead.audit import Actor
from keystead.crypto import passwords
from keystead.errors import InvalidInput, TooManyRequests, Unauthenticated
from keystead.storage.models import Account, Admin, SignInFailure
from keystead.storage.session import Database
from keystead.storage.types import utcnow

WRONG = "email or password is wrong"
ACCOUNT_NEEDED = (
    "this Keystead holds several accounts: enter your account's customer id "
    "(on the account page, and printed when the account was made)"
)


@dataclass(frozen=True)
class _Attempt:
    account_id: uuid.UUID | None
    email: str
    address: str
    subjects: dict[Scope, str]  # what the attempt is counted against, per scope
    admin_id: uuid.UUID | None
    password_hash: str | None
    locked_now: tuple[Scope, ...]  # scopes this very attempt locked


def _account_of(session: Session, account: str | None) -> uuid.UUID | None:
    """The account a sign-in names: the customer id given, else the installation's only
    account. None for an id of no account (then the sign-in fails like a wrong password)."""
    if account is not None and account.strip():
        try:
            wanted = uuid.UUID(account.strip())
        except ValueError:
            problem = "is not a customer id (a UUID such as 8aa7…-…)"
            raise InvalidInput(f"account {problem}", fields={"account": problem}) from None
        return wanted if session.get(Account, wanted) is not None else None
    only = session.scalars(select(Account.id).limit(2)).all()
    if len(only) > 1:
        raise InvalidInput(ACCOUNT_NEEDED, fields={"account": ACCOUNT_NEEDED})
    return only[0] if only else None


def _state(session: Session, scope: Scope, subject: str) -> Failures | None:
    row = session.get(SignInFailure, (scope, subject))
    return None if row is None else Failures(row.count, row.window_started_at, row.locked_until)


def _store(session: Session, scope: Scope, subject: str, state: Failures | None) -> None:
    row = session.get(SignInFailure, (scope, subject))
    if state is None:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = SignInFailure(scope=scope, subject=subject)
        session.add(row)
    row.count, row.window_started_at, row.locked_until = astuple(state)


def _begin(session: Session, account_id: uuid.UUID | None, email: str, address: str) -> _Attempt:
    """Step 1: refuse a locked email or address, else count the attempt as failed in
    advance and read the admin's hash."""
    now = utcnow()
    subjects: dict[Scope, str] = {"email": f"{account_id}/{email}"[:256], "address": address[:256]}
    states = {scope: _state(session, scope, subject) for scope, subject in subjects.items()}
    wait = max(throttle.wait_seconds(state, now) for state in states.values())
    if wait:
        raise TooManyRequests(
            f"too many failed sign-ins; try again in {throttle.in_words(wait)}", retry_after=wait
        )
    locked_now: list[Scope] = []
    for scope, subject in subjects.items():
        after = throttle.after_failure(states[scope], now, throttle.LIMITS[scope])
        if after.locked_until is not None:
            locked_now.append(scope)
        _store(session, scope, subject, after)
    admin = session.execute(
        select(Admin.id, Admin.password_hash).where(
            Admin.account_id == account_id, Admin.email == email
        )
    ).first()
    admin_id, password_hash = (None, None) if admin is None else admin
    locked = tuple(locked_now)
    return _Attempt(account_id, email, address, subjects, admin_id, password_hash, locked)


def _settle(session: Session, attempt: _Attempt, ok: bool, failed_action: str) -> Admin | None:
    """Step 3: the admin when the password was right (the advance count taken back), else
    None with the failure audited."""
    admin = session.get(Admin, attempt.admin_id) if ok and attempt.admin_id else None
    if admin is not None and admin.password_hash == attempt.password_hash:
        # The advance count taken back: the right password clears its email entirely.
        _store(session, "email", attempt.subjects["email"], None)
        address = attempt.subjects["address"]
        after = throttle.after_success(
            _state(session, "address", address), throttle.LIMITS["address"]
        )
        _store(session, "address", address, after)
        return admin
    detail: dict[str, object] = {
        "reason": "wrong password" if attempt.admin_id else "unknown email",
        "address": attempt.address,
    }
    if attempt.locked_now:
        detail["locked"] = list(attempt.locked_now)
    audit.record(
        session,
        account_id=attempt.account_id,
        actor=Actor("anonymous", None, attempt.address),
        action=failed_action,
        subject_type="admin",
        subject_id=attempt.admin_id,
        subject_label=attempt.email,
        detail=detail,
    )
    return None


def sign_in(
    db: Database,
    *,
    email: str,
    password: str,
    address: str,
    ttl: timedelta,
    account: str | None = None,
) -> NewSession:
    """Open a console session, or raise Unauthenticated (wrong email or password, in the
    same words either way), TooManyRequests (with the wait in words), or InvalidInput
    (the installation holds several accounts and ``account`` names none)."""
    with db.write() as session:
        attempt = _begin(session, _account_of(session, account), email.strip().lower(), address)
    ok = passwords.verify_password(attempt.password_hash, password)
    with db.write() as session:
        if (admin := _settle(session, attempt, ok, "admin.sign_in_failed")) is not None:
            return open_session(session, admin, ttl=ttl)
    raise Unauthenticated(WRONG)


def check_current_password(
    db: Database, *, account_id: uuid.UUID, email: str, password: str, address: str
) -> str:
    """Before a password change: the admin's current password, checked like a sign-in
    (throttled per email and address, each failure audited), so that a stolen session or
    token cannot be used to guess it. Returns the hash that was verified; raises
    InvalidInput (wrong) or TooManyRequests."""
    with db.write() as session:
        attempt = _begin(session, account_id, email.strip().lower(), address)
    ok = passwords.verify_password(attempt.password_hash, password)
    with db.write() as session:
        if (admin := _settle(session, attempt, ok, "admin.password_change_failed")) is not None:
            return admin.password_hash
    wrong = "the current password is wrong"
    raise InvalidInput(wrong, fields={"current_password": wrong})
