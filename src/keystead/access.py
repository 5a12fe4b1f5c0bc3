"""THE access rule: which datasets may API key K use, and why.

A key may use a dataset through any of three paths:

1. ``direct``     — a manual grant of the dataset to the key;
2. ``dataset_group`` — a manual grant of a dataset group that contains the dataset;
3. ``directory``  — the key is auto-provisioned for a directory user who belongs to a
   directory group whose displayName matches (trimmed, case-insensitive) the name of a
   dataset group that contains the dataset. A dataset group an admin pinned to one
   directory group (by its id and externalId) matches that group only, so a same-named
   group created later in the directory gives nothing. Under the account's "directory_and_token"
   group policy, a key whose last sign-in token listed its groups
   (``token_groups_enforced``) counts only the directory groups whose externalId (the
   Entra object id) that token listed.

Nothing is materialised: every path is a join over stored facts, so adding a member to a
50,000-member group, renaming a group or moving a dataset is one row's write, and access
follows at once. Every question about access in Keystead goes through :func:`paths`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Select,
    Uuid,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.orm import QueryableAttribute, Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from keystead.storage.models import (
    ApiKey,
    Dataset,
    DatasetGrant,
    DatasetGroup,
    DatasetGroupGrant,
    DatasetGroupMember,
    DirectoryGroup,
    DirectoryMembership,
    SsoTokenGroup,
)


@dataclass(frozen=True)
class Reason:
    """One path by which a key may use a dataset."""

    via: Literal["direct", "dataset_group", "directory"]
    dataset_id: uuid.UUID
    dataset_group_id: uuid.UUID | None = None
    dataset_group: str | None = None
    directory_group_id: uuid.UUID | None = None
    directory_group: str | None = None

    def describe(self) -> str:
        if self.via == "direct":
            return "granted directly"
        if self.via == "dataset_group":
            return f"granted dataset group {self.dataset_group!r}, which contains the dataset"
        return (
            f"member of directory group {self.directory_group!r}, which matches dataset group "
            f"{self.dataset_group!r}, which contains the dataset"
        )


KeyRef = uuid.UUID | ColumnElement[uuid.UUID] | QueryableAttribute[uuid.UUID]


def named_alike() -> ColumnElement[bool]:
    """A directory group and a dataset group of one account whose names are equal once both
    are trimmed and case-folded (``name_key``): a match unless a pin says otherwise."""
    return (DatasetGroup.account_id == DirectoryGroup.account_id) & (
        DatasetGroup.name_key == DirectoryGroup.display_name_key
    )


def pin_allows() -> ColumnElement[bool]:
    """The dataset group is pinned to no directory group, or to this one: same id and
    same externalId (a group deleted and made again in Entra needs pinning again)."""
    return DatasetGroup.pinned_group_id.is_(None) | (
        (DatasetGroup.pinned_group_id == DirectoryGroup.id)
        & (
            func.coalesce(DatasetGroup.pinned_group_external_id, "")
            == func.coalesce(DirectoryGroup.external_id, "")
        )
    )


def matches() -> ColumnElement[bool]:
    """The matching rule: a directory group matches the dataset group of its account named
    alike, unless that dataset group is pinned to another directory group. Joins of the
    two tables (access, and the views that show a match) use this."""
    return named_alike() & pin_allows()


def _directory_group_counts(owner: type[ApiKey]) -> ColumnElement[bool]:
    """Whether the directory group joined as ``DirectoryGroup`` counts for key ``owner``:
    always, unless the key's last sign-in enforced the token's groups claim and that claim
    did not list the group."""
    return or_(
        owner.token_groups_enforced.is_(False),
        exists(
            select(SsoTokenGroup.group_ref).where(
                SsoTokenGroup.api_key_id == owner.id,
                SsoTokenGroup.group_ref == DirectoryGroup.external_id,
            )
        ),
    )


def _branches(
    key_id: KeyRef, dataset_id: KeyRef | None
) -> tuple[Select[str, uuid.UUID, uuid.UUID, uuid.UUID], ...]:
    """The three paths, each a SELECT of (via, dataset_id, dataset_group_id,
    directory_group_id). ``key_id`` and ``dataset_id`` may be values, bound parameters or
    columns of an enclosing query; with ``dataset_id`` each branch starts from an index."""
    owner = aliased(ApiKey)
    none_id = literal(None, Uuid())
    direct = select(
        literal("direct").label("via"),
        DatasetGrant.dataset_id.label("dataset_id"),
        none_id.label("dataset_group_id"),
        none_id.label("directory_group_id"),
    ).where(DatasetGrant.api_key_id == key_id)

    via_group = (
        select(
            literal("dataset_group"),
            DatasetGroupMember.dataset_id,
            DatasetGroupMember.group_id,
            none_id,
        )
        .join(DatasetGroupGrant, DatasetGroupGrant.dataset_group_id == DatasetGroupMember.group_id)
        .where(DatasetGroupGrant.api_key_id == key_id)
    )

    via_directory = (
        select(
            literal("directory"),
            DatasetGroupMember.dataset_id,
            DatasetGroupMember.group_id,
            DirectoryGroup.id,
        )
        .select_from(owner)
        .join(DirectoryMembership, DirectoryMembership.user_id == owner.directory_user_id)
        .join(DirectoryGroup, DirectoryGroup.id == DirectoryMembership.group_id)
        .join(DatasetGroup, matches())
        .join(DatasetGroupMember, DatasetGroupMember.group_id == DatasetGroup.id)
        .where(owner.id == key_id, owner.auto_provisioned.is_(True), _directory_group_counts(owner))
    )

    if dataset_id is not None:
        direct = direct.where(DatasetGrant.dataset_id == dataset_id)
        via_group = via_group.where(DatasetGroupMember.dataset_id == dataset_id)
        via_directory = via_directory.where(DatasetGroupMember.dataset_id == dataset_id)
    return direct, via_group, via_directory


def paths(key_id: KeyRef, dataset_id: KeyRef | None = None) -> CompoundSelect[Any]:
    """Every (dataset, path) by which key ``key_id`` reaches a dataset, as one UNION ALL."""
    return union_all(*_branches(key_id, dataset_id))


def allows(key_id: KeyRef, dataset_id: KeyRef) -> ColumnElement[bool]:
    """The rule as a SQL boolean (EXISTS per path, OR-ed), to embed in a larger query;
    the branches correlate to ``key_id``/``dataset_id`` columns of the enclosing query."""
    return or_(*(exists(branch) for branch in _branches(key_id, dataset_id)))


# Built once: constructing these statements costs far more than running them.
_KEY = bindparam("key_id", type_=Uuid())
_DATASET = bindparam("dataset_id", type_=Uuid())
_MAY_USE = select(allows(_KEY, _DATASET))
_REACHABLE = paths(_KEY).subquery()
_USABLE = (
    select(Dataset)
    .where(Dataset.id.in_(select(_REACHABLE.c.dataset_id)))
    .order_by(Dataset.name_key)
)
_USABLE_ROWS = _USABLE.with_only_columns(
    Dataset.id, Dataset.name, Dataset.type, Dataset.current_key_number
)
_USABLE_COUNTS = (
    select(ApiKey.id, func.count(Dataset.id))
    .select_from(ApiKey)
    .outerjoin(Dataset, (Dataset.account_id == ApiKey.account_id) & allows(ApiKey.id, Dataset.id))
    .where(ApiKey.id.in_(bindparam("key_ids", expanding=True)))
    .group_by(ApiKey.id)
)


def usable_counts(db: Session | Connection, key_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many datasets each key may use: the rule (:func:`allows`) asked of every
    dataset of the key's account, for a page of keys in one query."""
    if not key_ids:
        return {}
    return {row[0]: int(row[1]) for row in db.execute(_USABLE_COUNTS, {"key_ids": key_ids})}


def may_use(db: Session | Connection, key_id: uuid.UUID, dataset_id: uuid.UUID) -> bool:
    """May key ``key_id`` use dataset ``dataset_id``? One indexed EXISTS query."""
    return bool(db.scalar(_MAY_USE, {"key_id": key_id, "dataset_id": dataset_id}))


def usable_dataset_rows(db: Session | Connection, key_id: uuid.UUID) -> list[Any]:
    """Like :func:`usable_datasets`, as rows (id, name, type, current_key_number)."""
    return list(db.execute(_USABLE_ROWS, {"key_id": key_id}))


def usable_datasets(session: Session, key_id: uuid.UUID) -> list[Dataset]:
    """Every dataset key ``key_id`` may use, by name."""
    return list(session.scalars(_USABLE, {"key_id": key_id}))


def explain(
    session: Session, key_id: uuid.UUID, dataset_id: uuid.UUID | None = None
) -> list[Reason]:
    """Every reason key ``key_id`` may use ``dataset_id`` (or any dataset); [] = no access."""
    reachable = paths(key_id, dataset_id).subquery()
    rows = session.execute(
        select(
            reachable.c.via,
            reachable.c.dataset_id,
            reachable.c.dataset_group_id,
            DatasetGroup.name,
            reachable.c.directory_group_id,
            DirectoryGroup.display_name,
        )
        .outerjoin(DatasetGroup, DatasetGroup.id == reachable.c.dataset_group_id)
        .outerjoin(DirectoryGroup, DirectoryGroup.id == reachable.c.directory_group_id)
    )
    order = {"direct": 0, "dataset_group": 1, "directory": 2}

    def rank(r: Reason) -> tuple[str, int, str, str]:
        return str(r.dataset_id), order[r.via], r.dataset_group or "", r.directory_group or ""

    return sorted((Reason(*row) for row in rows), key=rank)


def keys_through_dataset_group(db: Session | Connection, dataset_group_id: uuid.UUID) -> int:
    """How many keys reach datasets through dataset group ``dataset_group_id``: keys
    granted the group (path 2) and auto-provisioned keys of members of a matching directory
    group (path 3, with the token-groups condition). The same paths as :func:`paths`,
    walked from the group instead of from a key."""
    member = aliased(ApiKey)
    granted = select(DatasetGroupGrant.api_key_id.label("key_id")).where(
        DatasetGroupGrant.dataset_group_id == dataset_group_id
    )
    through_directory = (
        select(member.id)
        .select_from(DatasetGroup)
        .join(DirectoryGroup, matches())
        .join(DirectoryMembership, DirectoryMembership.group_id == DirectoryGroup.id)
        .join(member, member.directory_user_id == DirectoryMembership.user_id)
        .where(
            DatasetGroup.id == dataset_group_id,
            member.auto_provisioned.is_(True),
            _directory_group_counts(member),
        )
    )
    holders = union(granted, through_directory).subquery()
    return int(db.scalar(select(func.count()).select_from(holders)) or 0)
