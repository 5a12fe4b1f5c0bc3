"""The Ubiq client endpoints, as routes of the edge (``web/edge.py``).

The client's wire format is fixed and these calls sit on customer applications' hot path:
each reads the raw request (target, headers, body, exactly as the signature covers them),
calls one DataPlane operation and answers JSON. Errors leave as ``{"message": …}`` with
their status (:class:`Ubiq`, the one renderer).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from sqlalchemy import Connection

from keystead.dataplane import events
from keystead.dataplane.service import Caller, DataPlane, DatasetRef
from keystead.dataplane.signatures import SignedRequest
from keystead.dataplane.usage_limits import UsageLimits
from keystead.errors import BadRequest, KeysteadError, MethodNotAllowed, TooManyRequests
from keystead.runtime import Runtime
from keystead.storage.driver import ConnectionReader, Reader
from keystead.storage.failures import reraise_as_domain
from keystead.storage.session import Database
from keystead.web import jsonbody
from keystead.web.edge import Answer, Incoming, Route, fixed
from keystead.web.executor import Cost


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


class Ubiq:
    """The Ubiq client's error format: ``{"message": …}`` with the status (and
    ``Retry-After`` when the caller must wait)."""

    def refusal(self, exc: KeysteadError) -> Answer:
        headers: list[tuple[bytes, bytes]] = []
        if isinstance(exc, TooManyRequests):
            headers.append((b"retry-after", str(exc.retry_after).encode()))
        elif isinstance(exc, MethodNotAllowed):
            headers.append((b"allow", ", ".join(exc.allowed).encode()))
        return Answer(exc.status, json.dumps({"message": exc.message}).encode(), headers=headers)


UBIQ = Ubiq()


@dataclass(frozen=True)
class Endpoint:
    work: Work
    status: int = 200
    names_dataset: bool = False
    writes: bool = False  # stores a batch of rows: never on the event loop


class DataPlaneEndpoints:
    """The client's calls as the edge's routes: each verifies the signature, then does its
    work and answers JSON."""

    def __init__(self, runtime: Runtime, plane: DataPlane, usage_limits: UsageLimits) -> None:
        self.runtime, self.plane, self.usage_limits = runtime, plane, usage_limits

    def routes(self) -> list[Route]:
        def route(method: str, path: str, endpoint: Endpoint) -> Route:
            # A call naming its dataset is answered by the authentication lookup and the
            # plane's caches, which the process usually keeps; the others read on (a point
            # read each); a usage report is a batch.
            cost = Cost.KEPT if endpoint.names_dataset else Cost.READ
            if endpoint.writes:
                cost = Cost.GROWS
            handler = functools.partial(self._handle, endpoint)
            return Route((method,), path, UBIQ, handler, fixed(cost))

        return [
            route("GET", "/api/v0/ffs", Endpoint(self._ffs, names_dataset=True)),
            route("GET", "/api/v0/fpe/key", Endpoint(self._fpe_key, names_dataset=True)),
            route("GET", "/api/v0/fpe/def_keys", Endpoint(self._def_keys, names_dataset=True)),
            route("POST", "/api/v0/encryption/key", Endpoint(self._encryption_key, status=201)),
            route("POST", "/api/v0/decryption/key", Endpoint(self._decryption_key)),
            route("POST", "/api/v3/tracking/events", Endpoint(self._tracking, writes=True)),
            route(
                "PATCH",
                "/api/v0/encryption/key/{fingerprint}/{session}",
                Endpoint(self._usage_correction, status=204),
            ),
        ]

    def _handle(self, endpoint: Endpoint, incoming: Incoming) -> Answer:
        """Authenticate (one query, through the database's reader), then do the call's work;
        a connection for the work is opened only if it reads."""
        body = incoming.accepted_body()
        call = Call(
            SignedRequest(incoming.method, incoming.target, incoming.headers(), body),
            incoming.raw_query,
        )
        dataset_name = call.named_dataset() if endpoint.names_dataset else None
        db = self.runtime.db
        reads = Reads(db)
        try:
            reader: Reader | None = db.reader()
            if reader is None:
                reader = ConnectionReader(reads().connection.driver_connection)
            caller, dataset = self.plane.authenticate(reader, call.signed, dataset_name)
            if endpoint.writes:
                # A write takes a connection of its own: holding the lookup's while waiting
                # for it would let enough concurrent writes exhaust the pool (PostgreSQL).
                reads.close()
            result = endpoint.work(reads, caller, dataset, call)
        except KeysteadError:
            raise
        except Exception as exc:  # the lookups hold a bare connection: map its failures here
            reraise_as_domain(exc)
        finally:
            reads.close()
        if endpoint.status == 204:
            return Answer(204, content_type=None, caller=caller.access_key_id)
        payload = result if isinstance(result, bytes) else json.dumps(result).encode()
        return Answer(endpoint.status, payload, caller=caller.access_key_id)

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

    def _tracking(self, reads: Reads, caller: Caller, dataset: Ref, call: Call) -> Any:
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
