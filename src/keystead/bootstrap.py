"""First-run setup: the first enterprise account and its admin (on a one-time password:
the admin chooses their own at the first console sign-in, then makes API tokens)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from keystead.accounts import service as accounts
from keystead.audit import Actor
from keystead.runtime import Runtime
from keystead.storage.models import Account

DEFAULT_ADMIN_EMAIL = "admin@keystead.local"
DEFAULT_ACCOUNT_NAME = "Default account"


@dataclass(frozen=True)
class FirstAccount:
    customer_id: str
    account_name: str
    admin_email: str
    admin_password: str


def has_accounts(runtime: Runtime) -> bool:
    with runtime.db.read() as session:
        return bool(session.scalar(select(func.count()).select_from(Account)))


def create_first_account(
    runtime: Runtime,
    *,
    account_name: str = DEFAULT_ACCOUNT_NAME,
    admin_email: str = DEFAULT_ADMIN_EMAIL,
) -> FirstAccount | None:
    """Create the first account and admin unless any account exists (then None)."""
    actor = Actor.cli()
    with runtime.db.write() as session:
        if session.scalar(select(func.count()).select_from(Account)):
            return None
        account = accounts.create_account(
            session, name=account_name, plan="enterprise", actor=actor
        )
        new_admin = accounts.create_admin(
            session, account_id=account.id, email=admin_email, role="admin", actor=actor
        )
        return FirstAccount(
            customer_id=str(account.id),
            account_name=account.name,
            admin_email=new_admin.admin.email,
            admin_password=new_admin.password,
        )
