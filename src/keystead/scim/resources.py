"""Users and Groups as SCIM resources over the directory service: documents in and out,
search, PATCH and PUT. The provisioning rules themselves live in keystead.directory."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    Mutability,
    ResponseParameters,
    Returned,
    SCIMException,
    ScimFilter,
)
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    LogicalExpr,
    LogicalOperator,
)
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from keystead import names
from keystead.crypto.masterkey import MasterKey
from keystead.directory import service as directory
from keystead.directory.service import Group, User, UserFields
from keystead.scim.protocol import (
    MAX_COUNT,
    POLICY,
    GroupResource,
    ScimError,
    UserResource,
    from_scim_exception,
    parse_patch,
    validate,
)
from keystead.storage.models import DirectoryGroup, DirectoryMembership, DirectoryUser

Shape = ResponseParameters[Any]


@dataclass(frozen=True)
class Page:
    total: int
    start: int
    items: list[dict[str, Any]]


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


def _meta(kind: str, row: User | Group | Row[Any], base: str, path: str) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": _iso(row.created_at),
        "lastModified": _iso(row.updated_at),
        "location": f"{base}/{path}/{row.id}",
        "version": f'W/"{row.version}"',
    }


def params(attributes: str | None, excluded: str | None) -> Shape | None:
    if not attributes and not excluded:
        return None
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
        where = list(first["loc"])
        index = where[1] if len(where) > 1 and isinstance(where[1], int) else None
        named = f" {given[index]!r}" if index is not None and index < len(given) else ""
        raise ScimError(
            400,
            f"{'attributes' if wanted else 'excludedAttributes'}{named} is not an attribute "
            f"path ({first['msg']})",
            "invalidPath",
        ) from exc


def _split(text: str | None) -> list[str] | None:
    return [a.strip() for a in text.split(",") if a.strip()] if text else None


_KNOWN_SCHEMAS = frozenset(
    {
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
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
        returned = model.get_field_annotation(name, Returned)
        if returned == Returned.never:
            never.add(key)
        if returned == Returned.never or (
            model.get_field_annotation(name, Mutability) == Mutability.write_only
        ):
            secret.add(key)
    return _Attributes(frozenset(known), frozenset(never), frozenset(secret))


_ATTRIBUTES: dict[Any, _Attributes] = {
    UserResource: _attributes(UserResource),
    GroupResource: _attributes(GroupResource),
}
# If a resource's class were ever not one of the two above, these are still never kept.
SECRET_ATTRIBUTES = _ATTRIBUTES[UserResource].secret | _ATTRIBUTES[GroupResource].secret
_LEADING = ("schemas", "id", "externalId", "meta")  # the order scim2-models writes them in


def _render_stored(
    model: type[Any], document: dict[str, Any], shape: Shape | None
) -> dict[str, Any] | None:
    """The response for a document built from what `_stored` kept, without a round trip
    through scim2-models: stored attributes are already its normalised output, so only
    the order, the never-returned attributes and the schema list change. None when the
    document or the requested shape needs the full treatment (unknown attributes kept by
    the tolerant policy; `attributes`; exclusions other than a group's members)."""
    attributes = _ATTRIBUTES.get(model)
    if attributes is None or not attributes.known.issuperset(document):
        return None
    dropped: frozenset[str] = attributes.never
    if shape is not None:
        if shape.attributes or model is not GroupResource:
            return None
        if any(a.lower() != "members" for a in shape.excluded_attributes or ()):
            return None
        dropped = dropped | {"members"}
    out = {key: document[key] for key in _LEADING if key in document}
    for key, value in document.items():
        if key not in out and key not in dropped:
            out[key] = value
    out["schemas"] = [s for s in out.get("schemas", []) if s in _KNOWN_SCHEMAS or s in out]
    return out


def render(model: type[Any], document: dict[str, Any], shape: Shape | None) -> dict[str, Any]:
    fast = _render_stored(model, document, shape)
    return fast if fast is not None else render_validated(model, document, shape)


def render_validated(
    model: type[Any], document: dict[str, Any], shape: Shape | None
) -> dict[str, Any]:
    """The response as scim2-models renders it (validation, then the response dump)."""
    resource = validate(model, document, Context.DEFAULT)
    out = dict(
        resource.model_dump(
            scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=shape, scim_policy=POLICY
        )
    )
    # Schema URNs the request carried but no attribute uses (Entra's Microsoft group URN)
    # are not echoed: strict clients reject schemas they cannot resolve.
    out["schemas"] = [s for s in out.get("schemas", []) if s in _KNOWN_SCHEMAS or s in out]
    return out


def _stored(resource: Any) -> dict[str, Any]:
    """What is kept of a resource: everything the client may write (no id, no meta), but
    no attribute the schema marks write-only or never returned (a user's ``password``,
    which Entra may send): it is not stored, so it cannot be read, filtered or leaked."""
    data = dict(resource.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST, scim_policy=POLICY))
    for read_only in ("id", "meta", "members"):
        data.pop(read_only, None)
    attributes = _ATTRIBUTES.get(type(resource))
    for secret in attributes.secret if attributes is not None else SECRET_ATTRIBUTES:
        data.pop(secret, None)
    return data


# --- users ----------------------------------------------------------------------------------


def user_document(user: User | Row[Any], base: str) -> dict[str, Any]:
    document = dict(user.attributes or {})
    # `active` reads back only when it was given: an absent `active` keeps the key enabled.
    document.update(
        id=str(user.id), userName=user.user_name, meta=_meta("User", user, base, "Users")
    )
    return document


def _user_fields(resource: Any) -> UserFields:
    if not resource.user_name:
        raise ScimError(400, "userName is required", "invalidValue")
    return UserFields(
        user_name=resource.user_name,
        active=True if resource.active is None else bool(resource.active),
        external_id=resource.external_id,
        display_name=resource.display_name,
    )


def create_user(
    session: Session, account_id: uuid.UUID, body: dict[str, Any], master: MasterKey
) -> User:
    resource = validate(UserResource, body, Context.RESOURCE_CREATION_REQUEST)
    return directory.create_user(
        session,
        account_id=account_id,
        fields=_user_fields(resource),
        attributes=_stored(resource),
        master=master,
    )


def replace_user(session: Session, user: User, body: dict[str, Any]) -> User:
    resource = validate(UserResource, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    return directory.update_user(
        session, user, fields=_user_fields(resource), attributes=_stored(resource)
    )


def patch_user(session: Session, user: User, body: dict[str, Any], base: str) -> User:
    operation = parse_patch(UserResource, body)
    resource = validate(UserResource, user_document(user, base), Context.DEFAULT)
    try:
        operation.patch(resource, scim_policy=POLICY)
    except SCIMException as exc:
        raise from_scim_exception(exc) from exc
    return directory.update_user(
        session, user, fields=_user_fields(resource), attributes=_stored(resource)
    )


# --- groups ---------------------------------------------------------------------------------


Member = tuple[uuid.UUID, str | None]  # user id, `display` as the client sent it


def group_document(
    group: Group | Row[Any], base: str, members: list[Member] | None
) -> dict[str, Any]:
    document = dict(group.attributes or {})
    document.update(
        id=str(group.id),
        displayName=group.display_name,
        meta=_meta("Group", group, base, "Groups"),
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


def wants_members(shape: Shape | None) -> bool:
    if shape is None:
        return True
    if shape.excluded_attributes and any(a.lower() == "members" for a in shape.excluded_attributes):
        return False
    if shape.attributes:
        return any(a.lower().split(".")[0] == "members" for a in shape.attributes)
    return True


def _member_values(value: Any) -> list[str]:
    return list(_member_entries(value))


def _member_entries(value: Any) -> dict[str, str | None]:
    """Member id → its `display` as sent (kept so the group reads back as written)."""
    items = value if isinstance(value, list) else [value]
    entries: dict[str, str | None] = {}
    for item in items:
        if isinstance(item, dict) and item.get("value") is not None:
            display = item.get("display")
            entries[str(item["value"])] = str(display) if display is not None else None
        elif item is not None and not isinstance(item, dict):
            entries[str(getattr(item, "value", item))] = getattr(item, "display", None)
    return entries


def _displays(entries: dict[str, str | None]) -> dict[uuid.UUID, str | None]:
    return {uuid.UUID(k): v for k, v in entries.items() if v is not None and directory.is_id(k)}


def _filter_ids(node: Any) -> list[str]:
    """Member ids named by a `members[value eq "…" or …]` filter."""
    if isinstance(node, Comparison):
        if node.attr_path.attr.lower() == "value" and node.op == CompareOperator.eq:
            return [str(node.value)]
    elif isinstance(node, LogicalExpr) and node.op == LogicalOperator.or_:
        return [i for term in node.terms for i in _filter_ids(term)]
    raise ScimError(400, 'member filters support `value eq "…"` joined by `or`', "invalidFilter")


def create_group(session: Session, account_id: uuid.UUID, body: dict[str, Any]) -> Group:
    resource = validate(GroupResource, body, Context.RESOURCE_CREATION_REQUEST)
    if not resource.display_name:
        raise ScimError(400, "displayName is required", "invalidValue")
    return directory.create_group(
        session,
        account_id=account_id,
        display_name=resource.display_name,
        external_id=resource.external_id,
        attributes=_stored(resource),
        members=_member_values(body.get("members") or []),
        displays=_member_entries(body.get("members") or []),
    )


def replace_group(session: Session, group: Group, body: dict[str, Any]) -> Group:
    resource = validate(GroupResource, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    if not resource.display_name:
        raise ScimError(400, "displayName is required", "invalidValue")
    entries = _member_entries(body.get("members") or [])
    members = directory.resolve_members(session, group.account_id, list(entries))
    group = directory.update_group(
        session,
        group,
        display_name=resource.display_name,
        external_id=resource.external_id,
        attributes=_stored(resource),
    )
    directory.replace_members(session, group, members, _displays(entries))
    return group


def patch_group(session: Session, group: Group, body: dict[str, Any], base: str) -> Group:
    """Member operations become single-row writes (never a rewrite of the member list);
    everything else is applied to the group's attributes."""
    parsed = parse_patch(GroupResource, body)
    raw_ops = body["Operations"]
    attribute_ops: list[dict[str, Any]] = []
    for raw, op in zip(raw_ops, parsed.operations or [], strict=True):
        kind = str(op.op.value if hasattr(op.op, "value") else op.op).lower()
        binding = op.path.resolve() if op.path is not None else None
        if binding is not None and binding.field_name == "members":
            value_filter = op.path.value_filter if op.path is not None else None
            _member_op(session, group, kind, value_filter, op.value)
        elif (
            op.path is None
            and isinstance(raw.get("value"), dict)
            and any(k.lower() == "members" for k in raw["value"])
        ):
            rest = {k: v for k, v in raw["value"].items() if k.lower() != "members"}
            members = next(v for k, v in raw["value"].items() if k.lower() == "members")
            _member_op(session, group, kind, None, members)
            if rest:
                attribute_ops.append({**raw, "value": rest})
        else:
            attribute_ops.append(raw)
    if attribute_ops:
        resource = validate(GroupResource, group_document(group, base, None), Context.DEFAULT)
        sub = parse_patch(GroupResource, {**body, "Operations": attribute_ops})
        try:
            sub.patch(resource, scim_policy=POLICY)
        except SCIMException as exc:
            raise from_scim_exception(exc) from exc
        if not resource.display_name:
            raise ScimError(400, "displayName cannot be removed", "mutability")
        return directory.update_group(
            session,
            group,
            display_name=resource.display_name,
            external_id=resource.external_id,
            attributes=_stored(resource),
        )
    return directory.touch_group(session, group)


def _member_op(session: Session, group: Group, kind: str, value_filter: Any, value: Any) -> None:
    if kind in ("add", "replace"):
        entries = _member_entries(value or [])
        ids = directory.resolve_members(session, group.account_id, list(entries))
        if kind == "add":
            directory.add_members(session, group, ids, _displays(entries))
        else:
            directory.replace_members(session, group, ids, _displays(entries))
    elif value_filter is not None:
        directory.remove_members(session, group, _uuids(_filter_ids(value_filter)))
    elif value:
        directory.remove_members(session, group, _uuids(_member_values(value)))
    else:
        directory.replace_members(session, group, [])


def _uuids(raw: list[str]) -> list[uuid.UUID]:
    ids = []
    for item in raw:
        try:
            ids.append(uuid.UUID(item))
        except ValueError:
            continue  # not an id of ours, so not a member: removing it changes nothing
    return ids


# --- search ---------------------------------------------------------------------------------

_USER_COLUMNS = {
    "username": DirectoryUser.user_name_key,
    "externalid": DirectoryUser.external_id,
    "id": DirectoryUser.id,
}
_GROUP_COLUMNS = {
    "displayname": DirectoryGroup.display_name_key,
    "externalid": DirectoryGroup.external_id,
    "id": DirectoryGroup.id,
}


def _fast_condition(ast: Any, columns: dict[str, Any]) -> Any:  # noqa: PLR0911
    """An indexed SQL condition for `attr eq "value"` on a column we keep, else None."""
    if not isinstance(ast, Comparison) or ast.op != CompareOperator.eq:
        return None
    path = ast.attr_path
    if path.sub_attr is not None or not isinstance(ast.value, str):
        return None
    column = columns.get(path.attr.lower())
    if column is None:
        return None
    if path.attr.lower() == "id":
        try:
            return column == uuid.UUID(ast.value)
        except ValueError:
            return column.is_(None)  # no row has a null id: an empty result
    if path.attr.lower() in ("username", "displayname"):
        return column == names.name_key(ast.value)
    return column == ast.value


# `attr eq "value"` without escapes: what Entra's lookups send. Parsed here in one match;
# scim2-models parses the same text to the same comparison (anything else goes to it).
_SIMPLE_EQ = re.compile(r' *([A-Za-z]+) +[eE][qQ] +"([^"\\]*)" *')


def _simple_condition(filter_text: str, columns: dict[str, Any]) -> Any:
    found = _SIMPLE_EQ.fullmatch(filter_text)
    if found is None or found.group(1).lower() not in columns:
        return None
    attr, value = found.group(1), found.group(2)
    return _fast_condition(
        Comparison(attr_path=AttrPath(attr=attr), op=CompareOperator.eq, value=value), columns
    )


def is_point_lookup(kind: str, filter_text: str | None, shape: Shape | None) -> bool:
    """Whether a list request is answered through an index and renders at most a bounded
    amount: an `eq` on userName/displayName, externalId or id (how Entra looks things up),
    and, for groups, without their members. Anything else grows with the directory."""
    if not filter_text:
        return False
    columns = _USER_COLUMNS if kind == "Users" else _GROUP_COLUMNS
    if _simple_condition(filter_text, columns) is None:
        return False
    return kind == "Users" or not wants_members(shape)


def search(
    session: Session,
    *,
    account_id: uuid.UUID,
    kind: str,
    filter_text: str | None,
    start: int,
    count: int,
    base: str,
    shape: Shape | None,
) -> Page:
    """A page of Users or Groups in stable order (creation, then id)."""
    is_user = kind == "Users"
    table: Any = DirectoryUser if is_user else DirectoryGroup
    model: Any = UserResource if is_user else GroupResource
    count = max(0, min(count, MAX_COUNT))
    start = max(1, start)
    columns = _USER_COLUMNS if is_user else _GROUP_COLUMNS
    condition = table.account_id == account_id
    compiled = None
    fast = _simple_condition(filter_text, columns) if filter_text else None
    if filter_text and fast is None:
        try:
            compiled = ScimFilter[model](filter_text)
        except SCIMException as exc:
            raise from_scim_exception(exc) from exc
        fast = _fast_condition(compiled.ast, columns)
        if fast is not None:
            compiled = None
    if fast is not None:
        condition = condition & fast
    order = (table.created_at, table.id)
    rows: list[Any]
    if compiled is None:
        # Plain rows (no ORM objects): the documents need only their columns.
        query = select(*table.__table__.c).where(condition).order_by(*order)
        rows = list(session.execute(query.offset(start - 1).limit(count)))
        if start == 1 and len(rows) < count:
            total = len(rows)  # the whole result is on this page
        else:
            counted = select(func.count()).select_from(table).where(condition)
            total = int(session.scalar(counted) or 0)
    else:
        # Filters on attributes without a column are evaluated against each resource:
        # rare in directory sync (Entra looks up by userName/externalId/displayName). Rows
        # are streamed in batches and only matches kept, so what a scan makes dies young:
        # a full collection, which holds every thread, would otherwise scan it all.
        query = select(*table.__table__.c).where(condition).order_by(*order)
        streamed = session.execute(query.execution_options(yield_per=_SCAN_BATCH))
        matched = [row for row in streamed if compiled.match(_as_model(row, base, model))]
        total, rows = len(matched), matched[start - 1 : start - 1 + count]
    wanted = not is_user and wants_members(shape)
    members = members_of(session, [row.id for row in rows]) if wanted else {}
    items = [
        render(
            model,
            user_document(row, base) if is_user else group_document(row, base, members.get(row.id)),
            shape,
        )
        for row in rows
    ]
    return Page(total, start, items)


_SCAN_BATCH = 500


def _as_model(row: Row[Any], base: str, model: Any) -> Any:
    document = (
        user_document(row, base) if model is UserResource else group_document(row, base, None)
    )
    return validate(model, document, Context.DEFAULT)


def members_of(session: Session, group_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Member]]:
    """Members (with the `display` they were added with) of each group, in one query."""
    if not group_ids:
        return {}
    result: dict[uuid.UUID, list[Member]] = {}
    for group_id, user_id, display in session.execute(
        select(
            DirectoryMembership.group_id, DirectoryMembership.user_id, DirectoryMembership.display
        )
        .where(DirectoryMembership.group_id.in_(group_ids))
        .order_by(DirectoryMembership.user_id)
    ):
        result.setdefault(group_id, []).append((user_id, display))
    return result
