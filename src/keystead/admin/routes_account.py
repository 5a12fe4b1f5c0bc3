"""Account, the signed-in admin, console sessions, admins and admin API tokens."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response, status

from keystead.accounts import service as accounts
from keystead.admin.auth import SESSION_COOKIE, Reader, RuntimeDep, Writer
from keystead.admin.schemas import (
    AccountOut,
    AccountUpdateIn,
    AdminCreatedOut,
    AdminCreateIn,
    AdminOut,
    LoginIn,
    PasswordChangeIn,
    SessionOut,
    TokenCreatedOut,
    TokenCreateIn,
    TokenOut,
)
from keystead.errors import Unauthenticated

router = APIRouter()


@router.get("/account", response_model=AccountOut, tags=["account"])
def get_account(principal: Reader, runtime: RuntimeDep) -> AccountOut:
    with runtime.db.read() as session:
        return AccountOut.of(accounts.get_account(session, principal.account_id))


@router.patch("/account", response_model=AccountOut, tags=["account"])
def update_account(body: AccountUpdateIn, principal: Writer, runtime: RuntimeDep) -> AccountOut:
    with runtime.db.write() as session:
        account = accounts.get_account(session, principal.account_id)
        accounts.update_account(session, account, actor=principal.actor, name=body.name, plan=None)
        return AccountOut.of(account)


@router.get("/me", response_model=AdminOut, tags=["session"])
def me(principal: Reader, runtime: RuntimeDep) -> AdminOut:
    with runtime.db.read() as session:
        return AdminOut.of(
            accounts.get_admin(session, principal.account_id, str(principal.admin_id))
        )


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, tags=["session"])
def change_password(body: PasswordChangeIn, principal: Reader, runtime: RuntimeDep) -> Response:
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, principal.account_id, str(principal.admin_id))
        accounts.change_password(
            session,
            admin,
            current=body.current_password,
            new=body.new_password,
            actor=principal.actor,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/session", response_model=SessionOut, tags=["session"])
def login(body: LoginIn, request: Request, response: Response, runtime: RuntimeDep) -> SessionOut:
    ttl = timedelta(seconds=runtime.settings.session_ttl_seconds)
    with runtime.db.write() as session:
        new = accounts.login(session, email=body.email, password=body.password, ttl=ttl)
        admin = accounts.get_admin(session, new.principal.account_id, str(new.principal.admin_id))
        account = accounts.get_account(session, new.principal.account_id)
        out = SessionOut(
            admin=AdminOut.of(admin),
            account=AccountOut.of(account),
            csrf_token=new.csrf_token,
            expires_at=new.expires_at,
        )
    response.set_cookie(
        SESSION_COOKIE,
        new.cookie,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return out


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, tags=["session"])
def logout(principal: Reader, runtime: RuntimeDep) -> Response:
    if principal.session_id is None:
        raise Unauthenticated("this request is not authenticated by a console session")
    with runtime.db.write() as session:
        accounts.logout(session, principal.session_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/admins", response_model=list[AdminOut], tags=["admins"])
def list_admins(principal: Reader, runtime: RuntimeDep) -> list[AdminOut]:
    with runtime.db.read() as session:
        return [AdminOut.of(a) for a in accounts.list_admins(session, principal.account_id)]


@router.post(
    "/admins", response_model=AdminCreatedOut, status_code=status.HTTP_201_CREATED, tags=["admins"]
)
def create_admin(body: AdminCreateIn, principal: Writer, runtime: RuntimeDep) -> AdminCreatedOut:
    with runtime.db.write() as session:
        new = accounts.create_admin(
            session,
            account_id=principal.account_id,
            email=body.email,
            role=body.role,
            actor=principal.actor,
        )
        return AdminCreatedOut(
            **AdminOut.of(new.admin).model_dump(), one_time_password=new.password
        )


@router.delete("/admins/{ref}", status_code=status.HTTP_204_NO_CONTENT, tags=["admins"])
def delete_admin(ref: str, principal: Writer, runtime: RuntimeDep) -> Response:
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, principal.account_id, ref)
        accounts.delete_admin(session, admin, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/tokens", response_model=list[TokenOut], tags=["admins"])
def list_tokens(principal: Reader, runtime: RuntimeDep) -> list[TokenOut]:
    with runtime.db.read() as session:
        return [TokenOut.of(t, a) for t, a in accounts.list_tokens(session, principal.account_id)]


@router.post(
    "/tokens", response_model=TokenCreatedOut, status_code=status.HTTP_201_CREATED, tags=["admins"]
)
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
