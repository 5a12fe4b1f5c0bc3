"""The synced directory as an admin browses it: users and groups, searched and paged.

Read-only. Each page costs a fixed number of indexed queries whatever the directory's
size: rows come in name order from the ``(account_id, user_name_key)`` and
``(account_id, display_name)`` indexes, and counts are taken for the page's rows only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from keystead import access, names
from keystead.errors import NotFound
from keystead.storage.models import (
    ApiKey,
    DatasetGroup,
    DirectoryGroup,
    DirectoryMembership,
    DirectoryUser,
)

T = TypeVar("T")


@dataclass(frozen=True)
class UserKey:
    access_key_id: str
    name: str
    enabled: bool


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    user_name: str
    display_name: str | None
    external_id: str | None
    active: bool
    created_at: datetime
    updated_at: datetime
    api_key: UserKey | None
    group_count: int
    signed_in_as: str | None = None  # the Entra object id its sign-ins are bound to


@dataclass(frozen=True)
class Group:
    id: uuid.UUID
    display_name: str
    external_id: str | None
    created_at: datetime
    updated_at: datetime
    member_count: int
    dataset_group: str | None  # the dataset group whose name this group's matches


@dataclass(frozen=True)
class Found(Generic[T]):
    """A page of users or groups, and how many match in all."""

    items: list[T]
    total: int


Users = Found[User]
Groups = Found[Group]


def _page(
    session: Session,
    query: Select[*tuple[Any, ...]],
    counted: Select[int],
    limit: int,
    offset: int,
) -> tuple[Sequence[Row[*tuple[Any, ...]]], int]:
    """A page of ``query`` (in index order, so the database stops after the page) and how
    many rows match in all (``counted``: the same filters over the base table alone, which
    an index answers without the page's joins)."""
    rows = session.execute(query.limit(limit).offset(offset)).all()
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)  # the whole listing: no count needed
    return rows, int(session.scalar(counted) or 0)


def _one(
    session: Session,
    query: Select[*tuple[Any, ...]],
    table: type[DirectoryUser] | type[DirectoryGroup],
    account_id: uuid.UUID,
    ref: str,
    what: str,
) -> tuple[uuid.UUID, Row[*tuple[Any, ...]]]:
    """The row of directory user or group ``ref`` (its id) in the account; NotFound else."""
    wanted = names.as_id(ref)
    if wanted is None:
        raise NotFound(f"no directory {what} {ref!r}")
    row = session.execute(query.where(table.id == wanted, table.account_id == account_id)).first()
    if row is None:
        raise NotFound(f"no directory {what} {ref!r} in this account")
    return wanted, row


def _counts(
    session: Session, column: InstrumentedAttribute[uuid.UUID], ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    query = select(column, func.count()).where(column.in_(ids)).group_by(column)
    return {row[0]: int(row[1]) for row in session.execute(query)}


# --- users -----------------------------------------------------------------------------------

_USERS = (
    select(
        DirectoryUser.id,
        DirectoryUser.user_name,
        DirectoryUser.display_name,
        DirectoryUser.external_id,
        DirectoryUser.active,
        DirectoryUser.created_at,
        DirectoryUser.updated_at,
        DirectoryUser.pinned_object_id,
        ApiKey.access_key_id,
        ApiKey.name.label("key_name"),
        ApiKey.enabled.label("key_enabled"),
    )
    .select_from(DirectoryUser)
    .outerjoin(ApiKey, ApiKey.directory_user_id == DirectoryUser.id)
)


def _users(session: Session, rows: Sequence[Row[*tuple[Any, ...]]]) -> list[User]:
    groups = _counts(session, DirectoryMembership.user_id, [row.id for row in rows])
    return [
        User(
            id=row.id,
            user_name=row.user_name,
            display_name=row.display_name,
            external_id=row.external_id,
            active=row.active,
            created_at=row.created_at,
            updated_at=row.updated_at,
            api_key=UserKey(row.access_key_id, row.key_name, row.key_enabled)
            if row.access_key_id is not None
            else None,
            group_count=groups.get(row.id, 0),
            signed_in_as=row.pinned_object_id,
        )
        for row in rows
    ]


def search_users(
    session: Session,
    account_id: uuid.UUID,
    *,
    text: str | None = None,
    active: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Users:
    """Users by userName; ``text`` is part of the userName, displayName or externalId
    (case-insensitive)."""
    where: list[ColumnElement[bool]] = [DirectoryUser.account_id == account_id]
    wanted = (text or "").strip()
    if wanted:
        where.append(
            or_(
                DirectoryUser.user_name_key.contains(names.name_key(wanted), autoescape=True),
                DirectoryUser.display_name.icontains(wanted, autoescape=True),
                DirectoryUser.external_id.icontains(wanted, autoescape=True),
            )
        )
    if active is not None:
        where.append(DirectoryUser.active.is_(active))
    query = _USERS.where(*where).order_by(DirectoryUser.user_name_key)
    counted = select(func.count()).select_from(DirectoryUser).where(*where)
    rows, total = _page(session, query, counted, limit, offset)
    return Users(_users(session, rows), total)


def get_user(session: Session, account_id: uuid.UUID, user_id: str) -> tuple[User, list[Group]]:
    """One user and the groups it belongs to (each with its matching dataset group)."""
    wanted, row = _one(session, _USERS, DirectoryUser, account_id, user_id, "user")
    group_rows = session.execute(
        _GROUPS.join(DirectoryMembership, DirectoryMembership.group_id == DirectoryGroup.id)
        .where(DirectoryMembership.user_id == wanted)
        .order_by(DirectoryGroup.display_name_key)
    ).all()
    return _users(session, [row])[0], _groups(session, group_rows)


# --- groups ----------------------------------------------------------------------------------

_GROUP_COLUMNS = (
    DirectoryGroup.id,
    DirectoryGroup.display_name,
    DirectoryGroup.external_id,
    DirectoryGroup.created_at,
    DirectoryGroup.updated_at,
    DatasetGroup.name.label("dataset_group"),
)
_GROUPS = (
    select(*_GROUP_COLUMNS).select_from(DirectoryGroup).outerjoin(DatasetGroup, access.matches())
)


def _groups(session: Session, rows: Sequence[Row[*tuple[Any, ...]]]) -> list[Group]:
    members = _counts(session, DirectoryMembership.group_id, [row.id for row in rows])
    return [
        Group(
            id=row.id,
            display_name=row.display_name,
            external_id=row.external_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            member_count=members.get(row.id, 0),
            dataset_group=row.dataset_group,
        )
        for row in rows
    ]


def search_groups(
    session: Session,
    account_id: uuid.UUID,
    *,
    text: str | None = None,
    matched: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Groups:
    """Groups by displayName; ``text`` is part of the displayName or externalId;
    ``matched`` keeps only groups that do (or do not) match a dataset group."""
    where: list[ColumnElement[bool]] = [DirectoryGroup.account_id == account_id]
    wanted = (text or "").strip()
    if wanted:
        where.append(
            or_(
                DirectoryGroup.display_name_key.contains(names.name_key(wanted), autoescape=True),
                DirectoryGroup.external_id.icontains(wanted, autoescape=True),
            )
        )
    if matched is not None:
        where.append(DatasetGroup.id.is_not(None) if matched else DatasetGroup.id.is_(None))
    query = _GROUPS.where(*where).order_by(DirectoryGroup.display_name_key, DirectoryGroup.id)
    counted = select(func.count()).select_from(DirectoryGroup).where(*where)
    if matched is not None:
        counted = counted.outerjoin(DatasetGroup, access.matches())
    rows, total = _page(session, query, counted, limit, offset)
    return Groups(_groups(session, rows), total)


def get_group(
    session: Session, account_id: uuid.UUID, group_id: str, *, limit: int = 50, offset: int = 0
) -> tuple[Group, Users]:
    """One group and a page of its members (by userName)."""
    wanted, row = _one(session, _GROUPS, DirectoryGroup, account_id, group_id, "group")
    group = _groups(session, [row])[0]
    members = _USERS.join(
        DirectoryMembership, DirectoryMembership.user_id == DirectoryUser.id
    ).where(DirectoryMembership.group_id == wanted)
    rows = session.execute(
        members.order_by(DirectoryUser.user_name_key).limit(limit).offset(offset)
    ).all()
    return group, Users(_users(session, rows), group.member_count)


_NAMED_ALIKE = (
    select(*_GROUP_COLUMNS, access.pin_allows().label("gives_access"))
    .select_from(DirectoryGroup)
    .join(DatasetGroup, access.named_alike())
)


def matching_groups(session: Session, dataset_group: DatasetGroup) -> list[tuple[Group, bool]]:
    """The directory groups named like ``dataset_group`` (usually one), each with whether
    it gives access through it (all of them, unless the dataset group is pinned)."""
    rows = session.execute(
        _NAMED_ALIKE.where(DatasetGroup.id == dataset_group.id).order_by(
            DirectoryGroup.display_name, DirectoryGroup.id
        )
    ).all()
    return list(zip(_groups(session, rows), [bool(r.gives_access) for r in rows], strict=True))


def totals(session: Session, account_id: uuid.UUID) -> tuple[int, int]:
    def count(table: type[DirectoryUser] | type[DirectoryGroup]) -> int:
        query = select(func.count()).select_from(table).where(table.account_id == account_id)
        return int(session.scalar(query) or 0)

    return count(DirectoryUser), count(DirectoryGroup)
