"""Request bodies under Keystead's rules (size limit, no NUL, no lone surrogate), read by
the edge for its routes and by :class:`AdminRequests` for the admin application."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keystead import logs
from keystead.errors import BadRequest, KeysteadError


class PayloadTooLarge(KeysteadError):
    """The request body is over the configured limit."""

    status = 413


class ClientGone(BadRequest):
    """The client disconnected before its whole body arrived (nobody reads the answer)."""


NUL_REFUSED = "the request contains a NUL character, which no field accepts"
SURROGATE_REFUSED = (
    "the request body has a \\u escape of half a surrogate pair (\\ud800-\\udfff without "
    "its other half), which is no character; send the character itself or both halves"
)


def too_large(limit: int) -> str:
    return f"request body is larger than the {limit}-byte limit"


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body: over ``limit`` (declared or streamed) is 413; a NUL character
    anywhere in the target or body, or a lone surrogate escape in the body, is 400."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise BadRequest("Content-Length is not a number") from None
            if declared > limit:
                raise PayloadTooLarge(too_large(limit))
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone("the client went away before sending its body")
    body: bytes = message.get("body", b"")
    if message.get("more_body", False):
        received = bytearray(body)
        while len(received) <= limit:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientGone("the client went away before sending its body")
            received += message.get("body", b"")
            if not message.get("more_body", False):
                break
        body = bytes(received)
    if len(body) > limit:
        raise PayloadTooLarge(too_large(limit))
    # A NUL character raw or percent-encoded in the target, or raw or JSON-escaped in the
    # body: no Keystead text may hold one, and PostgreSQL cannot even compare such text.
    target = (scope.get("raw_path") or scope["path"].encode(), scope.get("query_string", b""))
    if b"\x00" in body or b"\\u0000" in body or any(b"\x00" in p or b"%00" in p for p in target):
        raise BadRequest(NUL_REFUSED)
    if has_lone_surrogate(body):
        raise BadRequest(SURROGATE_REFUSED)
    return body


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_ESCAPED_BACKSLASH = re.compile(rb"\\\\")
_PAIR = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def has_lone_surrogate(body: bytes) -> bool:
    """A JSON ``\\u`` escape of half a surrogate pair without the other half right next to
    it. JSON parsers turn it into a string that is no Unicode text: UTF-8 cannot encode it,
    so neither database can store or even compare it (a raw UTF-8 body cannot hold one).

    A few passes of compiled patterns, whatever the body holds: it runs on the event loop
    before anyone is authenticated, so it takes no Python step per escape."""
    if not _SURROGATE_ESCAPE.search(body):  # the usual case: one scan, nothing to pair
        return False
    # Within a run of backslashes, pairs from the left are escaped backslashes. Each becomes
    # a character that is no backslash, so every backslash left starts an escape
    # (``\\ud800`` is text), and escapes it stood between stay apart: ``\ud800\\\udc00``
    # is two halves with a backslash between them, not a pair.
    escapes = _ESCAPED_BACKSLASH.sub(b"/", body)
    # Without the whole pairs, any surrogate escape left is half of one.
    return _SURROGATE_ESCAPE.search(_PAIR.sub(b"", escapes)) is not None


# The method a HEAD request asked with, once the admin application routes it as a GET.
ASKED_METHOD = "keystead.asked_method"


def as_get(scope: Scope) -> Scope:
    """HEAD is GET without the body (RFC 9110, 9.3.2), which the server leaves out; the
    admin application's routes take GET only."""
    if scope["method"] != "HEAD":
        return scope
    return {**scope, "method": "GET", ASKED_METHOD: "HEAD"}


class AdminRequests:
    """The admin application's requests under the edge's rules: the body read whole by
    :func:`read_body` (refused here once instead of in every handler) and handed on; one
    access-log line each (method, path without the query, status, time, request id)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            try:
                body = await read_body(scope, receive, self.limit)
            except ClientGone:
                status = 499  # nobody to answer
                return
            except KeysteadError as exc:
                await _send_json(capture, exc.status, {"message": exc.message})
                return
            pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

            async def replay() -> Message:  # the body read, then whatever the client sends
                return pending.pop() if pending else await receive()

            await self.app(as_get(scope), replay, capture)
        finally:
            logs.access(
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
                request_id=logs.REQUEST_ID.get(),  # the edge's, which every request meets first
            )
