"""SCIM searches over the directory: an indexed SQL condition for the lookups directory sync
makes (`userName`, `displayName`, `externalId`, `id` with `eq`), the full filter grammar
evaluated per resource otherwise (streamed, matches kept), pages in a stable order."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from scim2_models import Context, SCIMException, ScimFilter
from scim2_models.path.expressions import CompareOperator, Comparison
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from keystead import names
from keystead.scim import wire
from keystead.scim.wire import GroupResource, Member, Shape, UserResource
from keystead.storage.models import DirectoryGroup, DirectoryMembership, DirectoryUser


@dataclass(frozen=True)
class Page:
    total: int
    start: int
    items: list[dict[str, Any]]


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


def _eq_condition(attr: str, value: str, columns: dict[str, Any]) -> Any:
    """An indexed SQL condition for `attr eq "value"` on a column we keep, else None."""
    column = columns.get(attr)
    if column is None:
        return None
    if attr == "id":
        wanted = names.as_id(value)
        # No row has a null id: a value without an id's form finds nothing.
        return column.is_(None) if wanted is None else column == wanted
    if attr in ("username", "displayname"):
        return column == names.name_key(value)
    return column == value


def _fast_condition(ast: Any, columns: dict[str, Any]) -> Any:
    """The indexed condition for a parsed filter that is such a comparison, else None."""
    if not isinstance(ast, Comparison) or ast.op != CompareOperator.eq:
        return None
    if ast.attr_path.sub_attr is not None or not isinstance(ast.value, str):
        return None
    return _eq_condition(ast.attr_path.attr.lower(), ast.value, columns)


# `attr eq "value"` without escapes: what Entra's lookups send. Parsed here in one match;
# scim2-models parses the same text to the same comparison (anything else goes to it).
_SIMPLE_EQ = re.compile(r' *([A-Za-z]+) +[eE][qQ] +"([^"\\]*)" *')
_SCAN_BATCH = 500  # rows per fetch of a filter evaluated per resource


def _indexed_eq(filter_text: str, columns: dict[str, Any]) -> tuple[str, str] | None:
    """(attribute, value) of `attr eq "value"` on a column we keep, else None."""
    found = _SIMPLE_EQ.fullmatch(filter_text)
    if found is None or (attr := found.group(1).lower()) not in columns:
        return None
    return attr, found.group(2)


def _simple_condition(filter_text: str, columns: dict[str, Any]) -> Any:
    hit = _indexed_eq(filter_text, columns)
    return None if hit is None else _eq_condition(*hit, columns)


def is_point_lookup(kind: str, filter_text: str | None, shape: Shape | None) -> bool:
    """Whether a list request is answered through an index and renders at most a bounded
    amount: an `eq` on userName/displayName, externalId or id (how Entra looks things up),
    and, for groups, without their members. Anything else grows with the directory."""
    # From the text alone (the route's cost asks before any work): no condition is built.
    columns = _USER_COLUMNS if kind == "Users" else _GROUP_COLUMNS
    if not filter_text or _indexed_eq(filter_text, columns) is None:
        return False
    return kind == "Users" or not wire.wants_members(shape)


def bounds(start: int, count: int) -> tuple[int, int]:
    """startIndex and count as a page takes them (RFC 7644 §3.4.2.4): a startIndex below 1 is
    1, and one above ``MAX_START_INDEX`` is ``MAX_START_INDEX`` (past the end of every result
    set, and within what either database takes as an OFFSET); a negative count is 0, and one
    above ``MAX_COUNT`` is ``MAX_COUNT``."""
    return min(max(1, start), wire.MAX_START_INDEX), max(0, min(count, wire.MAX_COUNT))


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
    start, count = bounds(start, count)
    columns = _USER_COLUMNS if is_user else _GROUP_COLUMNS
    condition = table.account_id == account_id
    compiled = None
    fast = _simple_condition(filter_text, columns) if filter_text else None
    if filter_text and fast is None:
        try:
            compiled = ScimFilter[model](filter_text)
        except SCIMException as exc:
            raise wire.from_scim_exception(exc) from exc
        fast = _fast_condition(compiled.ast, columns)
        if fast is not None:
            compiled = None
    if fast is not None:
        condition = condition & fast
    # Plain rows (no ORM objects): the documents need only their columns.
    query = select(*table.__table__.c).where(condition).order_by(table.created_at, table.id)
    rows: list[Any]
    if compiled is None:
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
        streamed = session.execute(query.execution_options(yield_per=_SCAN_BATCH))
        # A group is judged with its members only when the filter may name them (a word
        # test: at worst the members of a group whose name holds it are read for nothing).
        judged_members = not is_user and "members" in (filter_text or "").lower()
        matched: list[Any] = []
        for batch in streamed.partitions():
            held = members_of(session, [row.id for row in batch]) if judged_members else {}
            matched += [
                r for r in batch if compiled.match(_as_model(r, base, is_user, model, held))
            ]
        total, rows = len(matched), matched[start - 1 : start - 1 + count]
    wanted = not is_user and wire.wants_members(shape)
    members = members_of(session, [row.id for row in rows]) if wanted else {}
    items = [wire.render(model, _document(row, base, is_user, members), shape) for row in rows]
    return Page(total, start, items)


def _document(
    row: Row[Any], base: str, is_user: bool, members: dict[uuid.UUID, list[Member]]
) -> dict[str, Any]:
    """A user's or group's document (a group's with its members, when they are given)."""
    if is_user:
        return wire.user_document(row, base)
    return wire.group_document(row, base, members.get(row.id))


def _as_model(
    row: Row[Any], base: str, is_user: bool, model: Any, members: dict[uuid.UUID, list[Member]]
) -> Any:
    return wire.validate(model, _document(row, base, is_user, members), Context.DEFAULT)


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
