"""The Ubiq client endpoints, served by a small ASGI dispatcher in front of the admin app.

The client's wire format is fixed and these calls sit on customer applications' hot path,
so they skip the web framework: the dispatcher reads the raw request (target, headers,
body, exactly as the signature covers them), calls one DataPlane operation and writes
JSON. Errors leave as ``{"message": …}`` with their status, denials are logged with their
reason, and anything else under the origin goes on to the admin application.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from keystead import logs
from keystead.dataplane import events
from keystead.dataplane.service import Caller, DataPlane, DatasetRef
from keystead.dataplane.signatures import SignedRequest
from keystead.dataplane.usage_limits import UsageLimits
from keystead.errors import BadRequest, KeysteadError, TooManyRequests
from keystead.logs import get_logger
from keystead.runtime import Runtime
from keystead.storage.driver import Reader
from keystead.storage.session import Database
from keystead.web import jsonbody
from keystead.web.middleware import read_body


def _query(raw: str) -> dict[str, str]:
    """Split the raw query the way the client builds it: `ffs_name` and `papi` are sent
    unescaped ('+' is literal), only `payload_cert` is form-encoded."""
    params: dict[str, str] = {}
    for part in raw.split("&") if raw else []:
        name, _, value = part.partition("=")
        if name in params:
            raise BadRequest(f"query parameter {name!r} given twice")
        params[name] = unquote_plus(value) if name == "payload_cert" else unquote(value)
    return params


def _dataset_name(params: dict[str, str]) -> str:
    name = params.get("ffs_name", "")
    if not name:
        raise BadRequest("query parameter 'ffs_name' (the dataset name) is required")
    return name


def _key_number(params: dict[str, str]) -> int | None:
    raw = params.get("key_number")
    if raw is None:
        return None
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise BadRequest("query parameter 'key_number' must be a non-negative integer")
    return int(raw)


def _certificate(value: Any) -> str | None:
    """``payload_cert``: absent (or empty) means none; anything else must be a string."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("'payload_cert' must be a base64 string")
    return value


def _json_object(body: bytes) -> dict[str, Any]:
    value = jsonbody.loads(body)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value


class Call:
    """One client call as received: the signed request, and its query split once."""

    __slots__ = ("_query", "signed")

    def __init__(self, signed: SignedRequest, raw_query: str) -> None:
        self.signed = signed
        try:
            self._query: dict[str, str] | BadRequest = _query(raw_query)
        except BadRequest as exc:
            self._query = exc

    def params(self) -> dict[str, str]:
        """The query's parameters; a malformed query is 400 here, once the signature has
        verified."""
        if isinstance(self._query, BadRequest):
            raise self._query
        return self._query

    def named_dataset(self) -> str | None:
        """The dataset to resolve during authentication. Lenient on purpose: a malformed
        query is judged only after the signature verifies (the handler reads it strictly),
        so an unauthenticated caller learns nothing but 401."""
        if isinstance(self._query, BadRequest):
            return None
        return self._query.get("ffs_name") or None


class Reads:
    """The call's database connection, opened on first use: most calls are answered by the
    authentication lookup and the caches and never need one."""

    __slots__ = ("_connection", "_db", "_stack")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._stack: ExitStack | None = None
        self._connection: Connection | None = None

    def __call__(self) -> Connection:
        if self._connection is None:
            self._stack = ExitStack()
            self._connection = self._stack.enter_context(self._db.autocommit())
        return self._connection

    def close(self) -> None:
        """Give the connection back (a later call opens another)."""
        if self._stack is not None:
            self._stack.close()
        self._stack = self._connection = None


Ref = DatasetRef | None
Work = Callable[[Reads, Caller, Ref, Call], Any]
log = get_logger("keystead.dataplane")


@dataclass(frozen=True)
class Endpoint:
    work: Work
    status: int = 200
    names_dataset: bool = False
    writes: bool = False  # may wait for the write lock: never on the event loop


class DataPlaneDispatch:
    """ASGI: the Ubiq client's calls go to their handlers; everything else to ``fallback``."""

    def __init__(
        self, fallback: ASGIApp, runtime: Runtime, plane: DataPlane, usage_limits: UsageLimits
    ) -> None:
        self.fallback, self.runtime, self.plane = fallback, runtime, plane
        self.usage_limits = usage_limits
        self.limit = runtime.settings.max_body_bytes
        # SQLite answers these reads in microseconds from local files, so they run on the
        # event loop; a thread hop would cost more than the query. PostgreSQL waits on the
        # network, so its calls go to the thread pool.
        self.inline = runtime.db.dialect == "sqlite"
        self.exact: dict[str, dict[str, Endpoint]] = {
            "/api/v0/ffs": {"GET": Endpoint(self._ffs, names_dataset=True)},
            "/api/v0/fpe/key": {"GET": Endpoint(self._fpe_key, names_dataset=True)},
            "/api/v0/fpe/def_keys": {"GET": Endpoint(self._def_keys, names_dataset=True)},
            "/api/v0/encryption/key": {"POST": Endpoint(self._encryption_key, status=201)},
            "/api/v0/decryption/key": {"POST": Endpoint(self._decryption_key)},
            "/api/v3/tracking/events": {"POST": Endpoint(self._tracking_events, writes=True)},
        }
        # PATCH /api/v0/encryption/key/{fingerprint}/{session}
        self.usage_correction = {"PATCH": Endpoint(self._usage_correction, status=204)}

    # --- dispatch -------------------------------------------------------------------------

    def _match(self, method: str, path: str) -> Endpoint | str | None:
        """The endpoint, "405" for a data-plane path with another method, None otherwise."""
        methods = self.exact.get(path)
        if methods is None and path.startswith(_USAGE_PREFIX) and path.count("/") == _USAGE_SLASHES:
            methods = self.usage_correction
        if methods is None:
            return None
        return methods.get(method, "405")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        match = self._match(scope["method"], scope["path"])
        if match is None:
            await self.fallback(scope, receive, send)
            return
        started = time.perf_counter()
        status, payload, access_key_id, extra = await self._answer(match, scope, receive)
        await _send(send, status, payload, extra)
        logs.access(
            method=scope["method"],
            path=scope["path"],
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 2),
            access_key_id=access_key_id,
        )

    async def _answer(
        self, match: Endpoint | str, scope: Scope, receive: Receive
    ) -> tuple[int, bytes | None, str | None, Headers]:
        """Status, body, the calling key's public id once its signature verified, and any
        further headers."""
        try:
            if isinstance(match, str):
                raise MethodNotAllowed(
                    f"method {scope['method']} is not allowed on {scope['path']}"
                )
            call = await self._call(scope, receive)
            if self.inline and not match.writes:
                result, caller = self._run(match, call, inline=True)
            else:
                result, caller = await run_in_threadpool(self._run, match, call)
        except KeysteadError as exc:
            if exc.status >= 500:
                return self._unexpected(scope, exc)
            if exc.status in (401, 403):
                log.info(
                    "denied",
                    path=scope["path"],
                    status=exc.status,
                    reason=getattr(exc, "reason", None) or exc.message,
                )
            extra: Headers = []
            if isinstance(exc, TooManyRequests):
                extra = [(b"retry-after", str(exc.retry_after).encode())]
            return exc.status, json.dumps({"message": exc.message}).encode(), None, extra
        except Exception as exc:  # the client gets a reference, the log the details
            return self._unexpected(scope, exc)
        if match.status == 204:
            return 204, None, caller.access_key_id, []
        body = result if isinstance(result, bytes) else json.dumps(result).encode()
        return match.status, body, caller.access_key_id, []

    @staticmethod
    def _unexpected(scope: Scope, exc: Exception) -> tuple[int, bytes, None, Headers]:
        reference = secrets.token_hex(6)
        log.error("unexpected_error", path=scope["path"], reference=reference, exc_info=exc)
        message = {"message": f"internal error (reference {reference})"}
        return 500, json.dumps(message).encode(), None, []

    async def _call(self, scope: Scope, receive: Receive) -> Call:
        body = await read_body(scope, receive, self.limit)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        raw_query = query.decode("latin-1")
        target = raw_path.decode("latin-1") + ("?" + raw_query if query else "")
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        return Call(SignedRequest(scope["method"], target, headers, body), raw_query)

    def _run(self, endpoint: Endpoint, call: Call, *, inline: bool = False) -> tuple[Any, Caller]:
        """Authenticate (one query, on this thread's own SQLite reader when inline), then do
        the call's work; a connection for the work is opened only if it reads."""
        dataset_name = call.named_dataset() if endpoint.names_dataset else None
        db = self.runtime.db
        reads = Reads(db)
        try:
            reader: Reader | None = db.reader() if inline else None
            if reader is None:
                reader = Reader(reads().connection.driver_connection)
            caller, dataset = self.plane.authenticate(reader, call.signed, dataset_name)
            if endpoint.writes:
                # A write takes a connection of its own: holding the lookup's while waiting
                # for it would let enough concurrent writes exhaust the pool (PostgreSQL).
                reads.close()
            return endpoint.work(reads, caller, dataset, call), caller
        finally:
            reads.close()

    # --- the client's calls ---------------------------------------------------------------

    def _ffs(self, reads: Reads, caller: Caller, dataset: Ref, call: Call) -> Any:
        return self.plane.ffs(reads, dataset, _dataset_name(call.params()))

    def _fpe_key(self, reads: Reads, caller: Caller, dataset: Ref, call: Call) -> Any:
        params = call.params()
        name, number = _dataset_name(params), _key_number(params)
        certificate = _certificate(params.get("payload_cert"))
        return self.plane.fpe_key(reads, caller, dataset, name, number, certificate)

    def _def_keys(self, reads: Reads, caller: Caller, dataset: Ref, call: Call) -> Any:
        params = call.params()
        certificate = _certificate(params.get("payload_cert"))
        return self.plane.def_keys(reads, caller, dataset, _dataset_name(params), certificate)

    def _encryption_key(self, reads: Reads, caller: Caller, dataset: Ref, call: Call) -> Any:
        body = _json_object(call.signed.body)
        certificate = _certificate(body.get("payload_cert"))
        return self.plane.new_data_key(reads(), caller, body.get("uses"), certificate)

    def _decryption_key(self, reads: Reads, caller: Caller, dataset: Ref, call: Call) -> Any:
        body = _json_object(call.signed.body)
        certificate = _certificate(body.get("payload_cert"))
        return self.plane.recover_data_key(
            reads(), caller, body.get("encrypted_data_key"), certificate
        )

    def _usage_correction(self, reads: Reads, caller: Caller, dataset: Ref, call: Call) -> Any:
        body = _json_object(call.signed.body)
        for field in ("requested", "actual"):
            value = body.get(field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadRequest(f"'{field}' must be a non-negative integer")
        return None

    def _tracking_events(self, reads: Reads, caller: Caller, dataset: Ref, call: Call) -> Any:
        # The only data-plane write: its own transaction, after the signature verified,
        # within the reporting key's limits.
        report = events.parse_report(_json_object(call.signed.body))
        if not report.usage:  # nothing to store: no write, no limit to count against
            return {"stored": 0, "ignored": 0}
        stored, ignored = self.usage_limits.store(
            caller.account_id,
            caller.access_key_id,
            len(report.usage),
            lambda session: events.record(
                session,
                account_id=caller.account_id,
                reported_by=caller.access_key_id,
                report=report,
            ),
        )
        return {"stored": stored, "ignored": ignored}


Headers = list[tuple[bytes, bytes]]
_USAGE_PREFIX = "/api/v0/encryption/key/"
_USAGE_SLASHES = _USAGE_PREFIX.count("/") + 1


class MethodNotAllowed(KeysteadError):
    """A data-plane path asked with another method."""

    status = 405


async def _send(send: Send, status: int, payload: bytes | None, extra: Headers) -> None:
    headers = [(b"content-type", b"application/json")] if payload is not None else []
    headers.append((b"content-length", str(len(payload or b"")).encode()))
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload or b""})
