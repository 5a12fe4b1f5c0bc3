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
from datetime import datetime, timedelta

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


@dataclass(frozen=True)
class _Attempt:
    admin_id: uuid.UUID | None
    account_id: uuid.UUID | None
    password_hash: str | None
    locked_now: tuple[Scope, ...]  # scopes this very attempt locked


ACCOUNT_NEEDED = (
    "this Keystead holds several accounts: enter your account's customer id "
    "(on the account page, and printed when the account was made)"
)


def _subjects(account_id: uuid.UUID | None, email: str, address: str) -> dict[Scope, str]:
    return {"email": f"{account_id}/{email}"[:256], "address": address[:256]}


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


def _load(session: Session, scope: Scope, subject: str) -> SignInFailure | None:
    return session.get(SignInFailure, (scope, subject))


def _state(row: SignInFailure | None) -> Failures | None:
    return None if row is None else Failures(row.count, row.window_started_at, row.locked_until)


def _store(session: Session, scope: Scope, subject: str, state: Failures | None) -> None:
    row = _load(session, scope, subject)
    if state is None:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = SignInFailure(scope=scope, subject=subject)
        session.add(row)
    row.count, row.window_started_at, row.locked_until = astuple(state)


def _begin(
    session: Session,
    account_id: uuid.UUID | None,
    email: str,
    subjects: dict[Scope, str],
    now: datetime,
) -> _Attempt:
    states = {scope: _state(_load(session, scope, subject)) for scope, subject in subjects.items()}
    wait = max(throttle.wait_seconds(state, now) for state in states.values())
    if wait:
        raise TooManyRequests(
            f"too many failed sign-ins; try again in {throttle.in_words(wait)}",
            retry_after=wait,
        )
    locked_now: list[Scope] = []
    for scope, subject in subjects.items():
        after = throttle.after_failure(states[scope], now, throttle.LIMITS[scope])
        if after.locked_until is not None:
            locked_now.append(scope)
        _store(session, scope, subject, after)
    admin = session.execute(
        select(Admin.id, Admin.account_id, Admin.password_hash).where(
            Admin.account_id == account_id, Admin.email == email
        )
    ).first()
    if admin is None:
        return _Attempt(None, account_id, None, tuple(locked_now))
    return _Attempt(admin.id, admin.account_id, admin.password_hash, tuple(locked_now))


def _take_back(session: Session, subjects: dict[Scope, str]) -> None:
    for scope, subject in subjects.items():
        if scope == "email":
            _store(session, scope, subject, None)  # the right password clears its email
        else:
            state = _state(_load(session, scope, subject))
            _store(session, scope, subject, throttle.after_success(state, throttle.LIMITS[scope]))


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
    email = email.strip().lower()
    with db.write() as session:
        account_id = _account_of(session, account)
        subjects = _subjects(account_id, email, address)
        attempt = _begin(session, account_id, email, subjects, utcnow())
    ok = passwords.verify_password(attempt.password_hash, password)
    with db.write() as session:
        admin = _settle(session, attempt, ok, subjects, email, address, "admin.sign_in_failed")
        if admin is not None:
            return open_session(session, admin, ttl=ttl)
    raise Unauthenticated(WRONG)


def check_current_password(
    db: Database, *, account_id: uuid.UUID, email: str, password: str, address: str
) -> str:
    """Before a password change: the admin's current password, checked like a sign-in
    (throttled per email and address, each failure audited), so that a stolen session or
    token cannot be used to guess it. Returns the hash that was verified; raises
    InvalidInput (wrong) or TooManyRequests."""
    email = email.strip().lower()
    subjects = _subjects(account_id, email, address)
    with db.write() as session:
        attempt = _begin(session, account_id, email, subjects, utcnow())
    ok = passwords.verify_password(attempt.password_hash, password)
    with db.write() as session:
        admin = _settle(
            session, attempt, ok, subjects, email, address, "admin.password_change_failed"
        )
        if admin is not None:
            return admin.password_hash
    wrong = "the current password is wrong"
    raise InvalidInput(wrong, fields={"current_password": wrong})


def _settle(
    session: Session,
    attempt: _Attempt,
    ok: bool,
    subjects: dict[Scope, str],
    email: str,
    address: str,
    failed_action: str,
) -> Admin | None:
    """After the check: the admin when the password was right (the advance count taken
    back), else None with the failure audited."""
    admin = session.get(Admin, attempt.admin_id) if ok and attempt.admin_id else None
    if admin is not None and admin.password_hash == attempt.password_hash:
        _take_back(session, subjects)
        return admin
    detail: dict[str, object] = {
        "reason": "wrong password" if attempt.admin_id else "unknown email",
        "address": address,
    }
    if attempt.locked_now:
        detail["locked"] = list(attempt.locked_now)
    audit.record(
        session,
        account_id=attempt.account_id,
        actor=Actor("anonymous", None, address),
        action=failed_action,
        subject_type="admin",
        subject_id=attempt.admin_id,
        subject_label=email,
        detail=detail,
    )
    return None
