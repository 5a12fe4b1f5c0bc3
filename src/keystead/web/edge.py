"""The edge: every request that is not the admin application's, through one routing table.

The Ubiq data plane, SCIM and the SSO exchange are protocols with fixed wire formats on
customers' hot paths, so they are answered here, in front of FastAPI (which keeps the admin
API, OpenAPI, health and the console). One table maps ``(method, path pattern)`` to an
endpoint with its flavour (how its protocol renders errors) and its cost (where the
executor runs it). Patterns match the decoded path; the endpoint sees the raw target
exactly as sent (the data plane's signatures cover it). A refused body is handed to the
endpoint, whose protocol decides what a refusal means (the SSO exchange judges it with the
CSR, SCIM logs it for the account). For every request, the admin application's too, this
module owns the request id (``web/requestids.py``), the access-log line and the metrics.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.convertors import Convertor
from starlette.datastructures import QueryParams
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keystead import logs
from keystead.errors import Internal, KeysteadError, MethodNotAllowed, is_internal
from keystead.web import requestids
from keystead.web.executor import Cost, Executor
from keystead.web.middleware import ClientGone, read_body

if TYPE_CHECKING:
    from keystead.web.metrics import Metrics

log = logs.get_logger("keystead.edge")
Headers = list[tuple[bytes, bytes]]
UNMATCHED = "unmatched"  # the route a request no route matched is counted under
# The methods of HTTP's own (RFC 9110, and PATCH): what a 405 may list, what metrics name.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(slots=True)
class Incoming:
    """One request as the edge read it."""

    scope: Scope
    params: dict[str, Any]  # the path pattern's parameters
    body: bytes
    refused: KeysteadError | None  # why the body or target broke the edge's rules, if it did
    _query: QueryParams | None = field(default=None, init=False, repr=False)

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def raw_query(self) -> str:
        query: bytes = self.scope.get("query_string", b"")
        return query.decode("latin-1")

    @property
    def query(self) -> QueryParams:
        """The query parameters, parsed once for the route's cost and its handler."""
        if self._query is None:
            self._query = QueryParams(self.raw_query)
        return self._query

    @property
    def target(self) -> str:
        """The request target exactly as sent: raw path and query."""
        raw_path: bytes = self.scope.get("raw_path") or self.scope["path"].encode()
        query = self.raw_query
        return raw_path.decode("latin-1") + ("?" + query if query else "")

    def headers(self) -> dict[str, str]:
        """Header names lower-cased; values as sent (latin-1, as HTTP carries them)."""
        return {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in self.scope["headers"]
        }

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.scope["headers"]:
            if key.lower() == wanted:
                return str(value.decode("latin-1"))
        return None

    def accepted_body(self) -> bytes:
        """The body, or the edge's refusal of it raised."""
        if self.refused is not None:
            raise self.refused
        return self.body


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: bytes | None = b"application/json"
    headers: Headers = field(default_factory=list)
    caller: str | None = None  # the calling key's public id once verified (for the access log)


_GONE = Answer(499)  # the client left: nobody to answer (499 in the access line)


class Flavour(Protocol):
    """How one protocol renders a refusal (every domain error, a 500's reference included)."""

    def refusal(self, exc: KeysteadError) -> Answer: ...


Handler = Callable[[Incoming], Answer]
Costing = Callable[[Incoming], Cost]


def fixed(cost: Cost) -> Costing:
    return lambda incoming: cost


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    path: str  # a Starlette path pattern: `/{customer_id}/api/v3/scim/Users/{resource_id}`
    flavour: Flavour
    handler: Handler  # synchronous; run where the executor decides
    cost: Costing


def internal(exc: BaseException, path: str) -> Internal:
    """A 500 for ``exc``: the details to the service log under the request's id (a fresh
    reference outside any request)."""
    reference = logs.REQUEST_ID.get() or secrets.token_hex(6)
    log.error("unexpected_error", path=path, reference=reference, exc_info=exc)
    return Internal(reference)


@dataclass(frozen=True)
class _Pattern:
    """A path pattern (or exact path) and its routes; matched with a method none of them
    take, it is the match (a 405)."""

    path: str
    regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    routes: dict[str, Route]  # by method, for every route on this pattern
    flavour: Flavour  # the first route's: it renders the 405


Match = tuple[Route, dict[str, Any]] | _Pattern


class Table:
    """The routing table: exact paths in a dict, patterns in order. A path belongs to the
    first pattern that matches it (exact paths first)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._known: dict[str, _Pattern] = {}
        for route in routes:
            if route.path not in self._known:
                regex, _, convertors = compile_path(route.path)
                self._known[route.path] = _Pattern(route.path, regex, convertors, {}, route.flavour)
            for method in route.methods:  # the first route for a method wins
                self._known[route.path].routes.setdefault(method, route)
        for known in self._known.values():
            # HEAD is GET without the body (RFC 9110, 9.3.2), which the server leaves out.
            if "GET" in known.routes:
                known.routes.setdefault("HEAD", known.routes["GET"])
        self.exact = {path: p.routes for path, p in self._known.items() if "{" not in path}
        self.patterns = [p for p in self._known.values() if "{" in p.path]
        # A path no pattern's longest literal part occurs in is matched by none of them:
        # the admin API's and the console's requests pass with a few substring checks.
        self.anchors = sorted({max(re.split(r"\{[^}]*\}", p.path), key=len) for p in self.patterns})

    def match(self, method: str, path: str) -> Match | None:
        routes = self.exact.get(path)
        if routes is not None:
            route = routes.get(method)
            return (route, {}) if route is not None else self._known[path]
        if not any(anchor in path for anchor in self.anchors):
            return None
        for pattern in self.patterns:
            found = pattern.regex.match(path)
            if found is None:
                continue
            route = pattern.routes.get(method)
            if route is None:
                return pattern
            convertors = pattern.convertors
            return route, {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
        return None


class Edge:
    """ASGI: requests the table matches are answered here, everything else by ``fallback``."""

    def __init__(
        self,
        fallback: ASGIApp,
        routes: Sequence[Route],
        executor: Executor,
        *,
        limit: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.fallback = fallback
        self.table = Table(routes)
        self.executor = executor
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        request_id = requestids.choose(scope["headers"])
        current = logs.REQUEST_ID.set(request_id)
        try:
            match = self.table.match(scope["method"], scope["path"])
            if match is None:
                await self._pass(scope, receive, send, request_id)
                return
            started = time.perf_counter()
            answer = await self._answer(match, scope, receive)
            if answer is not _GONE:
                await _send(send, answer, request_id)
            seconds = time.perf_counter() - started
            logs.access(
                method=scope["method"],
                path=scope["path"],
                status=answer.status,
                ms=round(seconds * 1000, 2),
                access_key_id=answer.caller,
                request_id=request_id,
            )
            if self.metrics is not None:
                route = match.path if isinstance(match, _Pattern) else match[0].path
                self.metrics.observe(route, scope["method"], answer.status, seconds, answer.body)
        finally:
            logs.REQUEST_ID.reset(current)

    async def _pass(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """The admin application's turn: its answer gets the request id (every answer, its
        500 too), and is counted under the route it matched (``scope["route"]``)."""
        status = 499  # until an answer starts: the client left
        stamp = (requestids.HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), stamp]}
            await send(message)

        if self.metrics is None:
            await self.fallback(scope, receive, send_with_id)
            return
        started = time.perf_counter()
        try:
            await self.fallback(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = self.metrics.route_of(scope.get("route"))
            self.metrics.observe(route, scope["method"], status, seconds, b"")

    async def _answer(self, match: Match, scope: Scope, receive: Receive) -> Answer:
        if isinstance(match, _Pattern):
            message = f"method {scope['method']} is not allowed on {scope['path']}"
            allowed = tuple(sorted(match.routes))
            return match.flavour.refusal(MethodNotAllowed(message, allowed=allowed))
        route, params = match
        try:
            try:
                body, refused = await read_body(scope, receive, self.limit), None
            except ClientGone:
                return _GONE
            except KeysteadError as exc:  # too large, NUL, half a surrogate pair
                body, refused = b"", exc
            incoming = Incoming(scope, params, body, refused)
            return await self.executor.run(route.cost(incoming), route.handler, incoming)
        except KeysteadError as exc:
            error = _refusal(exc, scope["path"])
        except Exception as exc:  # the caller gets a reference, the log the details
            error = internal(exc, scope["path"])
        return route.flavour.refusal(error)


def _refusal(exc: KeysteadError, path: str) -> KeysteadError:
    """What the caller is told: the error, or a reference for one that is Keystead's own
    fault; a denial's reason goes to the service log."""
    if isinstance(exc, Internal):
        return exc  # logged where it was made
    if is_internal(exc):
        return internal(exc, path)
    denied(log, exc, path)
    return exc


def denied(logger: Any, exc: KeysteadError, path: str) -> None:
    """A 401 or 403 and its reason, to the service log."""
    if exc.status in (401, 403):
        reason = getattr(exc, "reason", None) or exc.message
        logger.info("denied", path=path, status=exc.status, reason=reason)


async def _send(send: Send, answer: Answer, request_id: str) -> None:
    headers: Headers = []
    if answer.content_type is not None:
        headers.append((b"content-type", answer.content_type))
    headers.append((b"content-length", str(len(answer.body)).encode()))
    headers.extend(answer.headers)
    headers.append((requestids.HEADER, request_id.encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
