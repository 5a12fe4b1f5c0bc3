"""Directory users and groups, and the provisioning rules of the product brief.

| directory event          | effect (here)                                               |
|--------------------------|-------------------------------------------------------------|
| user created             | auto-provisioned API key named after userName, enabled iff active |
| user's userName changed  | key renamed                                                 |
| user's active changed    | key enabled / disabled                                      |
| user deleted             | key deleted (with the user's memberships)                   |
| group created / renamed / deleted, members changed | stored; nothing else to write |

Access never needs a write of its own: the access rule (keystead.access) derives it from
memberships and group names, so every group-side row of the table holds by construction.
This module knows nothing of SCIM's wire format.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import RowMapping, Select, Table, Update, bindparam, select
from sqlalchemy.orm import Session

from keystead import audit, names
from keystead.apikeys import auto as auto_keys
from keystead.audit import Actor
from keystead.crypto.masterkey import MasterKey
from keystead.errors import Conflict, InvalidInput, NotFound
from keystead.storage.dialect import insert_ignoring_duplicates
from keystead.storage.models import (
    DirectoryGroup,
    DirectoryMembership,
    DirectoryUser,
)
from keystead.storage.types import utcnow

SCIM = Actor("scim", None, "directory sync")


@dataclass(frozen=True, slots=True)
class User:
    """A directory user as stored: a value, read and written with Core statements."""

    id: uuid.UUID
    account_id: uuid.UUID
    user_name: str
    user_name_key: str
    external_id: str | None
    display_name: str | None
    active: bool
    attributes: dict[str, Any]
    version: int
    pinned_object_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Group:
    """A directory group as stored (its members are rows of their own)."""

    id: uuid.UUID
    account_id: uuid.UUID
    display_name: str
    display_name_key: str
    external_id: str | None
    attributes: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class UserFields:
    """What Keystead itself reads from a directory user; everything else is ``attributes``."""

    user_name: str
    active: bool
    external_id: str | None
    display_name: str | None


def _bounded(value: str | None, what: str) -> str | None:
    """A free-text attribute Keystead keeps in a column of its own fits that column."""
    if value is not None and len(value) > 256:
        raise InvalidInput(f"{what} is {len(value)} characters long; at most 256 are allowed")
    return value


def _taken(session: Session, query: Select[Any], but: uuid.UUID | None, **name: Any) -> bool:
    """Whether the ``name`` that ``query`` looks up belongs to a row other than ``but``."""
    existing = session.connection().execute(query, name).scalar()
    return existing is not None and existing != but


def _row(
    session: Session, query: Select[Any], raw_id: str, account_id: uuid.UUID, what: str
) -> RowMapping:
    """The row ``query`` reads for the user or group ``raw_id`` in the account; NotFound
    else."""
    wanted = names.as_id(raw_id)
    row = None if wanted is None else session.connection().execute(query, {"id": wanted}).first()
    if row is None or row.account_id != account_id:
        raise NotFound(f"no {what} {raw_id!r}")
    return row._mapping


_Stored = TypeVar("_Stored", User, Group)


def _write(session: Session, statement: Update, row: _Stored, **changes: Any) -> _Stored:
    """The row's next version, written at once (``statement``: its table's UPDATE)."""
    changes.update(version=row.version + 1, updated_at=utcnow())
    session.connection().execute(statement, {**changes, "row_id": row.id})
    return dataclasses.replace(row, **changes)


def _audit(
    session: Session, about: User | Group, action: str, detail: dict[str, Any] | None = None
) -> None:
    """The audit event of a directory change, written at once like the change itself."""
    if isinstance(about, User):
        subject = audit.Subject(about.account_id, "directory_user", about.id, about.user_name)
    else:
        subject = audit.Subject(about.account_id, "directory_group", about.id, about.display_name)
    audit.record_about(session, subject, SCIM, action, detail, immediate=True)


# --- users ----------------------------------------------------------------------------------


_USERS = cast(Table, DirectoryUser.__table__)
_INSERT_USER = _USERS.insert()
_UPDATE_USER = _USERS.update().where(_USERS.c.id == bindparam("row_id"))  # SET: the params
_USER_BY_NAME = select(_USERS.c.id).where(
    _USERS.c.account_id == bindparam("account_id"), _USERS.c.user_name_key == bindparam("name_key")
)
_USERS_BY_IDS = select(
    _USERS.c.id, (_USERS.c.account_id == bindparam("account_id")).label("mine")
).where(_USERS.c.id.in_(bindparam("ids", expanding=True)))
_USER_BY_ID = select(_USERS).where(_USERS.c.id == bindparam("id"))
_USER_BY_ID_LOCKED = _USER_BY_ID.with_for_update()
_DELETE_USER = _USERS.delete().where(_USERS.c.id == bindparam("user_id"))


def _user_columns(
    session: Session, account_id: uuid.UUID, fields: UserFields, user: User | None
) -> dict[str, Any]:
    """The columns Keystead reads from a user (``user``: as it was), checked: the userName
    free in the account, free text that fits its column."""
    user_name = names.display_name(fields.user_name, what="user")
    name_key = names.name_key(user_name)
    # (account, userName key) is unique: an unchanged key can belong to no other user.
    unchanged = user is not None and name_key == user.user_name_key
    if not unchanged and _taken(
        session, _USER_BY_NAME, user.id if user else None, account_id=account_id, name_key=name_key
    ):
        raise Conflict(f"a user with userName {user_name!r} already exists")
    return {
        "user_name": user_name,
        "user_name_key": name_key,
        "external_id": _bounded(fields.external_id, "externalId"),
        "display_name": _bounded(fields.display_name, "displayName"),
        "active": fields.active,
    }


def create_user(
    session: Session,
    *,
    account_id: uuid.UUID,
    fields: UserFields,
    attributes: dict[str, Any],
    master: MasterKey,
) -> User:
    """Rule: a created user gets an auto-provisioned key named after its userName.

    The rows are written at once (Core INSERTs, no unit of work)."""
    columns = _user_columns(session, account_id, fields, None)
    now = utcnow()
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "account_id": account_id,
        **columns,
        "attributes": attributes,
        "version": 1,
        "pinned_object_id": None,
        "created_at": now,
        "updated_at": now,
    }
    connection = session.connection()
    connection.execute(_INSERT_USER, row)
    access_key_id = auto_keys.create(
        connection,
        account_id=account_id,
        user_id=row["id"],
        name=columns["user_name"],
        enabled=fields.active,
        master=master,
        now=now,
    )
    user = User(**row)
    detail = {"active": fields.active, "api_key": access_key_id}
    _audit(session, user, "directory.user_created", detail)
    return user


def update_user(
    session: Session,
    user: User,
    *,
    fields: UserFields,
    attributes: dict[str, Any],
) -> User:
    """Rules: a userName change renames the key; an active change enables/disables it.

    Written at once (UPDATEs, no unit of work); the user as it now is."""
    columns = _user_columns(session, user.account_id, fields, user)
    updated = _write(session, _UPDATE_USER, user, **columns, attributes=attributes)
    before = {"userName": user.user_name, "active": user.active}
    after = {"userName": updated.user_name, "active": updated.active}
    if after != before:
        # The key's name and state follow the user's and change only with them.
        auto_keys.follow(
            session.connection(),
            user_id=user.id,
            name=updated.user_name,
            enabled=updated.active,
            now=updated.updated_at,
        )
        _audit(session, updated, "directory.user_updated", {"before": before, "after": after})
    return updated


def delete_user(session: Session, user: User) -> None:
    """Rule: a deleted user takes its key and its memberships with it."""
    connection = session.connection()
    connection.execute(_DELETE_USER_MEMBERSHIPS, {"user_id": user.id})
    access_key_id = auto_keys.delete(connection, user_id=user.id)
    connection.execute(_DELETE_USER, {"user_id": user.id})
    _audit(session, user, "directory.user_deleted", {"api_key": access_key_id})


def get_user(
    session: Session, account_id: uuid.UUID, user_id: str, *, for_change: bool = False
) -> User:
    """The user's row (one Core SELECT). ``for_change``: the row stays locked until the
    transaction ends (PostgreSQL; SQLite's writer holds the whole database), so writes to
    one user queue here, each seeing what the one before left, never deadlocking later."""
    query = _USER_BY_ID_LOCKED if for_change else _USER_BY_ID
    return User(**_row(session, query, user_id, account_id, "user"))


# --- groups ---------------------------------------------------------------------------------


_GROUPS = cast(Table, DirectoryGroup.__table__)
_INSERT_GROUP = _GROUPS.insert()
_UPDATE_GROUP = _GROUPS.update().where(_GROUPS.c.id == bindparam("row_id"))  # SET: the params
_GROUP_BY_ID = select(_GROUPS).where(_GROUPS.c.id == bindparam("id"))
_GROUP_BY_ID_LOCKED = _GROUP_BY_ID.with_for_update()
_DELETE_GROUP = _GROUPS.delete().where(_GROUPS.c.id == bindparam("group_id"))
_GROUP_BY_NAME = select(_GROUPS.c.id).where(
    _GROUPS.c.account_id == bindparam("account_id"),
    _GROUPS.c.display_name == bindparam("display_name"),
)


def create_group(
    session: Session,
    *,
    account_id: uuid.UUID,
    display_name: str,
    external_id: str | None,
    attributes: dict[str, Any],
    members: Iterable[str] = (),
    displays: dict[str, str | None] | None = None,
    ignore_group_ids: bool = False,
) -> Group:
    """Written at once (Core INSERTs); the returned group is a detached copy of its row."""
    name = names.display_name(display_name, what="group")
    if _taken(session, _GROUP_BY_NAME, None, account_id=account_id, display_name=name):
        raise Conflict(f"a group with displayName {name!r} already exists")
    member_ids = resolve_members(session, account_id, members, ignore_group_ids=ignore_group_ids)
    now = utcnow()
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "account_id": account_id,
        "display_name": name,
        "display_name_key": names.name_key(name),
        "external_id": _bounded(external_id, "externalId"),
        "attributes": attributes,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    session.connection().execute(_INSERT_GROUP, row)
    group = Group(**row)
    add_members(session, group, member_ids, displays_of(displays or {}))
    _audit(session, group, "directory.group_created", {"members": len(member_ids)})
    return group


def update_group(
    session: Session,
    group: Group,
    *,
    display_name: str,
    external_id: str | None,
    attributes: dict[str, Any],
) -> Group:
    """A rename moves access by itself: matching is by name in the access rule.

    Written at once (an UPDATE); the group as it now is."""
    name = names.display_name(display_name, what="group")
    # (account, displayName) is unique: an unchanged name can belong to no other group.
    if name != group.display_name and _taken(
        session, _GROUP_BY_NAME, group.id, account_id=group.account_id, display_name=name
    ):
        raise Conflict(f"a group with displayName {name!r} already exists")
    before = group.display_name
    updated = _write(
        session,
        _UPDATE_GROUP,
        group,
        display_name=name,
        display_name_key=names.name_key(name),
        external_id=_bounded(external_id, "externalId"),
        attributes=attributes,
    )
    if before != name:
        detail = {"before": {"displayName": before}, "after": {"displayName": name}}
        _audit(session, updated, "directory.group_renamed", detail)
    return updated


def touch_group(session: Session, group: Group) -> Group:
    """A new version (and lastModified) for a group whose members changed."""
    return _write(session, _UPDATE_GROUP, group)


def delete_group(session: Session, group: Group) -> None:
    connection = session.connection()
    connection.execute(_DELETE_GROUP_MEMBERSHIPS, {"group_id": group.id})
    connection.execute(_DELETE_GROUP, {"group_id": group.id})
    _audit(session, group, "directory.group_deleted")


def get_group(
    session: Session, account_id: uuid.UUID, group_id: str, *, for_change: bool = False
) -> Group:
    """The group's row (one Core SELECT); ``for_change`` as for :func:`get_user`."""
    query = _GROUP_BY_ID_LOCKED if for_change else _GROUP_BY_ID
    return Group(**_row(session, query, group_id, account_id, "group"))


# --- memberships ----------------------------------------------------------------------------

_MEMBERSHIPS = cast(Table, DirectoryMembership.__table__)
_DELETE_USER_MEMBERSHIPS = _MEMBERSHIPS.delete().where(
    _MEMBERSHIPS.c.user_id == bindparam("user_id")
)
_DELETE_GROUP_MEMBERSHIPS = _MEMBERSHIPS.delete().where(
    _MEMBERSHIPS.c.group_id == bindparam("group_id")
)
_DELETE_SOME_MEMBERSHIPS = _MEMBERSHIPS.delete().where(
    _MEMBERSHIPS.c.group_id == bindparam("group_id"),
    _MEMBERSHIPS.c.user_id.in_(bindparam("user_ids", expanding=True)),
)
_GROUPS_BY_IDS = select(_GROUPS.c.id, _GROUPS.c.account_id).where(
    _GROUPS.c.id.in_(bindparam("ids", expanding=True))
)


def resolve_members(
    session: Session, account_id: uuid.UUID, member_ids: Iterable[str], *, ignore_group_ids: bool
) -> list[uuid.UUID]:
    """Map member ids to users of this account. With ``ignore_group_ids`` (a provider that
    lists nested groups as members) ids of this account's groups are accepted and left
    out; any other id fails the whole request."""
    wanted: dict[uuid.UUID, str] = {}
    malformed = []
    for raw in member_ids:
        try:
            wanted[uuid.UUID(str(raw))] = str(raw)
        except ValueError:
            malformed.append(str(raw))
    if malformed:
        raise InvalidInput(f"member ids are not ids of this directory: {', '.join(malformed[:10])}")
    if not wanted:
        return []
    # Looked up by primary key, the account compared in the selected columns: filtering by
    # account in WHERE would pick the (account, userName) index and scan the directory.
    users = {
        uid
        for uid, mine in session.connection().execute(
            _USERS_BY_IDS, {"ids": list(wanted), "account_id": account_id}
        )
        if mine
    }
    rest = set(wanted) - users
    if rest and ignore_group_ids:
        rest -= {
            gid
            for gid, owner in session.connection().execute(_GROUPS_BY_IDS, {"ids": list(rest)})
            if owner == account_id
        }
    if rest:
        unknown = sorted(wanted[i] for i in rest)
        raise InvalidInput(
            f"unknown member ids (no such user in this directory): {', '.join(unknown[:10])}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        )
    return [i for i in wanted if i in users]


def add_members(
    session: Session,
    group: Group,
    user_ids: Iterable[uuid.UUID],
    displays: dict[uuid.UUID, str | None] | None = None,
) -> int:
    """Add members (present ones are left alone); O(1) writes per member, whatever the
    group's size. ``displays`` keeps each member's ``display`` as the client sent it.
    Returns how many were added."""
    added = _insert_members(session, group, user_ids, displays)
    _audit_members(session, group, added=added, removed=0)
    return added


def _insert_members(
    session: Session,
    group: Group,
    user_ids: Iterable[uuid.UUID],
    displays: dict[uuid.UUID, str | None] | None,
) -> int:
    shown = displays or {}
    rows = [{"group_id": group.id, "user_id": uid, "display": shown.get(uid)} for uid in user_ids]
    return insert_ignoring_duplicates(session, _MEMBERSHIPS, rows)


def _audit_members(session: Session, group: Group, *, added: int, removed: int) -> None:
    """Membership is what gives access: its changes are audited (one event per request,
    with counts; the provisioning log holds the request itself)."""
    if added or removed:
        detail = {"added": added, "removed": removed}
        _audit(session, group, "directory.group_members_changed", detail)


def remove_members(session: Session, group: Group, user_ids: Iterable[uuid.UUID]) -> int:
    ids = list(user_ids)
    if not ids:
        return 0
    result = session.connection().execute(
        _DELETE_SOME_MEMBERSHIPS, {"group_id": group.id, "user_ids": ids}
    )
    removed = int(result.rowcount or 0)
    _audit_members(session, group, added=0, removed=removed)
    return removed


def replace_members(
    session: Session,
    group: Group,
    user_ids: Iterable[uuid.UUID],
    displays: dict[uuid.UUID, str | None] | None = None,
) -> None:
    result = session.connection().execute(_DELETE_GROUP_MEMBERSHIPS, {"group_id": group.id})
    removed = int(result.rowcount or 0)
    added = _insert_members(session, group, user_ids, displays)
    _audit_members(session, group, added=added, removed=removed)


def displays_of(entries: Mapping[str, str | None]) -> dict[uuid.UUID, str | None]:
    """Member id (as sent) → its `display`, for the entries that have an id's form."""
    return {i: v for k, v in entries.items() if (i := names.as_id(k)) is not None}
