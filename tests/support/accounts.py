"""The first account as most tests want it: its admin past the one-time password, with a
known password and an admin API token."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from keystead import bootstrap
from keystead.accounts import service as accounts
from keystead.audit import Actor
from keystead.runtime import Runtime

ACTOR = Actor("system", None, "tests")


@dataclass(frozen=True)
class FirstAccount:
    customer_id: str
    account_name: str
    admin_email: str
    admin_password: str
    admin_token: str


def settle_admin_password(runtime: Runtime, account_id: str, email: str, password: str) -> None:
    """What the admin does at the first sign-in: choose a password of their own."""
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, uuid.UUID(account_id), email)
        accounts.change_password(
            session,
            admin,
            verified_hash=admin.password_hash,
            new=accounts.HashedPassword.of(password),
            actor=ACTOR,
        )


def first_account(runtime: Runtime) -> FirstAccount:
    first = bootstrap.create_first_account(runtime)
    assert first is not None
    password = "tests-" + secrets.token_urlsafe(12)
    settle_admin_password(runtime, first.customer_id, first.admin_email, password)
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, uuid.UUID(first.customer_id), first.admin_email)
        token = accounts.create_token(session, admin, name="tests", actor=ACTOR)
    return FirstAccount(
        first.customer_id, first.account_name, first.admin_email, password, token.secret
    )


def admin_token(runtime: Runtime, account_id: uuid.UUID, email: str, *, role: str = "admin") -> str:
    """An admin API token of a new admin of ``account_id`` who has chosen a password."""
    with runtime.db.write() as session:
        new = accounts.create_admin(
            session, account_id=account_id, email=email, role=role, actor=ACTOR
        )
    settle_admin_password(runtime, str(account_id), email, "tests-" + secrets.token_urlsafe(12))
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, account_id, str(new.admin.id))
        return accounts.create_token(session, admin, name="t", actor=ACTOR).secret
