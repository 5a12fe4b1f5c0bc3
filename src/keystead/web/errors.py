"""Every error leaves as ``{"message": …}`` with the right status: never a stack trace."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from keystead.errors import InvalidInput, KeysteadError, TooManyRequests, is_internal
from keystead.logs import get_logger
from keystead.storage.failures import as_domain
from keystead.web.edge import METHODS, denied, internal
from keystead.web.middleware import ASKED_METHOD, as_get

log = get_logger("keystead.errors")


def error_response(
    status: int,
    message: str,
    *,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="keystead"'
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"message": message, **extra}, status_code=status, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _keystead_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError):  # outside a unit of work: the same map as inside one
        exc = as_domain(exc) or exc
    if not isinstance(exc, KeysteadError) or is_internal(exc):
        return await _unexpected(request, exc)
    denied(log, exc, request.url.path)
    if isinstance(exc, TooManyRequests):
        return error_response(exc.status, exc.message, retry_after=exc.retry_after)
    if isinstance(exc, InvalidInput) and exc.fields:
        errors = [{"field": field, "problem": problem} for field, problem in exc.fields.items()]
        return error_response(exc.status, exc.message, errors=errors)
    return error_response(exc.status, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        return await _unexpected(request, exc)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(400, "request body is not valid JSON")
    details = [{"field": _location(err["loc"]), "problem": err["msg"]} for err in errors]
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
    return error_response(422, f"invalid request: {summary}", errors=details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):
        return await _unexpected(request, exc)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        asked = request.scope.get(ASKED_METHOD, request.method)
        message = f"method {asked} is not allowed on {request.url.path}"
        return error_response(405, message, headers={"Allow": ", ".join(_allowed(request))})
    return error_response(exc.status_code, message)


def _allowed(request: Request) -> list[str]:
    """Every method the path takes, each asked as the application is (HEAD as GET,
    ``as_get``): Starlette's own 405 names only the first route whose path matched
    (``GET /api-keys`` without its ``POST``)."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            r.matches(as_get({**request.scope, "method": method}))[0] is Match.FULL for r in routes
        )
    ]


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, internal(exc, request.url.path).message)


def install(app: FastAPI) -> None:
    app.add_exception_handler(KeysteadError, _keystead_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _keystead_error)
    app.add_exception_handler(Exception, _unexpected)
