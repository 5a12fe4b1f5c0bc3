"""Who is calling the admin API: an admin API token (Bearer) or a console session cookie.

Console sessions must send the session's CSRF token in ``X-CSRF-Token`` on unsafe
methods; bearer tokens need none (a browser never attaches them on its own). An admin
still on a one-time password may only choose a new one: every endpoint but ``/me``,
``/me/password`` and the session's own refuses them (``SignedIn`` admits them, ``Reader``
and ``Writer`` do not).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from keystead.accounts import service as accounts
from keystead.accounts.service import Principal
from keystead.errors import Forbidden, Unauthenticated
from keystead.runtime import Runtime

SESSION_COOKIE = "keystead_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="Admin API token (`kst_…`)")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Console session")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def signed_in(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    runtime = runtime_of(request)
    with runtime.db.read() as session:
        if bearer is not None:
            return accounts.authenticate_token(session, bearer.credentials)
        if cookie:
            csrf = None if request.method in _SAFE else request.headers.get(CSRF_HEADER, "")
            return accounts.authenticate_session(session, cookie, csrf)
    raise Unauthenticated(
        "sign in to the console or send an admin API token as 'Authorization: Bearer kst_…'"
    )


def reader(principal: Annotated[Principal, Depends(signed_in)]) -> Principal:
    if principal.password_change_required:
        raise Forbidden(
            f"admin {principal.email} still has a one-time password: choose a new password "
            "first (POST /api/admin/v1/me/password, or sign in to the console)"
        )
    return principal


def writer(principal: Annotated[Principal, Depends(reader)]) -> Principal:
    if not principal.may_write:
        raise Forbidden(f"admin {principal.email} has the read-only role {principal.role!r}")
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]
Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
