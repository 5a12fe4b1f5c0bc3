"""SCIM's wire format, in one place (on scim2-models): a request body in, validated once,
as the values the directory takes (:class:`UserInput`, :class:`GroupInput`,
:class:`GroupPatch`); a stored user or group out as its document; listings, the response
shape (``attributes``/``excludedAttributes``) and SCIM errors.

The identity provider's own request shapes (Entra's) are tolerated as
:mod:`keystead.providers` says; nothing here knows the directory's rules or tables.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from scim2_models import (
    Context,
    Error,
    Group,
    Mutability,
    PatchOp,
    ResponseParameters,
    Returned,
    SCIMException,
)
from scim2_models.path.expressions import CompareOperator, Comparison, LogicalExpr, LogicalOperator

from keystead.caching import Immutable
from keystead.directory.service import UserFields
from keystead.errors import BadRequest, KeysteadError
from keystead.providers import PROVIDER
from keystead.web import jsonbody

MEDIA_TYPE = "application/scim+json"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_COUNT = 1000
# The largest startIndex taken as given (RFC 7644 §3.4.2.4). Any larger one is answered as
# this one: past the end of every result set (no directory holds 2**53 resources), so the
# page is empty and totalResults true, where the number itself was a 500 once it reached
# the database as an OFFSET beyond the 64-bit integers SQLite and PostgreSQL take. It is
# also the startIndex such a page echoes: the largest integer every JSON reader holds
# exactly (RFC 7493 §2.2), which a number as given (any length) is not.
MAX_START_INDEX = 2**53 - 1

UserResource = PROVIDER.scim.user_model
GroupResource = Group
POLICY = PROVIDER.scim.policy
Shape = ResponseParameters[Any]


# --- errors -----------------------------------------------------------------------------


class ScimError(KeysteadError):
    """An error answered in SCIM's Error schema (RFC 7644 §3.12)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.message
        return body


def from_scim_exception(exc: SCIMException) -> ScimError:
    error: Error = exc.to_error()
    detail = error.detail or str(exc)
    report = exc.__cause__
    if isinstance(report, ValidationError) and str(report) in detail:
        # scim2-models passes pydantic's whole report on as the detail (its class names,
        # its version, a URL): the client is told what was wrong, in SCIM's terms.
        detail = first_problem(report)
    return ScimError(int(error.status or 400), detail, error.scim_type)


def from_domain(exc: KeysteadError) -> ScimError:
    """A domain error in SCIM's terms (uniqueness for 409, invalidValue for 4xx input)."""
    if isinstance(exc, ScimError):
        return exc
    scim_type = {409: "uniqueness", 400: "invalidValue", 422: "invalidValue"}.get(exc.status)
    status = 400 if exc.status == 422 else exc.status
    return ScimError(status, exc.message, scim_type)


_BOOLEAN = "a boolean (true or false)"
_OBJECT = "an object"
_DATE_TIME = "a date and time, such as 2024-05-01T12:00:00Z"
# What a value must be, by the type of pydantic's error: its own message names the model
# class (for an object, "instance of AnyEmail") or says less than SCIM's type name.
_MUST_BE = {
    "bool_type": _BOOLEAN,
    "bool_parsing": _BOOLEAN,
    "string_type": "a string",
    "string_unicode": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "list_type": "a list (a JSON array)",
    "dict_type": _OBJECT,
    "model_type": _OBJECT,
    "model_attributes_type": _OBJECT,
    "dataclass_type": _OBJECT,
    "datetime_type": _DATE_TIME,
    "datetime_parsing": _DATE_TIME,
    "datetime_from_date_parsing": _DATE_TIME,
    "url_type": "a URL",
    "url_parsing": "a URL",
}
# Prefixes pydantic puts before a validator's own message.
_VALIDATOR_PREFIXES = ("Value error, ", "Assertion failed, ")


def _what_is_wrong(error: ErrorDetails) -> str:
    """One pydantic error's problem, without where it is: built from its type and context,
    or the validator's own message (scim2-models' and the provider's, written for clients)."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind in _MUST_BE:
        return f"must be {_MUST_BE[kind]}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not an attribute of the schema"
    if kind in ("string_too_long", "string_too_short") and context:
        limit = context.get("max_length", context.get("min_length"))
        return f"must be at {'most' if kind == 'string_too_long' else 'least'} {limit} characters"
    message = str(error["msg"])
    for prefix in _VALIDATOR_PREFIXES:
        message = message.removeprefix(prefix)
    should = "Input should be "
    return "must be " + message.removeprefix(should) if message.startswith(should) else message


def _attribute_path(location: tuple[int | str, ...]) -> str:
    """Where a pydantic error is, as a SCIM attribute path: ``emails[0].primary``, an
    extension's attributes after its URN and a colon (RFC 7644 §3.10)."""
    path, after_urn = "", False
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        separator = ":" if after_urn else "." if path else ""
        after_urn = ":" in part
        path += separator + (part if after_urn else _scim_name(part))
    return path


def _scim_name(field: str) -> str:
    """An attribute's SCIM name from a name pydantic may give as the model's field (on
    assignment, as a PATCH validates): scim2-models' attribute names are its fields' names
    in camelCase (``user_name``: ``userName``). Not pydantic's ``to_camel``, which writes
    ``$ref`` as ``$Ref``."""
    head, *rest = field.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def first_problem(exc: ValidationError) -> str:
    """The first thing pydantic found wrong, as one line a client can act on: the attribute
    and what it must be. Never pydantic's own report, which names internal classes, the
    library's version and its documentation's URL."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "a value in the request is not valid"
    where = _attribute_path(errors[0]["loc"])
    what = _what_is_wrong(errors[0])
    return f"{where}: {what}" if where else what


def validate(model: type[Any], data: dict[str, Any], context: Context) -> Any:
    try:
        return model.model_validate(data, scim_ctx=context, scim_policy=POLICY)
    except SCIMException as exc:
        raise from_scim_exception(exc) from exc
    except ValidationError as exc:
        raise ScimError(400, first_problem(exc), "invalidValue") from exc
    except ValueError as exc:  # raised past pydantic: its text is no client's to read
        raise ScimError(400, "a value in the request is not valid", "invalidValue") from exc


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = jsonbody.loads(body)
    except BadRequest as exc:  # not UTF-8 JSON text, or nested too deeply to parse
        raise ScimError(400, exc.message, "invalidSyntax") from exc
    if not isinstance(value, dict):
        raise ScimError(400, "the request body must be a JSON object", "invalidSyntax")
    return value


# --- the response shape -----------------------------------------------------------------


# Parsed once per distinct pair: the route's cost reads a list's shape before the operation
# does, and Entra asks the same few on every lookup. A shape is never changed once made.
_SHAPES: Immutable[tuple[str, str], Shape] = Immutable(256)


def shape(attributes: str | None, excluded: str | None) -> Shape | None:
    """``attributes`` / ``excludedAttributes`` as given in a query (comma-separated)."""
    if not attributes and not excluded:
        return None
    given = (attributes or "", excluded or "")
    return _SHAPES.get_or_load(given, lambda: _parse_shape(attributes, excluded))


def _parse_shape(attributes: str | None, excluded: str | None) -> Shape:
    wanted, unwanted = _split(attributes), _split(excluded)
    if wanted and unwanted:
        raise ScimError(
            400, "attributes and excludedAttributes cannot be given together", "invalidValue"
        )
    try:
        return Shape(attributes=wanted, excluded_attributes=unwanted)
    except ValidationError as exc:  # an attribute that is no attribute path
        given = wanted or unwanted or []
        first = exc.errors(include_url=False, include_input=False)[0]
        index = first["loc"][1] if len(first["loc"]) > 1 else None
        named = f" {given[index]!r}" if isinstance(index, int) and index < len(given) else ""
        raise ScimError(
            400,
            f"{'attributes' if wanted else 'excludedAttributes'}{named} is not an attribute "
            f"path ({_what_is_wrong(first)})",
            "invalidPath",
        ) from exc


def _split(text: str | None) -> list[str] | None:
    return [a.strip() for a in text.split(",") if a.strip()] if text else None


def wants_members(asked: Shape | None) -> bool:
    if asked is None:
        return True
    if any(a.lower() == "members" for a in asked.excluded_attributes or ()):
        return False
    if asked.attributes:
        return any(a.lower().split(".")[0] == "members" for a in asked.attributes)
    return True


# --- what a resource's attributes are -----------------------------------------------------

_KNOWN_SCHEMAS = frozenset(
    {
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        ENTERPRISE,
    }
)


@dataclass(frozen=True)
class _Attributes:
    known: frozenset[str]  # top-level keys the model defines
    never: frozenset[str]  # of those, the ones never returned (password)
    secret: frozenset[str]  # never returned or write-only: never stored either


def _attributes(model: type[Any]) -> _Attributes:
    known, never, secret = set(), set(), set()
    for name, info in model.model_fields.items():
        key = info.serialization_alias or info.alias or name
        known.add(key)
        if model.get_field_annotation(name, Returned) == Returned.never:
            never.add(key)
            secret.add(key)
        elif model.get_field_annotation(name, Mutability) == Mutability.write_only:
            secret.add(key)
    return _Attributes(frozenset(known), frozenset(never), frozenset(secret))


_ATTRIBUTES: dict[Any, _Attributes] = {
    UserResource: _attributes(UserResource),
    GroupResource: _attributes(GroupResource),
}
_LEADING = ("schemas", "id", "externalId", "meta")  # the order scim2-models writes them in


def _stored(resource: Any) -> dict[str, Any]:
    """What is kept of a resource: everything the client may write (no id, no meta), but
    no attribute the schema marks write-only or never returned (a user's ``password``,
    which Entra may send): it is not stored, so it cannot be read, filtered or leaked."""
    data = dict(resource.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST, scim_policy=POLICY))
    for dropped in ("id", "meta", "members", *_ATTRIBUTES[type(resource)].secret):
        data.pop(dropped, None)
    return data


# --- requests in ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserInput:
    fields: UserFields
    attributes: dict[str, Any]  # the document as stored


@dataclass(frozen=True)
class GroupInput:
    display_name: str
    external_id: str | None
    attributes: dict[str, Any]
    members: dict[str, str | None]  # id → `display` as sent


@dataclass(frozen=True)
class MemberChange:
    """One PATCH operation on a group's members: rows to add, replace or remove."""

    kind: str  # "add", "replace" or "remove"
    members: dict[str, str | None]  # id → `display` as sent


@dataclass(frozen=True)
class GroupPatch:
    """A group PATCH split: member operations become row writes (never a rewrite of the
    member list), the rest applies to the group's attributes."""

    members: list[MemberChange]
    attributes: PatchOp[Any] | None


def _user_input(resource: Any) -> UserInput:
    if not resource.user_name:
        raise ScimError(400, "userName is required", "invalidValue")
    fields = UserFields(
        user_name=resource.user_name,
        active=True if resource.active is None else bool(resource.active),
        external_id=resource.external_id,
        display_name=resource.display_name,
    )
    return UserInput(fields, _stored(resource))


def _group_input(resource: Any, members: dict[str, str | None]) -> GroupInput:
    if not resource.display_name:
        raise ScimError(400, "displayName is required", "invalidValue")
    return GroupInput(resource.display_name, resource.external_id, _stored(resource), members)


def user_in(body: bytes, context: Context) -> UserInput:
    """A POST or PUT body."""
    return _user_input(validate(UserResource, parse_json(body), context))


def group_in(body: bytes, context: Context) -> GroupInput:
    """A POST or PUT body, its members with it."""
    document = parse_json(body)
    resource = validate(GroupResource, document, context)
    return _group_input(resource, _member_entries(document.get("members") or []))


# pydantic keeps parametrised generics only weakly: without a reference of our own the
# class is collected and built again (milliseconds of schema work) now and then.
_PATCH_MODELS: dict[Any, Any] = {m: PatchOp[m] for m in (UserResource, GroupResource)}  # type: ignore[valid-type]


def _patch(model: type[Any], body: dict[str, Any]) -> PatchOp[Any]:
    if not isinstance(body.get("Operations"), list):
        raise ScimError(400, "a PatchOp needs an 'Operations' list", "invalidSyntax")
    fixed = PROVIDER.scim.patch_body(body)
    return validate(_PATCH_MODELS[model], fixed, Context.RESOURCE_PATCH_REQUEST)  # type: ignore[no-any-return]


def _applied(patch: PatchOp[Any], model: type[Any], document: dict[str, Any]) -> Any:
    resource = validate(model, document, Context.DEFAULT)
    try:
        patch.patch(resource, scim_policy=POLICY)
    except SCIMException as exc:
        raise from_scim_exception(exc) from exc
    return resource


def user_patched(document: dict[str, Any], body: bytes) -> UserInput:
    """A PATCH body applied to the user's current document."""
    patch = _patch(UserResource, parse_json(body))
    return _user_input(_applied(patch, UserResource, document))


def group_patch(body: bytes) -> GroupPatch:
    document = parse_json(body)
    parsed = _patch(GroupResource, document)
    changes: list[MemberChange] = []
    rest: list[Any] = []  # the attribute operations, as parsed
    for raw, op in zip(document["Operations"], parsed.operations or [], strict=True):
        kind = str(getattr(op.op, "value", op.op)).lower()
        binding = op.path.resolve() if op.path is not None else None
        if op.path is not None and binding is not None and binding.field_name == "members":
            changes.append(_member_change(kind, op.path.value_filter, op.value))
        elif op.path is None and isinstance(raw.get("value"), dict) and _members_key(raw["value"]):
            value = dict(raw["value"])
            changes.append(_member_change(kind, None, value.pop(_members_key(value))))
            if value:  # the operation's other attributes, without its members
                alone = {**document, "Operations": [{**raw, "value": value}]}
                rest += _patch(GroupResource, alone).operations or []
        else:
            rest.append(op)
    attributes = parsed.model_copy(update={"operations": rest}) if rest else None
    return GroupPatch(changes, attributes)


def group_patched(document: dict[str, Any], patch: PatchOp[Any]) -> GroupInput:
    """A group PATCH's attribute operations applied to the group's current document."""
    resource = _applied(patch, GroupResource, document)
    if not resource.display_name:
        raise ScimError(400, "displayName cannot be removed", "mutability")
    return _group_input(resource, {})


def _members_key(value: dict[str, Any]) -> str | None:
    return next((k for k in value if k.lower() == "members"), None)


def _member_change(kind: str, value_filter: Any, value: Any) -> MemberChange:
    if kind in ("add", "replace"):
        return MemberChange(kind, _member_entries(value or []))
    if value_filter is not None:
        return MemberChange("remove", dict.fromkeys(_filter_ids(value_filter)))
    if value:
        return MemberChange("remove", _member_entries(value))
    return MemberChange("replace", {})  # remove without a value: every member goes


def _member_entries(value: Any) -> dict[str, str | None]:
    """Member id → its `display` as sent (kept so the group reads back as written)."""
    entries: dict[str, str | None] = {}
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and item.get("value") is not None:
            display = item.get("display")
            entries[str(item["value"])] = str(display) if display is not None else None
        elif item is not None and not isinstance(item, dict):
            entries[str(getattr(item, "value", item))] = getattr(item, "display", None)
    return entries


def _filter_ids(node: Any) -> list[str]:
    """Member ids named by a `members[value eq "…" or …]` filter."""
    if isinstance(node, Comparison):
        if node.attr_path.attr.lower() == "value" and node.op == CompareOperator.eq:
            return [str(node.value)]
    elif isinstance(node, LogicalExpr) and node.op == LogicalOperator.or_:
        return [i for term in node.terms for i in _filter_ids(term)]
    raise ScimError(400, 'member filters support `value eq "…"` joined by `or`', "invalidFilter")


# --- resources out ------------------------------------------------------------------------


class Stored(Protocol):
    """A stored user or group (a directory value, or a row of its table)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def attributes(self) -> dict[str, Any] | None: ...
    @property
    def version(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


class StoredUser(Stored, Protocol):
    @property
    def user_name(self) -> str: ...


class StoredGroup(Stored, Protocol):
    @property
    def display_name(self) -> str: ...


Member = tuple[uuid.UUID, str | None]  # user id, `display` as the client sent it


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _meta(kind: str, row: Stored, base: str, path: str) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": _iso(row.created_at),
        "lastModified": _iso(row.updated_at),
        "location": f"{base}/{path}/{row.id}",
        "version": f'W/"{row.version}"',
    }


def user_document(user: StoredUser, base: str) -> dict[str, Any]:
    document = dict(user.attributes or {})
    # `active` reads back only when it was given: an absent `active` keeps the key enabled.
    document.update(
        id=str(user.id), userName=user.user_name, meta=_meta("User", user, base, "Users")
    )
    return document


def group_document(group: StoredGroup, base: str, members: list[Member] | None) -> dict[str, Any]:
    document = dict(group.attributes or {})
    document.update(
        id=str(group.id), displayName=group.display_name, meta=_meta("Group", group, base, "Groups")
    )
    if members:
        document["members"] = [
            {
                "value": str(uid),
                "$ref": f"{base}/Users/{uid}",
                "type": "User",
                **({"display": display} if display else {}),
            }
            for uid, display in members
        ]
    return document


def _render_stored(
    model: type[Any], document: dict[str, Any], asked: Shape | None
) -> dict[str, Any] | None:
    """The response for a document built from what `_stored` kept, without a round trip
    through scim2-models: stored attributes are already its normalised output, so only
    the order, the never-returned attributes and the schema list change. None when the
    document or the requested shape needs the full treatment (unknown attributes kept by
    the tolerant policy; `attributes`; exclusions other than a group's members)."""
    attributes = _ATTRIBUTES[model]
    if not attributes.known.issuperset(document):
        return None
    dropped: frozenset[str] = attributes.never
    if asked is not None:
        if asked.attributes or model is not GroupResource:
            return None
        if any(a.lower() != "members" for a in asked.excluded_attributes or ()):
            return None
        dropped = dropped | {"members"}
    out = {key: document[key] for key in _LEADING if key in document}
    for key, value in document.items():
        if key not in out and key not in dropped:
            out[key] = value
    return _known_schemas(out)


def render(model: type[Any], document: dict[str, Any], asked: Shape | None) -> dict[str, Any]:
    fast = _render_stored(model, document, asked)
    return fast if fast is not None else render_validated(model, document, asked)


def render_validated(
    model: type[Any], document: dict[str, Any], asked: Shape | None
) -> dict[str, Any]:
    """The response as scim2-models renders it (validation, then the response dump)."""
    resource = validate(model, document, Context.DEFAULT)
    context = Context.RESOURCE_QUERY_RESPONSE
    out = resource.model_dump(scim_ctx=context, response_parameters=asked, scim_policy=POLICY)
    return _known_schemas(dict(out))


def _known_schemas(out: dict[str, Any]) -> dict[str, Any]:
    """Schema URNs the request carried but no attribute uses (Entra's Microsoft group URN)
    are not echoed: strict clients reject schemas they cannot resolve."""
    out["schemas"] = [s for s in out.get("schemas", []) if s in _KNOWN_SCHEMAS or s in out]
    return out


def listing(total: int, start: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(items),
        "Resources": items,
    }
