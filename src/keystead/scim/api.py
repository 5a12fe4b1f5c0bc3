"""The SCIM 2.0 endpoint: `/{customer_id}/api/v3/scim/…`, answered in `application/scim+json`.

Each request: the account's SCIM secret token is checked (constant time), the account
must be enterprise with the IDP integration enabled, the operation runs in one
transaction (so a failed request changes nothing), and every change — and every failure —
is written to the provisioning log (successful reads change nothing and are not).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from scim2_models import Context
from sqlalchemy import Uuid, bindparam, select
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams
from starlette.requests import Request

from keystead import names
from keystead.catalog import groups as dataset_groups
from keystead.crypto.masterkey import MasterKey
from keystead.directory import service as directory
from keystead.errors import KeysteadError, MethodNotAllowed, Unauthenticated
from keystead.idp import service as idp
from keystead.providers import PROVIDER
from keystead.runtime import Runtime
from keystead.scim import discovery, search, wire
from keystead.scim import log as provisioning_log
from keystead.scim.wire import (
    MAX_START_INDEX,
    MEDIA_TYPE,
    GroupResource,
    ScimError,
    UserResource,
    from_domain,
)
from keystead.storage.driver import DriverQuery
from keystead.storage.models import Account
from keystead.storage.session import WriterBusy
from keystead.storage.types import utcnow
from keystead.web import jsonbody
from keystead.web.edge import Answer, Costing, Incoming, Route, fixed, internal
from keystead.web.executor import Cost

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


class _AccountState(NamedTuple):
    scim_token_hash: str | None
    enabled: bool
    scim_last_seen_at: datetime | None
    scim_last_refused_at: datetime | None
    plan: str


PREFIX = "/{customer_id}/api/v3/scim"
DEFAULT_COUNT = 100  # results in a page whose request gives no count
_PAGING = {
    "startIndex": "the 1-based index of the page's first result",
    "count": "how many results a page holds at most",
}
# A query's integer: ASCII digits only (int() also takes "1_000" and other scripts' digits).
_INTEGER = re.compile(r"\s*([+-]?)0*([0-9]+)\s*", re.ASCII)
_BEYOND_BOUNDS = MAX_START_INDEX + 1  # above MAX_COUNT too
_BOUNDED_DIGITS = len(str(_BEYOND_BOUNDS))
# A write with a body up to this size is a point write (Entra's batches of 100 members
# are about 5 KiB); a larger one (a full member list replaced, thousands of members
# added) grows with its body.
LARGE_BODY = 16 * 1024
_MEDIA_TYPE = MEDIA_TYPE.encode()


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
    query: QueryParams  # parsed once, by the edge (the route's cost read it too)
    body: bytes
    master: MasterKey


Operation = Callable[[Session, Call], Outcome]
Stored = TypeVar("Stored", directory.User, directory.Group)


def _by_body(incoming: Incoming) -> Cost:
    return Cost.WRITE if len(incoming.body) <= LARGE_BODY else Cost.GROWS


def _shape(query: QueryParams) -> wire.Shape | None:
    return wire.shape(query.get("attributes"), query.get("excludedAttributes"))


# A SCIM read is point work that may write: a failure's provisioning-log entry, the
# once-a-minute note of Entra's contact (or of a wrong token). On SQLite it starts on the
# loop and moves to a thread when that write would wait for another writer.
POINT = Cost.WRITE


def _listing(kind: str) -> Costing:
    def cost(incoming: Incoming) -> Cost:
        try:
            shape = _shape(incoming.query)
        except ScimError:  # the request fails before any row is read
            return POINT
        point = search.is_point_lookup(kind, incoming.query.get("filter"), shape)
        return POINT if point else Cost.GROWS

    return cost


def _one_group(incoming: Incoming) -> Cost:
    """A group with its members grows with the group; without them it is point work."""
    try:
        return Cost.GROWS if wire.wants_members(_shape(incoming.query)) else POINT
    except ScimError:
        return POINT


@dataclass(frozen=True)
class Spec:
    """One SCIM operation: its path under the prefix, methods, provisioning-log name."""

    path: str
    methods: list[str]
    name: str  # as the provisioning log says it
    write: bool
    operation: Operation
    cost: Costing  # for the executor: whether the work may run on the event loop


SPECS: list[Spec] = []


def route(
    path: str,
    methods: list[str],
    name: str,
    *,
    write: bool,
    cost: Costing | None = None,
) -> Callable[[Operation], Operation]:
    costing = cost or (_by_body if write else fixed(POINT))

    def register(operation: Operation) -> Operation:
        SPECS.append(Spec(path, methods, name, write, operation, costing))
        return operation

    return register


def _record(
    session: Session,
    account_id: uuid.UUID,
    method: str,
    name: str,
    about: Outcome,
    error: ScimError | None = None,
) -> None:
    """The provisioning-log entry of a change (``about``: its outcome) or of a failure
    (``about``: what the request was about, as far as it can be told)."""
    provisioning_log.record(
        session,
        provisioning_log.entry(
            account_id=account_id,
            method=method,
            operation=name,
            resource_type=about.resource_type,
            resource_id=about.resource_id,
            resource_name=about.resource_name,
            status=error.status if error else about.status,
            scim_type=error.scim_type if error else None,
            detail=error.message if error else about.note,
        ),
    )


def _respond(outcome: Outcome) -> Answer:
    headers = [(k.lower().encode(), v.encode()) for k, v in outcome.headers.items()]
    if outcome.body is None:
        return Answer(outcome.status, content_type=None, headers=headers)
    return Answer(outcome.status, json.dumps(outcome.body).encode(), _MEDIA_TYPE, headers)


class Scim:
    """SCIM's error format (RFC 7644 §3.12): the Error schema, ``scimType`` where one
    applies, ``application/scim+json``."""

    def refusal(self, exc: KeysteadError) -> Answer:
        scim = from_domain(exc)
        headers: list[tuple[bytes, bytes]] = []
        if scim.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="scim"'))
        elif isinstance(exc, MethodNotAllowed):
            headers.append((b"allow", ", ".join(exc.allowed).encode()))
        return Answer(scim.status, json.dumps(scim.body()).encode(), _MEDIA_TYPE, headers)


SCIM = Scim()


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
            given = (document.get(key) for key in ("userName", "displayName"))
            named = next((v.strip()[:256] for v in given if isinstance(v, str) and v.strip()), None)
    in_path = request.path_params.get("resource_id")
    resource_id = str(in_path)[:64] if in_path else None
    return Outcome(0, resource_type=kind, resource_id=resource_id, resource_name=named)


class Runner:
    """One SCIM request, from the token check to the response."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._account_state = DriverQuery(_ACCOUNT_STATE, runtime.db.engine.dialect, _AccountState)

    def authorise(self, customer_id: str, request: Request) -> tuple[uuid.UUID, datetime | None]:
        """The account the token is for, and when it last saw a SCIM request. A wrong token
        for an existing account is remembered (to the minute) for the setup guide: pasting
        an old or wrong token into Entra is the likeliest setup mistake."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else None
        account_id = names.as_id(customer_id)
        row = None
        if account_id is not None:
            row = self.runtime.db.first(self._account_state, {"account_id": account_id})
        try:
            idp.check_scim_token_hash(row.scim_token_hash if row else None, presented)
        except Unauthenticated:
            if row is not None and account_id is not None:
                self._note(account_id, row.scim_last_refused_at, idp.note_scim_refusal)
            raise
        if account_id is None or row is None:  # no stored hash: the check above refused it
            raise Unauthenticated("the SCIM token is not valid")
        if not idp.integration_active(row.plan, row.enabled):
            raise ScimError(
                403,
                "IDP integration is not enabled for this account (it needs the enterprise "
                "plan and `keystead idp enable`)",
            )
        return account_id, row.scim_last_seen_at

    def _note(
        self,
        account_id: uuid.UUID,
        last: datetime | None,
        note: Callable[[Session, uuid.UUID, datetime], None],
    ) -> None:
        """Write an observation at most once a minute. Never makes the request wait: on the
        event loop a busy writer means a later request will note it."""
        moment = utcnow()
        if idp.seen_is_stale(last, moment):
            with contextlib.suppress(WriterBusy), self.runtime.db.write() as session:
                note(session, account_id, moment)

    def handle(self, spec: Spec, incoming: Incoming) -> Answer:
        """The answer; a refusal is raised for the edge to render, after its provisioning-log
        entry is written (in a transaction of its own: the request's rolled back). On the
        event loop a write that would wait raises WriterBusy before anything was done."""
        request = Request({**incoming.scope, "path_params": incoming.params})
        customer_id = str(incoming.params["customer_id"])
        if incoming.refused is not None:
            # Too large, NUL: refused before the request was authorised, so logged for its
            # account only if the token is that account's (an unauthenticated caller writes
            # nothing).
            try:
                account_id, _ = self.authorise(customer_id, request)
            except KeysteadError:
                pass
            else:
                self._log_failure(account_id, request, spec, from_domain(incoming.refused))
            raise incoming.refused
        account_id, last_seen = self.authorise(customer_id, request)
        self._note(account_id, last_seen, idp.note_scim_contact)
        # From the configured public URL, never the request's Host header: Location and
        # meta.location must not point wherever a caller claims the server lives.
        # The account's id as Keystead writes it, not as the caller spelled it (any UUID
        # spelling names the account).
        base = f"{self.runtime.settings.effective_public_url}/{account_id}/api/v3/scim"
        call = Call(account_id, base, request, incoming.query, incoming.body, self.runtime.master)
        try:
            if spec.write:
                # A change and its log entry commit together.
                with self.runtime.db.write() as session:
                    outcome = spec.operation(session, call)
                    _record(session, account_id, request.method, spec.name, outcome)
            else:
                # Successful reads change nothing, so they are not logged; failures are.
                with self.runtime.db.read() as session:
                    outcome = spec.operation(session, call)
        except KeysteadError as exc:
            attempted = _attempted(spec.name, request, incoming.body)
            self._log_failure(account_id, request, spec, from_domain(exc), attempted)
            raise
        except WriterBusy:
            raise
        except Exception as exc:
            error = internal(exc, request.url.path)
            self._log_failure(account_id, request, spec, from_domain(error))
            raise error from exc
        return _respond(outcome)

    def _log_failure(
        self,
        account_id: uuid.UUID,
        request: Request,
        spec: Spec,
        error: ScimError,
        attempted: Outcome | None = None,
    ) -> None:
        # The failed request's own transaction rolled back; its log entry gets its own.
        with self.runtime.db.write() as session:
            about = attempted or Outcome(error.status)  # about nothing the log can name
            _record(session, account_id, request.method, spec.name, about, error)


def routes(runtime: Runtime) -> list[Route]:
    run = Runner(runtime)
    return [
        Route(
            tuple(spec.methods),
            PREFIX + spec.path,
            SCIM,
            functools.partial(run.handle, spec),
            spec.cost,
        )
        for spec in SPECS
    ]


def operations() -> dict[tuple[str, str], str]:
    """The operation (as the provisioning log names it) each route pattern and method is,
    the first route for a method winning as in the edge's table: the metrics' labels."""
    named: dict[tuple[str, str], str] = {}
    for spec in SPECS:
        for method in spec.methods:
            named.setdefault((PREFIX + spec.path, method), spec.name)
    return named


def _search_post(session: Session, call: Call, kinds: tuple[str, ...]) -> Outcome:
    """POST …/.search (RFC 7644 §3.4.3): the query in the body instead of the URL, paged as
    the listing pages. The root search's results are every User, then every Group, each in
    the listing's order: each kind is asked only for the part of the page that falls in it
    (from its own start), so a page costs what the listing's does, however deep it is."""
    body = wire.parse_json(call.body)
    start = _page_field(body, "startIndex", 1)
    count = _page_field(body, "count", DEFAULT_COUNT)
    filter_text = body.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise ScimError(
            400, "filter must be a string, such as 'userName eq \"…\"'", "invalidFilter"
        )
    asked = wire.shape(
        _attribute_names(body, "attributes"), _attribute_names(body, "excludedAttributes")
    )
    first, wanted = search.bounds(start, count)
    before = first - 1  # results before the page among the kinds not yet asked
    total = 0
    items: list[dict[str, Any]] = []
    for kind in kinds:
        page = search.search(
            session,
            account_id=call.account_id,
            kind=kind,
            filter_text=filter_text,
            start=before + 1,
            count=wanted - len(items),
            base=call.base,
            shape=asked,
        )
        total += page.total
        items += page.items
        before = max(0, before - page.total)
    return Outcome(200, wire.listing(total, first, items))


def _attribute_names(body: dict[str, Any], key: str) -> str | None:
    """A search body's attribute list (RFC 7644 §3.4.3: an array of strings), as the query
    parameter spells it."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return ",".join(value)
    raise ScimError(400, f"{key} must be a list of attribute names", "invalidValue")


def _not_an_integer(name: str) -> ScimError:
    return ScimError(400, f"{name} must be an integer: {_PAGING[name]}", "invalidValue")


def _page_field(body: dict[str, Any], name: str, default: int) -> int:
    """startIndex or count of a search body: a JSON integer (not 1.0, 1e3, "1" or true)."""
    value = body.get(name)
    if value is None:  # null is no value (RFC 7643 §2.5), as for filter and attributes
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _not_an_integer(name)
    return value


def _int_param(call: Call, name: str, default: int) -> int:
    """startIndex or count of a query: decimal digits, with a sign if any."""
    raw = call.query.get(name)
    if not raw:
        return default
    found = _INTEGER.fullmatch(raw)
    if found is None:
        raise _not_an_integer(name)
    sign, digits = found.groups()
    # More digits than any bound a page applies are past that bound whatever they are, and
    # are not converted: Python refuses to convert more than 4,300 digits.
    magnitude = int(digits) if len(digits) <= _BOUNDED_DIGITS else _BEYOND_BOUNDS
    return -magnitude if sign == "-" else magnitude


def _search(session: Session, call: Call, kind: str) -> Outcome:
    page = search.search(
        session,
        account_id=call.account_id,
        kind=kind,
        filter_text=call.query.get("filter"),
        start=_int_param(call, "startIndex", 1),
        count=_int_param(call, "count", DEFAULT_COUNT),
        base=call.base,
        shape=_shape(call.query),
    )
    return Outcome(200, wire.listing(page.total, page.start, page.items))


def _resource_id(call: Call) -> str:
    return str(call.request.path_params["resource_id"])


def _resource(session: Session, call: Call, get: Callable[..., Stored]) -> Stored:
    """The user or group the path names; a change locks its row first (and checks
    If-Match), so concurrent changes of one resource take turns."""
    changes = call.request.method != "GET"
    found = get(session, call.account_id, _resource_id(call), for_change=changes)
    version, wanted = found.version, call.request.headers.get("if-match")
    if wanted and wanted.strip() not in ("*", f'W/"{version}"', f'"{version}"'):
        raise ScimError(412, f"the resource changed (now version {version}); read it again")
    return found


def _user_outcome(user: directory.User, call: Call, status: int) -> Outcome:
    body = wire.render(UserResource, wire.user_document(user, call.base), _shape(call.query))
    headers = {"ETag": f'W/"{user.version}"'}
    if status == 201:
        headers["Location"] = f"{call.base}/Users/{user.id}"
    return Outcome(status, body, "User", str(user.id), user.user_name, headers)


def _group_outcome(
    session: Session, group: directory.Group, call: Call, status: int, renamed: bool = False
) -> Outcome:
    """The group as answered (204: no body); when it was created or renamed, the
    provisioning log's note of a dataset group its name now matches alike with another."""
    outcome = Outcome(status, None, "Group", str(group.id), group.display_name)
    if renamed:
        outcome.note = dataset_groups.match_note(
            session, account_id=group.account_id, group_id=group.id, name_key=group.display_name_key
        )
    if status == 204:
        return outcome
    asked = _shape(call.query)
    members = search.members_of(session, [group.id]) if wire.wants_members(asked) else {}
    document = wire.group_document(group, call.base, members.get(group.id))
    outcome.body = wire.render(GroupResource, document, asked)
    outcome.headers["ETag"] = f'W/"{group.version}"'
    if status == 201:
        outcome.headers["Location"] = f"{call.base}/Groups/{group.id}"
    return outcome


def _write_group(
    session: Session, group: directory.Group, given: wire.GroupInput
) -> directory.Group:
    return directory.update_group(
        session,
        group,
        display_name=given.display_name,
        external_id=given.external_id,
        attributes=given.attributes,
    )


def _change_members(session: Session, group: directory.Group, change: wire.MemberChange) -> None:
    shown = directory.displays_of(change.members)
    if change.kind == "remove":  # an id that is not ours is no member: nothing to remove
        directory.remove_members(session, group, list(shown))
        return
    ids = directory.resolve_members(
        session,
        group.account_id,
        change.members,
        ignore_group_ids=PROVIDER.nested_groups_as_members,
    )
    if change.kind == "add":
        directory.add_members(session, group, ids, shown)
    else:
        directory.replace_members(session, group, ids, shown)


# --- discovery --------------------------------------------------------------------------


@route("/ServiceProviderConfig", ["GET"], "read configuration", write=False)
def _spc(session: Session, call: Call) -> Outcome:
    return Outcome(200, discovery.service_provider_config(call.base))


def _discovery(
    path: str, name: str, kind: str, documents: Callable[[str], list[dict[str, Any]]]
) -> None:
    """A discovery listing, and each of its documents by id or name."""

    @route(path, ["GET"], f"read {name}s", write=False)
    def listed(session: Session, call: Call) -> Outcome:
        items = documents(call.base)
        return Outcome(200, wire.listing(len(items), 1, items))

    @route(f"{path}/{{resource_id}}", ["GET"], f"read {name}", write=False)
    def one(session: Session, call: Call) -> Outcome:
        wanted = _resource_id(call)
        for item in documents(call.base):
            if item.get("id") == wanted or item.get("name") == wanted:
                return Outcome(200, item)
        raise ScimError(404, f"no {kind} {wanted!r}")


_discovery("/ResourceTypes", "resource type", "ResourceType", discovery.resource_types)
_discovery("/Schemas", "schema", "Schema", discovery.schemas)


@route("/ServiceProviderConfig", ["POST", "PUT", "PATCH", "DELETE"], "refused", write=False)
@route("/ResourceTypes", ["POST", "PUT", "PATCH", "DELETE"], "refused", write=False)
@route("/Schemas", ["POST", "PUT", "PATCH", "DELETE"], "refused", write=False)
def _read_only(session: Session, call: Call) -> Outcome:
    # Routed (not left to the edge's own 405) so that the attempt is in the provisioning log.
    path = call.request.url.path
    raise MethodNotAllowed(f"{path} is read-only: only GET is allowed", allowed=("GET", "HEAD"))


for _path, _name, _kinds in (
    ("/.search", "search", ("Users", "Groups")),
    ("/Users/.search", "search users", ("Users",)),
    ("/Groups/.search", "search groups", ("Groups",)),
):
    route(_path, ["POST"], _name, write=False, cost=fixed(Cost.GROWS))(
        functools.partial(_search_post, kinds=_kinds)
    )


# --- users: read the body (wire) → the directory's rules → render (wire) -----------------


@route("/Users", ["GET"], "list users", write=False, cost=_listing("Users"))
def _list_users(session: Session, call: Call) -> Outcome:
    return _search(session, call, "Users")


@route("/Users", ["POST"], "create user", write=True)
def _create_user(session: Session, call: Call) -> Outcome:
    given = wire.user_in(call.body, Context.RESOURCE_CREATION_REQUEST)
    user = directory.create_user(
        session,
        account_id=call.account_id,
        fields=given.fields,
        attributes=given.attributes,
        master=call.master,
    )
    return _user_outcome(user, call, 201)


@route("/Users/{resource_id}", ["GET"], "read user", write=False)
def _get_user(session: Session, call: Call) -> Outcome:
    return _user_outcome(_resource(session, call, directory.get_user), call, 200)


@route("/Users/{resource_id}", ["PUT"], "replace user", write=True)
def _put_user(session: Session, call: Call) -> Outcome:
    user = _resource(session, call, directory.get_user)
    given = wire.user_in(call.body, Context.RESOURCE_REPLACEMENT_REQUEST)
    user = directory.update_user(session, user, fields=given.fields, attributes=given.attributes)
    return _user_outcome(user, call, 200)


@route("/Users/{resource_id}", ["PATCH"], "update user", write=True)
def _patch_user(session: Session, call: Call) -> Outcome:
    user = _resource(session, call, directory.get_user)
    given = wire.user_patched(wire.user_document(user, call.base), call.body)
    user = directory.update_user(session, user, fields=given.fields, attributes=given.attributes)
    return _user_outcome(user, call, 200)


@route("/Users/{resource_id}", ["DELETE"], "delete user", write=True)
def _delete_user(session: Session, call: Call) -> Outcome:
    user = _resource(session, call, directory.get_user)
    directory.delete_user(session, user)
    return Outcome(204, None, "User", str(user.id), user.user_name)


# --- groups -----------------------------------------------------------------------------


@route("/Groups", ["GET"], "list groups", write=False, cost=_listing("Groups"))
def _list_groups(session: Session, call: Call) -> Outcome:
    return _search(session, call, "Groups")


@route("/Groups", ["POST"], "create group", write=True)
def _create_group(session: Session, call: Call) -> Outcome:
    given = wire.group_in(call.body, Context.RESOURCE_CREATION_REQUEST)
    group = directory.create_group(
        session,
        account_id=call.account_id,
        display_name=given.display_name,
        external_id=given.external_id,
        attributes=given.attributes,
        members=list(given.members),
        displays=given.members,
        ignore_group_ids=PROVIDER.nested_groups_as_members,
    )
    return _group_outcome(session, group, call, 201, renamed=True)


@route("/Groups/{resource_id}", ["GET"], "read group", write=False, cost=_one_group)
def _get_group(session: Session, call: Call) -> Outcome:
    return _group_outcome(session, _resource(session, call, directory.get_group), call, 200)


@route("/Groups/{resource_id}", ["PUT"], "replace group", write=True)
def _put_group(session: Session, call: Call) -> Outcome:
    group = _resource(session, call, directory.get_group)
    given = wire.group_in(call.body, Context.RESOURCE_REPLACEMENT_REQUEST)
    changed = _write_group(session, group, given)
    _change_members(session, changed, wire.MemberChange("replace", given.members))
    renamed = changed.display_name_key != group.display_name_key
    return _group_outcome(session, changed, call, 200, renamed)


@route("/Groups/{resource_id}", ["PATCH"], "update group", write=True)
def _patch_group(session: Session, call: Call) -> Outcome:
    group = _resource(session, call, directory.get_group)
    patch = wire.group_patch(call.body)
    for change in patch.members:
        _change_members(session, group, change)
    if patch.attributes is None:
        changed = directory.touch_group(session, group)
    else:
        document = wire.group_document(group, call.base, None)
        changed = _write_group(session, group, wire.group_patched(document, patch.attributes))
    renamed = changed.display_name_key != group.display_name_key
    return _group_outcome(session, changed, call, 204, renamed)


@route("/Groups/{resource_id}", ["DELETE"], "delete group", write=True)
def _delete_group(session: Session, call: Call) -> Outcome:
    group = _resource(session, call, directory.get_group)
    directory.delete_group(session, group)
    return Outcome(204, None, "Group", str(group.id), group.display_name)


@route("/{rest:path}", ["GET", "POST", "PUT", "PATCH", "DELETE"], "unknown", write=False)
def _unknown(session: Session, call: Call) -> Outcome:
    raise ScimError(404, f"no SCIM endpoint at {call.request.url.path}")
