"""`keystead account …` and `keystead admin …` (operator commands)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from keystead.accounts import service as accounts
from keystead.admin.schemas import AccountOut, AdminCreatedOut, AdminOut, TokenCreatedOut, TokenOut
from keystead.cli.context import JsonFlag, ctx_of, emit, emit_table, err, out, pairs
from keystead.errors import InvalidInput

account_app = typer.Typer(
    help="Accounts (customer ids) on this installation.", no_args_is_help=True
)
admin_app = typer.Typer(help="Console admins and admin API tokens.", no_args_is_help=True)
token_app = typer.Typer(help="Admin API tokens for scripts.", no_args_is_help=True)
admin_app.add_typer(token_app, name="token")


def _show_account(account: AccountOut) -> None:
    pairs(("customer id", account.customer_id), ("name", account.name), ("plan", account.plan))


@account_app.command("list")
def account_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List accounts."""
    with ctx_of(ctx).runtime.db.read() as session:
        rows = [AccountOut.of(a) for a in accounts.list_accounts(session)]
    emit_table(
        rows,
        as_json,
        "Accounts",
        ["customer id", "name", "plan"],
        lambda a: (a.customer_id, a.name, a.plan),
    )


@account_app.command("show")
def account_show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the account in scope (--account, or the only one)."""
    with ctx_of(ctx).read() as (session, account_id):
        view = AccountOut.of(accounts.get_account(session, account_id))
    emit(view, as_json, lambda: _show_account(view))


@account_app.command("create")
def account_create(
    ctx: typer.Context,
    name: str,
    plan: Annotated[str, typer.Option(help="standard or enterprise")] = "enterprise",
    admin_email: Annotated[str | None, typer.Option(help="Also create this admin")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create another account (and optionally its first admin)."""
    cli = ctx_of(ctx)
    with cli.runtime.db.write() as session:
        account = accounts.create_account(session, name=name, plan=plan, actor=cli.actor)
        created = None
        if admin_email:
            new = accounts.create_admin(
                session, account_id=account.id, email=admin_email, role="admin", actor=cli.actor
            )
            created = AdminCreatedOut.created(new.admin, new.password)
        view = AccountOut.of(account)

    def human() -> None:
        _show_account(view)
        if created:
            pairs(("admin", created.email), ("one-time password", created.one_time_password))

    emit({"account": view, "admin": created}, as_json, human)


@account_app.command("set-plan")
def account_set_plan(ctx: typer.Context, plan: str, as_json: JsonFlag = False) -> None:
    """Change the account's plan (IDP integration needs enterprise)."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        account = accounts.get_account(session, account_id)
        accounts.update_account(session, account, actor=cli.actor, name=None, plan=plan)
        view = AccountOut.of(account)
    emit(view, as_json, lambda: _show_account(view))


@admin_app.command("list")
def admin_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List console admins."""
    with ctx_of(ctx).read() as (session, account_id):
        rows = [AdminOut.of(a) for a in accounts.list_admins(session, account_id)]
    emit_table(
        rows,
        as_json,
        "Admins",
        ["email", "role", "last login"],
        lambda a: (a.email, a.role, a.last_login_at),
    )


@admin_app.command("create")
def admin_create(
    ctx: typer.Context,
    email: str,
    role: Annotated[str, typer.Option(help="admin or viewer")] = "admin",
    as_json: JsonFlag = False,
) -> None:
    """Create a console admin with a one-time password."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        new = accounts.create_admin(
            session, account_id=account_id, email=email, role=role, actor=cli.actor
        )
        view = AdminCreatedOut.created(new.admin, new.password)
    emit(
        view,
        as_json,
        lambda: pairs(
            ("admin", view.email),
            ("role", view.role),
            ("one-time password", view.one_time_password),
        ),
    )


@admin_app.command("delete")
def admin_delete(ctx: typer.Context, email: str, as_json: JsonFlag = False) -> None:
    """Delete a console admin."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        admin = accounts.get_admin(session, account_id, email)
        accounts.delete_admin(session, admin, actor=cli.actor)
        deleted = admin.email
    emit({"deleted": deleted}, as_json, lambda: err.print(f"Deleted admin {deleted}"))


@admin_app.command("set-role")
def admin_set_role(ctx: typer.Context, email: str, role: str, as_json: JsonFlag = False) -> None:
    """Make an admin an `admin` or a read-only `viewer` (the account keeps one admin)."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        admin = accounts.get_admin(session, account_id, email)
        accounts.set_role(session, admin, role, actor=cli.actor)
        view = AdminOut.of(admin)
    emit(view, as_json, lambda: pairs(("admin", view.email), ("role", view.role)))


@admin_app.command("reset-password")
def admin_reset_password(ctx: typer.Context, email: str, as_json: JsonFlag = False) -> None:
    """Give an admin a new one-time password; their sessions end and their API tokens are
    revoked."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        admin = accounts.get_admin(session, account_id, email)
        password = accounts.reset_password(session, admin, actor=cli.actor)
        address = admin.email
    emit(
        {"email": address, "one_time_password": password},
        as_json,
        lambda: pairs(("admin", address), ("one-time password", password)),
    )


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: str,
    admin: Annotated[str | None, typer.Option(help="Admin email (default: the only admin)")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an admin API token (printed once)."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        if admin is None:
            candidates = [a for a in accounts.list_admins(session, account_id) if a.role == "admin"]
            if len(candidates) != 1:
                raise InvalidInput("this account has several admins; choose one with --admin EMAIL")
            owner = candidates[0]
        else:
            owner = accounts.get_admin(session, account_id, admin)
        expires = timedelta(days=expires_in_days) if expires_in_days else None
        new = accounts.create_token(session, owner, name=name, actor=cli.actor, expires_in=expires)
        view = TokenCreatedOut(**TokenOut.of(new.token, owner).model_dump(), token=new.secret)
    emit(
        view,
        as_json,
        lambda: pairs(("token id", view.id), ("admin", view.admin_email), ("token", view.token)),
    )


@token_app.command("list")
def token_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List admin API tokens (never their secrets)."""
    with ctx_of(ctx).read() as (session, account_id):
        rows = [TokenOut.of(t, a) for t, a in accounts.list_tokens(session, account_id)]
    emit_table(
        rows,
        as_json,
        "Admin API tokens",
        ["id", "name", "admin", "starts with", "expires"],
        lambda t: (t.id, t.name, t.admin_email, t.hint, t.expires_at),
    )


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: str, as_json: JsonFlag = False) -> None:
    """Revoke an admin API token at once."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        accounts.revoke_token(session, account_id, token_id, actor=cli.actor)
    emit({"revoked": token_id}, as_json, lambda: out.print(f"Revoked token {token_id}"))
