"""Pure-ASGI middleware (cheap on the hot path): body size limit and the access log."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keystead import logs
from keystead.errors import BadRequest, KeysteadError


class _BodyTooLarge(Exception):
    pass


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
    """The whole body of a request that an adapter answers itself (not through the
    middleware below): over ``limit`` — declared or streamed — is 413, a NUL character
    anywhere in the target or body or a lone surrogate escape in the body is 400, the same
    rules the middleware applies."""
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
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    refused = refused_text(path=raw_path, query=scope.get("query_string", b""), body=body)
    if refused is not None:
        raise BadRequest(refused)
    return body


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed.

    A streamed body is cut off the moment it passes the limit: the 413 goes out at once,
    the application sees the client disconnect, and whatever it answers is dropped.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = {"message": too_large(self.limit)}
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_json(send, 400, {"message": "Content-Length is not a number"})
                    return
                if declared > self.limit:
                    await send_json(send, 413, refused)
                    return
        seen = 0
        started = False
        cut_off = False

        async def counted_receive() -> Message:
            nonlocal seen, cut_off, started
            if cut_off:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    cut_off = True
                    if not started:
                        started = True
                        await send_json(send, 413, refused)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut_off:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not cut_off:
                raise


def contains_nul(*, path: bytes, query: bytes, body: bytes) -> bool:
    """A NUL character raw or percent-encoded in the target, or raw or JSON-escaped in the
    body. No Keystead text may hold one, and PostgreSQL cannot even compare such text."""
    return any(b"\x00" in part or b"%00" in part for part in (path, query)) or (
        b"\x00" in body or b"\\u0000" in body
    )


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# Every escape, left to right: `\\` is one escape, so the `\\ud800` that follows an
# escaped backslash is text, not an escape.
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


def has_lone_surrogate(body: bytes) -> bool:
    """A JSON ``\\u`` escape of half a surrogate pair without the other half right next to
    it. JSON parsers turn it into a string that is no Unicode text: UTF-8 cannot encode it,
    so neither database can store or even compare it (a raw UTF-8 body cannot hold one)."""
    if not _SURROGATE_ESCAPE.search(body):  # the usual case: one scan, nothing to pair
        return False
    high_ends_at: int | None = None  # where an unpaired high surrogate's escape ends
    for escape in _ESCAPE.finditer(body):
        code = int(escape.group(1), 16) if escape.group(1) else None
        low = code is not None and 0xDC00 <= code <= 0xDFFF
        if high_ends_at is not None:
            if not (low and escape.start() == high_ends_at):
                return True
            high_ends_at = None
        elif code is not None and 0xD800 <= code <= 0xDBFF:
            high_ends_at = escape.end()
        elif low:
            return True
    return high_ends_at is not None


def refused_text(*, path: bytes, query: bytes, body: bytes) -> str | None:
    """Why the target or body holds text that no Keystead field accepts, or None."""
    if contains_nul(path=path, query=query, body=body):
        return NUL_REFUSED
    if has_lone_surrogate(body):
        return SURROGATE_REFUSED
    return None


class RejectNonText:
    """Refuse NUL characters in the path, query or body, and escapes of lone surrogates in
    the body, with 400.

    No Keystead text may contain either: PostgreSQL cannot store or even compare text with
    NUL, and a lone surrogate cannot be encoded for either database (the path and query are
    decoded with replacement characters, so only the body can carry one). They are
    refused here once instead of in every handler.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        body = bytearray()
        more = True
        messages: list[Message] = []
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        query = scope.get("query_string", b"")
        refused = refused_text(path=raw_path, query=query, body=bytes(body))
        if refused is not None:
            await send_json(send, 400, {"message": refused})
            return

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)


class AccessLog:
    """One structured line per request: method, path (never the query), status, time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            logs.access(
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 2),
            )
