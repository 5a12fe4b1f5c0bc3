"""Account, the signed-in admin, console sessions, admins and admin API tokens."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Cookie, Request, Response, status

from keystead.accounts import service as accounts
from keystead.accounts import signin
from keystead.admin.auth import SESSION_COOKIE, Reader, RuntimeDep, SignedIn, Writer
from keystead.admin.schemas import (
    AccountOut,
    AccountUpdateIn,
    AdminCreatedOut,
    AdminCreateIn,
    AdminOut,
    AdminUpdateIn,
    LoginIn,
    PasswordChangeIn,
    SessionOut,
    TokenCreatedOut,
    TokenCreateIn,
    TokenOut,
)
from keystead.errors import Unauthenticated

router = APIRouter()


@router.get("/account", tags=["account"])
def get_account(principal: Reader, runtime: RuntimeDep) -> AccountOut:
    with runtime.db.read() as session:
        return AccountOut.of(accounts.get_account(session, principal.account_id))


@router.patch("/account", tags=["account"])
def update_account(body: AccountUpdateIn, principal: Writer, runtime: RuntimeDep) -> AccountOut:
    with runtime.db.write() as session:
        account = accounts.get_account(session, principal.account_id)
        accounts.update_account(session, account, actor=principal.actor, name=body.name, plan=None)
        return AccountOut.of(account)


@router.get("/me", tags=["session"])
def me(principal: SignedIn, runtime: RuntimeDep) -> AdminOut:
    with runtime.db.read() as session:
        admin = accounts.get_admin(session, principal.account_id, str(principal.admin_id))
        return AdminOut.of(admin)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, tags=["session"])
def change_password(
    body: PasswordChangeIn, request: Request, principal: SignedIn, runtime: RuntimeDep
) -> Response:
    """Choose a new password. Every other console session of the admin ends and every
    admin API token of the admin is revoked; the session making the change stays."""
    accounts.check_new_password(body.new_password, current=body.current_password)
    # Throttled and audited like a sign-in; argon2 runs outside any transaction.
    verified_hash = signin.check_current_password(
        runtime.db,
        account_id=principal.account_id,
        email=principal.email,
        password=body.current_password,
        address=_client_address(request),
    )
    new = accounts.HashedPassword.of(body.new_password)
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, principal.account_id, str(principal.admin_id))
        accounts.change_password(
            session,
            admin,
            verified_hash=verified_hash,
            new=new,
            actor=principal.actor,
            keep_session=principal.session_id,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _session_out(
    runtime: RuntimeDep, principal: SignedIn, csrf_token: str, expires_at: datetime
) -> SessionOut:
    account_id = principal.account_id
    with runtime.db.read() as session:
        return SessionOut(
            admin=AdminOut.of(accounts.get_admin(session, account_id, str(principal.admin_id))),
            account=AccountOut.of(accounts.get_account(session, account_id)),
            csrf_token=csrf_token,
            expires_at=expires_at,
        )


@router.post("/session", tags=["session"])
def login(body: LoginIn, request: Request, response: Response, runtime: RuntimeDep) -> SessionOut:
    """Sign in to the console. Failed attempts are throttled per email and per client
    address (429 with ``Retry-After`` and the wait in words) and each is audited."""
    ttl = timedelta(seconds=runtime.settings.session_ttl_seconds)
    new = signin.sign_in(
        runtime.db,
        email=body.email,
        password=body.password,
        address=_client_address(request),
        ttl=ttl,
        account=body.account,
    )
    response.set_cookie(
        SESSION_COOKIE,
        new.cookie,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https"
        or runtime.settings.effective_public_url.startswith("https://"),
        path="/",
    )
    return _session_out(runtime, new.principal, new.csrf_token, new.expires_at)


def _client_address(request: Request) -> str:
    """The client's IP address as the server sees it (a trusted proxy's X-Forwarded-For
    included, see KEYSTEAD_TRUSTED_PROXIES): never free text in throttling or the audit."""
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "unknown"


@router.get("/session", tags=["session"])
def current_session(
    principal: SignedIn,
    runtime: RuntimeDep,
    cookie: Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)] = None,
) -> SessionOut:
    """The signed-in console session again, with its CSRF token (after a page reload)."""
    if principal.session_id is None or cookie is None:
        raise Unauthenticated("this request is not authenticated by a console session")
    with runtime.db.read() as session:
        expires_at = accounts.session_expiry(session, principal.session_id)
    return _session_out(runtime, principal, accounts.csrf_token_for(cookie), expires_at)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, tags=["session"])
def logout(principal: SignedIn, runtime: RuntimeDep) -> Response:
    if principal.session_id is None:
        raise Unauthenticated("this request is not authenticated by a console session")
    with runtime.db.write() as session:
        accounts.logout(session, principal.session_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/admins", tags=["admins"])
def list_admins(principal: Reader, runtime: RuntimeDep) -> list[AdminOut]:
    with runtime.db.read() as session:
        return [AdminOut.of(a) for a in accounts.list_admins(session, principal.account_id)]


@router.post("/admins", status_code=status.HTTP_201_CREATED, tags=["admins"])
def create_admin(body: AdminCreateIn, principal: Writer, runtime: RuntimeDep) -> AdminCreatedOut:
    """Invite an admin: the answer holds their one-time password, shown once."""
    password = accounts.HashedPassword.one_time()
    with runtime.db.write() as session:
        new = accounts.create_admin(
            session,
            account_id=principal.account_id,
            email=body.email,
            role=body.role,
            actor=principal.actor,
            password=password,
        )
        return AdminCreatedOut.created(new.admin, new.password)


@router.delete("/admins/{ref}", status_code=status.HTTP_204_NO_CONTENT, tags=["admins"])
def delete_admin(ref: str, principal: Writer, runtime: RuntimeDep) -> Response:
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, principal.account_id, ref)
        accounts.delete_admin(session, admin, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/admins/{ref}", tags=["admins"])
def update_admin(ref: str, body: AdminUpdateIn, principal: Writer, runtime: RuntimeDep) -> AdminOut:
    """Change an admin's role (the account keeps at least one ``admin``)."""
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, principal.account_id, ref)
        accounts.set_role(session, admin, body.role, actor=principal.actor)
        return AdminOut.of(admin)


@router.post("/admins/{ref}/password-reset", tags=["admins"])
def reset_admin_password(ref: str, principal: Writer, runtime: RuntimeDep) -> AdminCreatedOut:
    """A new one-time password for the admin (shown once); their sessions end and their
    admin API tokens are revoked."""
    password = accounts.HashedPassword.one_time()
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, principal.account_id, ref)
        accounts.reset_password(session, admin, actor=principal.actor, new=password)
        return AdminCreatedOut.created(admin, password.password)


@router.get("/tokens", tags=["admins"])
def list_tokens(principal: Reader, runtime: RuntimeDep) -> list[TokenOut]:
    with runtime.db.read() as session:
        return [TokenOut.of(t, a) for t, a in accounts.list_tokens(session, principal.account_id)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED, tags=["admins"])
def create_token(body: TokenCreateIn, principal: Writer, runtime: RuntimeDep) -> TokenCreatedOut:
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, principal.account_id, str(principal.admin_id))
        expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
        new = accounts.create_token(
            session, admin, name=body.name, actor=principal.actor, expires_in=expires
        )
        return TokenCreatedOut(**TokenOut.of(new.token, admin).model_dump(), token=new.secret)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["admins"])
def revoke_token(token_id: str, principal: Writer, runtime: RuntimeDep) -> Response:
    with runtime.db.write() as session:
        accounts.revoke_token(session, principal.account_id, token_id, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
