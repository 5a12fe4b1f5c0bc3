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
    return ScimError(int(error.status or 400), error.detail or str(exc), error.scim_type)


def from_domain(exc: KeysteadError) -> ScimError:
    """A domain error in SCIM's terms (uniqueness for 409, invalidValue for 4xx input)."""
    if isinstance(exc, ScimError):
        return exc
    scim_type = {409: "uniqueness", 400: "invalidValue", 422: "invalidValue"}.get(exc.status)
    status = 400 if exc.status == 422 else exc.status
    return ScimError(status, exc.message, scim_type)


def first_problem(exc: ValueError) -> str:
    """The first thing pydantic found wrong, as one line a client can act on."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc).splitlines()[0]


def validate(model: type[Any], data: dict[str, Any], context: Context) -> Any:
    try:
        return model.model_validate(data, scim_ctx=context, scim_policy=POLICY)
    except SCIMException as exc:
        raise from_scim_exception(exc) from exc
    except ValueError as exc:
        raise ScimError(400, first_problem(exc), "invalidValue") from exc


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
        first = exc.errors()[0]
        index = first["loc"][1] if len(first["loc"]) > 1 else None
        named = f" {given[index]!r}" if isinstance(index, int) and index < len(given) else ""
        raise ScimError(
            400,
            f"{'attributes' if wanted else 'excludedAttributes'}{named} is not an attribute "
            f"path ({first['msg']})",
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
