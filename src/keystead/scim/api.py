"""The SCIM 2.0 endpoint: `/{customer_id}/api/v3/scim/…`, answered in `application/scim+json`.

Each request: the account's SCIM secret token is checked (constant time), the account
must be enterprise with the IDP integration enabled, the operation runs in one
transaction (so a failed request changes nothing), and every change — and every failure —
is written to the provisioning log (successful reads change nothing and are not).
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Uuid, bindparam, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from keystead.catalog import groups as dataset_groups
from keystead.crypto.masterkey import MasterKey
from keystead.directory import service as directory
from keystead.errors import KeysteadError, Unauthenticated
from keystead.idp import service as idp
from keystead.logs import get_logger
from keystead.runtime import Runtime
from keystead.scim import discovery, resources
from keystead.scim import log as provisioning_log
from keystead.scim.protocol import (
    LIST_SCHEMA,
    MAX_COUNT,
    MEDIA_TYPE,
    GroupResource,
    ScimError,
    UserResource,
    from_domain,
    parse_json,
)
from keystead.storage.driver import DriverQuery
from keystead.storage.models import Account
from keystead.storage.session import WriterBusy
from keystead.storage.types import utcnow
from keystead.web import jsonbody
from keystead.web.middleware import AccessLog, ClientGone, read_body

log = get_logger("keystead.scim")
# The token hash, plan and switch of one account, in one indexed query per request.
_ACCOUNT_STATE = (
    select(
        idp.IdpSettings.scim_token_hash,
        idp.IdpSettings.enabled,
        idp.IdpSettings.scim_last_seen_at,
        idp.IdpSettings.scim_last_refused_at,
        Account.plan,
    )
    .join(Account, Account.id == idp.IdpSettings.account_id)
    .where(idp.IdpSettings.account_id == bindparam("account_id", type_=Uuid()))
)
PREFIX = "/{customer_id}/api/v3/scim"
_T = TypeVar("_T")
# Bodies up to this size are written on the event loop (Entra's batches of 100 members
# are about 5 KiB); larger ones on a thread.
INLINE_WRITE_LIMIT = 16 * 1024


@dataclass
class Outcome:
    """What an operation answers and what the provisioning log should say about it."""

    status: int
    body: dict[str, Any] | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    resource_name: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    note: str | None = None  # for the provisioning log's detail


@dataclass(frozen=True)
class Call:
    account_id: uuid.UUID
    base: str
    request: Request
    body: bytes
    master: MasterKey


Operation = Callable[[Session, Call], Outcome]


@dataclass(frozen=True)
class Route:
    path: str
    methods: list[str]
    name: str  # as the provisioning log says it
    write: bool
    operation: Operation


ROUTES: list[Route] = []


def route(
    path: str, methods: list[str], name: str, *, write: bool
) -> Callable[[Operation], Operation]:
    def register(operation: Operation) -> Operation:
        ROUTES.append(Route(path, methods, name, write, operation))
        return operation

    return register


def _record(
    session: Session,
    account_id: uuid.UUID,
    method: str,
    name: str,
    outcome: Outcome | None,
    error: ScimError | None,
) -> None:
    provisioning_log.record(
        session,
        account_id=account_id,
        method=method,
        operation=name,
        resource_type=outcome.resource_type if outcome else None,
        resource_id=outcome.resource_id if outcome else None,
        resource_name=outcome.resource_name if outcome else None,
        status=error.status if error else outcome.status if outcome else 500,
        scim_type=error.scim_type if error else None,
        detail=error.message if error else outcome.note if outcome else None,
    )


def _respond(outcome: Outcome) -> Response:
    content = json.dumps(outcome.body).encode() if outcome.body is not None else b""
    headers = {**outcome.headers}
    return Response(
        content=content,
        status_code=outcome.status,
        media_type=MEDIA_TYPE if outcome.body is not None else None,
        headers=headers,
    )


def _error(exc: ScimError, request: Request) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if exc.status == 401 else {}
    return Response(
        content=json.dumps(exc.body()).encode(),
        status_code=exc.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


@dataclass(frozen=True)
class Failure:
    """A failed request's provisioning-log entry, still to be written."""

    account_id: uuid.UUID
    method: str
    name: str
    error: ScimError
    resource: Outcome | None = None  # what the request was about, as far as it can be told


def _attempted(name: str, request: Request, body: bytes) -> Outcome:
    """What a failed request was about, for its log entry: the resource type from the
    operation, its id from the path, its name from the body when that is readable JSON
    (so that filtering the log by a user or group finds the failures too)."""
    kind = "User" if "user" in name else "Group" if "group" in name else None
    named: str | None = None
    if body and len(body) <= 64 * 1024:
        try:
            document = jsonbody.loads(body)
        except KeysteadError:
            document = None  # unreadable: the entry names no resource
        if isinstance(document, dict):
            for field in ("userName", "displayName"):
                value = document.get(field)
                if isinstance(value, str) and value.strip():
                    named = value.strip()[:256]
                    break
    resource_id = request.path_params.get("resource_id")
    return Outcome(
        status=0,
        resource_type=kind,
        resource_id=str(resource_id)[:64] if resource_id else None,
        resource_name=named,
    )


class Runner:
    """One SCIM request, from the token check to the response."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._account_state = DriverQuery(_ACCOUNT_STATE, runtime.db.engine.dialect)

    def _state(self, account_id: uuid.UUID) -> Any:
        # A SQLite file: this thread's reader, on the bare driver connection.
        reader = self.runtime.db.reader()
        if reader is not None:
            return reader.first(self._account_state, {"account_id": account_id})
        with self.runtime.db.autocommit() as connection:
            return connection.execute(_ACCOUNT_STATE, {"account_id": account_id}).first()

    def authorise(
        self, customer_id: str, request: Request, *, now: bool = False
    ) -> tuple[uuid.UUID, datetime | None]:
        """The account the token is for, and when it last saw a SCIM request. A wrong token
        for an existing account is remembered (to the minute) for the setup guide: pasting
        an old or wrong token into Entra is the likeliest setup mistake."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else None
        try:
            account_id = uuid.UUID(customer_id)
        except ValueError:
            account_id = None
        row = None
        if account_id is not None:
            row = self._state(account_id)
        try:
            idp.check_scim_token_hash(row.scim_token_hash if row else None, presented)
        except Unauthenticated:
            if row is not None and account_id is not None:
                self._note(account_id, row.scim_last_refused_at, now, idp.note_scim_refusal)
            raise
        assert account_id is not None
        assert row is not None
        if row.plan != "enterprise" or not row.enabled:
            raise ScimError(
                403,
                "IDP integration is not enabled for this account (it needs the enterprise "
                "plan and `keystead idp enable`)",
            )
        return account_id, row.scim_last_seen_at

    def note_contact(self, account_id: uuid.UUID, last_seen: datetime | None, now: bool) -> None:
        """Remember, to the minute, that a request with the current token arrived."""
        self._note(account_id, last_seen, now, idp.note_scim_contact)

    def _note(
        self,
        account_id: uuid.UUID,
        last: datetime | None,
        now: bool,
        note: Callable[[Session, uuid.UUID, datetime], None],
    ) -> None:
        """Write an observation at most once a minute. Never waits: on the event loop a busy
        writer means a later request will note it."""
        moment = utcnow()
        if not idp.seen_is_stale(last, moment):
            return
        db = self.runtime.db
        try:
            with db.write_now() if now else db.write() as session:
                note(session, account_id, moment)
        except WriterBusy:
            return

    def __call__(
        self,
        customer_id: str,
        request: Request,
        body: bytes,
        operation: Operation,
        *,
        name: str,
        write: bool,
    ) -> Response:
        """The response, after the failure's log entry (if any) is written."""
        response, failure = self.answer(
            customer_id, request, body, operation, name=name, write=write
        )
        if failure is not None:
            self.log_failure(failure)
        return response

    def answer(
        self,
        customer_id: str,
        request: Request,
        body: bytes,
        operation: Operation,
        *,
        name: str,
        write: bool,
        now: bool = False,
    ) -> tuple[Response, Failure | None]:
        """The response, and the failure still to be logged (the caller writes it, in a
        transaction of its own, before answering). ``now``: a write must not wait for the
        write lock (``Database.write_now``); WriterBusy then says nothing was done."""
        try:
            account_id, last_seen = self.authorise(customer_id, request, now=now)
        except KeysteadError as exc:
            scim = from_domain(exc)
            log.info("denied", path=request.url.path, status=scim.status, reason=scim.message)
            return _error(scim, request), None
        self.note_contact(account_id, last_seen, now)
        # From the configured public URL, never the request's Host header: Location and
        # meta.location must not point wherever a caller claims the server lives.
        base = f"{self.runtime.settings.effective_public_url}/{customer_id}/api/v3/scim"
        call = Call(account_id, base, request, body, self.runtime.master)
        try:
            if write:
                # A change and its log entry commit together.
                db = self.runtime.db
                with db.write_now() if now else db.write() as session:
                    outcome = operation(session, call)
                    _record(session, account_id, request.method, name, outcome, None)
            else:
                # Successful reads change nothing, so they are not logged; failures are.
                with self.runtime.db.read() as session:
                    outcome = operation(session, call)
        except KeysteadError as exc:
            scim = from_domain(exc)
            attempted = _attempted(name, request, body)
            return _error(scim, request), Failure(account_id, request.method, name, scim, attempted)
        except WriterBusy:
            raise
        except Exception as exc:  # details to the log, a reference to the client
            reference = secrets.token_hex(6)
            log.error("unexpected_error", path=request.url.path, reference=reference, exc_info=exc)
            scim = ScimError(500, f"internal error (reference {reference})")
            return _error(scim, request), Failure(account_id, request.method, name, scim)
        return _respond(outcome), None

    def log_failure(self, failure: Failure, *, now: bool = False) -> None:
        # The failed request's own transaction rolled back; its log entry gets its own.
        db = self.runtime.db
        with db.write_now() if now else db.write() as session:
            _record(
                session,
                failure.account_id,
                failure.method,
                failure.name,
                failure.resource,
                failure.error,
            )


def build_router(runtime: Runtime) -> APIRouter:
    """The SCIM routes as FastAPI routes. `ScimDispatch` answers them in front of FastAPI;
    the router still answers what the dispatcher passes on (other methods: 405)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    run = Runner(runtime)

    def _endpoint(spec: Route) -> Callable[[str, Request], Any]:
        async def endpoint(customer_id: str, request: Request) -> Response:
            body = await request.body()
            return await run_in_threadpool(
                run, customer_id, request, body, spec.operation, name=spec.name, write=spec.write
            )

        return endpoint

    for spec in ROUTES:
        router.add_api_route(spec.path, _endpoint(spec), methods=spec.methods)
    return router


@dataclass(frozen=True)
class _Compiled:
    regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    methods: frozenset[str]
    spec: Route


class ScimDispatch:
    """ASGI: SCIM requests straight to their operation, everything else to ``fallback``.

    Routes match exactly as Starlette matches them (same compiled patterns, first route
    whose path and method match wins); a method no SCIM route takes goes to ``fallback``,
    whose copy of the routes answers 405. The body limit, the NUL refusal and the access
    log line are the same as the middleware gives every other request; what FastAPI's
    routing and middleware stack would cost per request is saved.
    """

    def __init__(
        self, fallback: ASGIApp, runtime: Runtime, *, elsewhere: tuple[str, ...] = ()
    ) -> None:
        self.fallback = fallback
        # Paths under the SCIM prefix that another adapter serves (the SSO exchange): they
        # go to ``fallback`` before SCIM's catch-all could claim them.
        self.elsewhere = [compile_path(path)[0] for path in elsewhere]
        self.limit = runtime.settings.max_body_bytes
        self.run = Runner(runtime)
        # SQLite answers in microseconds from local files, so requests run on the event
        # loop (as the data plane's do): a thread hop, and threads contending for the GIL
        # and the write lock, would cost more than the statements. A write that would
        # wait for another writer goes to the thread pool instead, as everything does on
        # PostgreSQL, which waits on the network.
        self.inline = runtime.db.writes_now
        self.routes: list[_Compiled] = []
        for spec in ROUTES:
            regex, _, convertors = compile_path(PREFIX + spec.path)
            self.routes.append(_Compiled(regex, convertors, frozenset(spec.methods), spec))

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, Any]] | None:
        if "/api/v3/scim" not in path or any(r.match(path) for r in self.elsewhere):
            return None
        for route in self.routes:
            found = route.regex.match(path)
            if found is not None and method in route.methods:
                params = {
                    key: route.convertors[key].convert(value)
                    for key, value in found.groupdict().items()
                }
                return route.spec, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        match = self._match(scope["method"], scope["path"])
        if match is None:
            await self.fallback(scope, receive, send)
            return
        # The same access line as every other request (the middleware it bypasses).
        await AccessLog(functools.partial(self._answer, *match))(scope, receive, send)

    def _log_refused_body(self, spec: Route, request: Request, refused: ScimError) -> None:
        """A body refused before the request was authorised: logged for its account only if
        the token is that account's (an unauthenticated caller writes nothing)."""
        try:
            account_id, _ = self.run.authorise(request.path_params["customer_id"], request)
        except KeysteadError:
            return
        self.run.log_failure(Failure(account_id, request.method, spec.name, refused))

    async def _answer(
        self, spec: Route, params: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["path_params"] = params
        request = Request(scope)
        try:
            body = await read_body(scope, receive, self.limit)
        except ClientGone:
            return  # nobody to answer
        except KeysteadError as exc:  # too large, or a NUL character
            refused = from_domain(exc)
            await run_in_threadpool(self._log_refused_body, spec, request, refused)
            await _error(refused, request)(scope, receive, send)
            return
        args = (params["customer_id"], request, bytes(body), spec.operation)
        # A large write (a full member list replaced, thousands of members added) would
        # hold the event loop, and every data-plane request with it, for as long as it
        # runs: those take a thread, where the loop still gets its turns.
        if not self.inline or (spec.write and len(body) > INLINE_WRITE_LIMIT):
            response = await run_in_threadpool(self.run, *args, name=spec.name, write=spec.write)
        else:
            response, failure = await _now_or_threaded(
                self.run.answer, *args, name=spec.name, write=spec.write
            )
            if failure is not None:
                await _now_or_threaded(self.run.log_failure, failure)
        await response(scope, receive, send)


async def _now_or_threaded(work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``work`` on the event loop if its write need not wait for the write lock, else (it
    raised WriterBusy before doing anything) again on a thread, where the write waits."""
    try:
        return work(*args, **kwargs, now=True)
    except WriterBusy:
        return await run_in_threadpool(functools.partial(work, *args, **kwargs))


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


def _one(items: list[dict[str, Any]], wanted: str, kind: str) -> dict[str, Any]:
    for item in items:
        if item.get("id") == wanted or item.get("name") == wanted:
            return item
    raise ScimError(404, f"no {kind} {wanted!r}")


def _search_post(session: Session, call: Call, kinds: tuple[str, ...]) -> Outcome:
    """POST …/.search (RFC 7644 §3.4.3): the query in the body instead of the URL."""
    body = parse_json(call.body)
    start, count = body.get("startIndex", 1), body.get("count", 100)
    if any(not isinstance(n, int) or isinstance(n, bool) for n in (start, count)):
        raise ScimError(400, "startIndex and count must be integers", "invalidValue")
    filter_text = body.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise ScimError(
            400, "filter must be a string, such as 'userName eq \"…\"'", "invalidFilter"
        )
    shape = resources.params(
        _attribute_names(body, "attributes"), _attribute_names(body, "excludedAttributes")
    )
    found: list[dict[str, Any]] = []
    total = 0
    for kind in kinds:
        page = resources.search(
            session,
            account_id=call.account_id,
            kind=kind,
            filter_text=filter_text,
            start=1,
            count=MAX_COUNT,
            base=call.base,
            shape=shape,
        )
        total += page.total
        found += page.items
    items = found[max(1, start) - 1 : max(1, start) - 1 + max(0, count)]
    listing = {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": max(1, start),
        "itemsPerPage": len(items),
        "Resources": items,
    }
    return Outcome(200, listing)


def _attribute_names(body: dict[str, Any], key: str) -> str | None:
    """A search body's attribute list (RFC 7644 §3.4.3: an array of strings), as the query
    parameter spells it."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return ",".join(value)
    raise ScimError(400, f"{key} must be a list of attribute names", "invalidValue")


def _int_param(call: Call, name: str, default: int) -> int:
    raw = call.request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ScimError(400, f"{name} must be an integer", "invalidValue") from exc


def _shape(call: Call) -> resources.Shape | None:
    query = call.request.query_params
    return resources.params(query.get("attributes"), query.get("excludedAttributes"))


def _search(session: Session, call: Call, kind: str) -> Outcome:
    query = call.request.query_params
    page = resources.search(
        session,
        account_id=call.account_id,
        kind=kind,
        filter_text=query.get("filter"),
        start=_int_param(call, "startIndex", 1),
        count=_int_param(call, "count", 100),
        base=call.base,
        shape=_shape(call),
    )
    body = {
        "schemas": [LIST_SCHEMA],
        "totalResults": page.total,
        "startIndex": page.start,
        "itemsPerPage": len(page.items),
        "Resources": page.items,
    }
    return Outcome(200, body, kind[:-1], None, query.get("filter"))


def _resource_id(call: Call) -> str:
    return str(call.request.path_params["resource_id"])


def _user(session: Session, call: Call) -> Any:
    return directory.get_user(session, call.account_id, _resource_id(call))


def _group(session: Session, call: Call) -> Any:
    return directory.get_group(session, call.account_id, _resource_id(call))


def _check_version(call: Call, version: int) -> None:
    wanted = call.request.headers.get("if-match")
    if wanted and wanted.strip() not in ("*", f'W/"{version}"', f'"{version}"'):
        raise ScimError(412, f"the resource changed (now version {version}); read it again")


def _user_outcome(user: Any, call: Call, status: int) -> Outcome:
    body = resources.render(UserResource, resources.user_document(user, call.base), _shape(call))
    headers = {"ETag": f'W/"{user.version}"'}
    if status == 201:
        headers["Location"] = f"{call.base}/Users/{user.id}"
    return Outcome(status, body, "User", str(user.id), user.user_name, headers)


def _group_outcome(session: Session, group: Any, call: Call, status: int) -> Outcome:
    shape = _shape(call)
    members = (
        resources.members_of(session, [group.id]).get(group.id, [])
        if resources.wants_members(shape)
        else None
    )
    body = resources.render(
        GroupResource, resources.group_document(group, call.base, members), shape
    )
    headers = {"ETag": f'W/"{group.version}"'}
    if status == 201:
        headers["Location"] = f"{call.base}/Groups/{group.id}"
    return Outcome(status, body, "Group", str(group.id), group.display_name, headers)


# --- discovery --------------------------------------------------------------------------


@route("/ServiceProviderConfig", ["GET"], "read configuration", write=False)
def _spc(session: Session, call: Call) -> Outcome:
    return Outcome(200, discovery.service_provider_config(call.base))


@route("/ResourceTypes", ["GET"], "read resource types", write=False)
def _resource_types(session: Session, call: Call) -> Outcome:
    return Outcome(200, _list(discovery.resource_types(call.base)))


@route("/ResourceTypes/{resource_id}", ["GET"], "read resource type", write=False)
def _resource_type(session: Session, call: Call) -> Outcome:
    return Outcome(
        200, _one(discovery.resource_types(call.base), _resource_id(call), "ResourceType")
    )


@route("/Schemas", ["GET"], "read schemas", write=False)
def _schemas(session: Session, call: Call) -> Outcome:
    return Outcome(200, _list(discovery.schemas(call.base)))


@route("/Schemas/{resource_id}", ["GET"], "read schema", write=False)
def _schema(session: Session, call: Call) -> Outcome:
    return Outcome(200, _one(discovery.schemas(call.base), _resource_id(call), "Schema"))


@route("/ServiceProviderConfig", ["POST", "PUT", "PATCH", "DELETE"], "refused", write=False)
@route("/ResourceTypes", ["POST", "PUT", "PATCH", "DELETE"], "refused", write=False)
@route("/Schemas", ["POST", "PUT", "PATCH", "DELETE"], "refused", write=False)
def _read_only(session: Session, call: Call) -> Outcome:
    raise ScimError(405, f"{call.request.url.path} is read-only: only GET is allowed")


@route("/.search", ["POST"], "search", write=False)
def _search_all(session: Session, call: Call) -> Outcome:
    return _search_post(session, call, ("Users", "Groups"))


@route("/Users/.search", ["POST"], "search users", write=False)
def _search_users(session: Session, call: Call) -> Outcome:
    return _search_post(session, call, ("Users",))


@route("/Groups/.search", ["POST"], "search groups", write=False)
def _search_groups(session: Session, call: Call) -> Outcome:
    return _search_post(session, call, ("Groups",))


# --- users ------------------------------------------------------------------------------


@route("/Users", ["GET"], "list users", write=False)
def _list_users(session: Session, call: Call) -> Outcome:
    return _search(session, call, "Users")


@route("/Users", ["POST"], "create user", write=True)
def _create_user(session: Session, call: Call) -> Outcome:
    user = resources.create_user(session, call.account_id, parse_json(call.body), call.master)
    return _user_outcome(user, call, 201)


@route("/Users/{resource_id}", ["GET"], "read user", write=False)
def _get_user(session: Session, call: Call) -> Outcome:
    return _user_outcome(_user(session, call), call, 200)


@route("/Users/{resource_id}", ["PUT"], "replace user", write=True)
def _put_user(session: Session, call: Call) -> Outcome:
    user = _user(session, call)
    _check_version(call, user.version)
    resources.replace_user(session, user, parse_json(call.body))
    return _user_outcome(user, call, 200)


@route("/Users/{resource_id}", ["PATCH"], "update user", write=True)
def _patch_user(session: Session, call: Call) -> Outcome:
    user = _user(session, call)
    _check_version(call, user.version)
    resources.patch_user(session, user, parse_json(call.body), call.base)
    return _user_outcome(user, call, 200)


@route("/Users/{resource_id}", ["DELETE"], "delete user", write=True)
def _delete_user(session: Session, call: Call) -> Outcome:
    user = _user(session, call)
    _check_version(call, user.version)
    directory.delete_user(session, user)
    return Outcome(204, None, "User", str(user.id), user.user_name)


# --- groups -----------------------------------------------------------------------------


@route("/Groups", ["GET"], "list groups", write=False)
def _list_groups(session: Session, call: Call) -> Outcome:
    return _search(session, call, "Groups")


@route("/Groups", ["POST"], "create group", write=True)
def _create_group(session: Session, call: Call) -> Outcome:
    group = resources.create_group(session, call.account_id, parse_json(call.body))
    outcome = _group_outcome(session, group, call, 201)
    outcome.note = dataset_groups.match_note(session, group)
    return outcome


@route("/Groups/{resource_id}", ["GET"], "read group", write=False)
def _get_group(session: Session, call: Call) -> Outcome:
    return _group_outcome(session, _group(session, call), call, 200)


@route("/Groups/{resource_id}", ["PUT"], "replace group", write=True)
def _put_group(session: Session, call: Call) -> Outcome:
    group = _group(session, call)
    _check_version(call, group.version)
    before = group.display_name_key
    resources.replace_group(session, group, parse_json(call.body))
    outcome = _group_outcome(session, group, call, 200)
    if group.display_name_key != before:  # a rename may bring it a rival for a dataset group
        outcome.note = dataset_groups.match_note(session, group)
    return outcome


@route("/Groups/{resource_id}", ["PATCH"], "update group", write=True)
def _patch_group(session: Session, call: Call) -> Outcome:
    group = _group(session, call)
    _check_version(call, group.version)
    before = group.display_name_key
    resources.patch_group(session, group, parse_json(call.body), call.base)
    outcome = Outcome(204, None, "Group", str(group.id), group.display_name)
    if group.display_name_key != before:
        outcome.note = dataset_groups.match_note(session, group)
    return outcome


@route("/Groups/{resource_id}", ["DELETE"], "delete group", write=True)
def _delete_group(session: Session, call: Call) -> Outcome:
    group = _group(session, call)
    _check_version(call, group.version)
    directory.delete_group(session, group)
    return Outcome(204, None, "Group", str(group.id), group.display_name)


@route("/{rest:path}", ["GET", "POST", "PUT", "PATCH", "DELETE"], "unknown", write=False)
def _unknown(session: Session, call: Call) -> Outcome:
    raise ScimError(404, f"no SCIM endpoint at {call.request.url.path}")
