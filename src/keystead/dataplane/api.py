"""The Ubiq client endpoints. Plain Starlette routes: the client's wire format is fixed, so
the handlers only read the raw request, call one DataPlane operation and answer JSON.
Errors become ``{"message": …}`` in keystead.web.errors like everywhere else."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, unquote_plus

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keystead.dataplane import events
from keystead.dataplane.service import Caller, DataPlane, DatasetRef
from keystead.dataplane.signatures import SignedRequest
from keystead.errors import BadRequest
from keystead.runtime import Runtime


async def _signed(request: Request) -> SignedRequest:
    body = await request.body()
    raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    query: bytes = request.scope.get("query_string", b"")
    target = raw_path.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in request.scope["headers"]
    }
    return SignedRequest(request.method, target, headers, body)


def _query(signed: SignedRequest) -> dict[str, str]:
    """Split the raw query the way the client builds it: `ffs_name` and `papi` are sent
    unescaped ('+' is literal), only `payload_cert` is form-encoded."""
    _, _, raw = signed.target.partition("?")
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
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest("query parameter 'key_number' must be a non-negative integer")
    return int(raw)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("request body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value


Ref = DatasetRef | None
Work = Callable[[Connection, Caller, Ref, SignedRequest], Any]
Names = Callable[[SignedRequest], str | None]


def _no_dataset(signed: SignedRequest) -> str | None:
    return None


def _named_dataset(signed: SignedRequest) -> str | None:
    """The dataset to resolve during authentication. Lenient on purpose: a malformed query
    is judged only after the signature verifies (the handler re-reads it strictly), so an
    unauthenticated caller learns nothing but 401."""
    try:
        return _dataset_name(_query(signed))
    except BadRequest:
        return None


def build_routes(runtime: Runtime, plane: DataPlane) -> list[Route]:
    # SQLite answers these reads in microseconds from local files, so they run on the event
    # loop; a thread hop would cost more than the query. PostgreSQL waits on the network,
    # so its calls go to the thread pool.
    inline = runtime.db.dialect == "sqlite"

    def endpoint(
        work: Work, *, names: Names = _no_dataset, status: int = 200
    ) -> Callable[[Request], Awaitable[Response]]:
        def run(signed: SignedRequest) -> Any:
            dataset_name = names(signed)
            with runtime.db.autocommit() as connection:
                caller, dataset = plane.authenticate(connection, signed, dataset_name)
                return work(connection, caller, dataset, signed)

        async def handle(request: Request) -> Response:
            signed = await _signed(request)
            result = run(signed) if inline else await run_in_threadpool(run, signed)
            if status == 204:
                return Response(status_code=204)
            return JSONResponse(result, status_code=status)

        return handle

    def ffs(db: Connection, caller: Caller, dataset: Ref, signed: SignedRequest) -> Any:
        return plane.ffs(db, dataset, _dataset_name(_query(signed)))

    def fpe_key(db: Connection, caller: Caller, dataset: Ref, signed: SignedRequest) -> Any:
        params = _query(signed)
        return plane.fpe_key(db, caller, dataset, _dataset_name(params), _key_number(params))

    def def_keys(db: Connection, caller: Caller, dataset: Ref, signed: SignedRequest) -> Any:
        return plane.def_keys(db, caller, dataset, _dataset_name(_query(signed)))

    def encryption_key(db: Connection, caller: Caller, dataset: Ref, signed: SignedRequest) -> Any:
        return plane.new_data_key(db, caller, _json_object(signed.body).get("uses"))

    def decryption_key(db: Connection, caller: Caller, dataset: Ref, signed: SignedRequest) -> Any:
        body = _json_object(signed.body)
        return plane.recover_data_key(db, caller, body.get("encrypted_data_key"))

    def usage_correction(
        db: Connection, caller: Caller, dataset: Ref, signed: SignedRequest
    ) -> Any:
        body = _json_object(signed.body)
        for field in ("requested", "actual"):
            value = body.get(field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadRequest(f"'{field}' must be a non-negative integer")
        return None

    def record_events(signed: SignedRequest) -> Any:
        with runtime.db.autocommit() as connection:
            caller, _ = plane.authenticate(connection, signed)
        report = events.parse_report(_json_object(signed.body))
        with runtime.db.write() as session:
            stored, ignored = events.record(
                session,
                account_id=caller.account_id,
                reported_by=caller.access_key_id,
                report=report,
            )
        return {"stored": stored, "ignored": ignored}

    async def tracking_events(request: Request) -> Response:
        signed = await _signed(request)
        return JSONResponse(await run_in_threadpool(record_events, signed))

    return [
        Route("/api/v0/ffs", endpoint(ffs, names=_named_dataset), methods=["GET"]),
        Route("/api/v0/fpe/key", endpoint(fpe_key, names=_named_dataset), methods=["GET"]),
        Route("/api/v0/fpe/def_keys", endpoint(def_keys, names=_named_dataset), methods=["GET"]),
        Route("/api/v0/encryption/key", endpoint(encryption_key, status=201), methods=["POST"]),
        Route(
            "/api/v0/encryption/key/{fingerprint}/{session}",
            endpoint(usage_correction, status=204),
            methods=["PATCH"],
        ),
        Route("/api/v0/decryption/key", endpoint(decryption_key), methods=["POST"]),
        Route("/api/v3/tracking/events", tracking_events, methods=["POST"]),
    ]
