"""Every error leaves as ``{"message": …}`` with the right status: never a stack trace."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from keystead.errors import InvalidInput, KeysteadError, TooManyRequests
from keystead.logs import get_logger

log = get_logger("keystead.errors")


def error_response(
    status: int, message: str, *, retry_after: int | None = None, **extra: Any
) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="keystead"'} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"message": message, **extra}, status_code=status, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _keystead_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeysteadError)
    if exc.status >= 500:
        return await _unexpected(request, exc)
    if exc.status in (401, 403):
        log.info(
            "denied",
            path=request.url.path,
            status=exc.status,
            reason=getattr(exc, "reason", None) or exc.message,
        )
    if isinstance(exc, TooManyRequests):
        return error_response(exc.status, exc.message, retry_after=exc.retry_after)
    if isinstance(exc, InvalidInput) and exc.fields:
        errors = [{"field": field, "problem": problem} for field, problem in exc.fields.items()]
        return error_response(exc.status, exc.message, errors=errors)
    return error_response(exc.status, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(400, "request body is not valid JSON")
    details = [{"field": _location(err["loc"]), "problem": err["msg"]} for err in errors]
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
    return error_response(422, f"invalid request: {summary}", errors=details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, message)


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    log.info("conflict", path=request.url.path, error=type(exc).__name__)
    return error_response(409, "the change conflicts with existing data or a concurrent change")


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database_unavailable", path=request.url.path, error=str(exc).splitlines()[0])
    return error_response(503, "the database is unavailable; try again shortly")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    reference = secrets.token_hex(6)
    log.error("unexpected_error", path=request.url.path, reference=reference, exc_info=exc)
    return error_response(500, f"internal error (reference {reference})")


def install(app: FastAPI) -> None:
    app.add_exception_handler(KeysteadError, _keystead_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
