"""THE access rule: which datasets may API key K use, and why.

A key may use a dataset through any of three paths:

1. ``direct``     — a manual grant of the dataset to the key;
2. ``dataset_group`` — a manual grant of a dataset group that contains the dataset;
3. ``directory``  — the key is auto-provisioned for a directory user who belongs to a
   directory group whose displayName matches (trimmed, case-insensitive) the name of a
   dataset group that contains the dataset.

Nothing is materialised: every path is a join over stored facts, so adding a member to a
50,000-member group, renaming a group or moving a dataset is one row's write, and access
follows at once. Every question about access in Keystead goes through :func:`paths`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Select, exists, literal, select, union_all
from sqlalchemy.orm import Session

from keystead.storage.models import (
    ApiKey,
    Dataset,
    DatasetGrant,
    DatasetGroup,
    DatasetGroupGrant,
    DatasetGroupMember,
    DirectoryGroup,
    DirectoryMembership,
)

Via = Literal["direct", "dataset_group", "directory"]


@dataclass(frozen=True)
class Reason:
    """One path by which a key may use a dataset."""

    via: Via
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


def paths(key_id: uuid.UUID, dataset_id: uuid.UUID | None = None) -> Select[tuple[object, ...]]:
    """Every (dataset, path) by which key ``key_id`` reaches a dataset, as one UNION ALL.

    Columns: via, dataset_id, dataset_group_id, directory_group_id. With ``dataset_id``
    the query is restricted to that dataset (each branch then starts from an index on it).
    """
    direct = select(
        literal("direct").label("via"),
        DatasetGrant.dataset_id.label("dataset_id"),
        literal(None, DatasetGrant.dataset_id.type).label("dataset_group_id"),
        literal(None, DatasetGrant.dataset_id.type).label("directory_group_id"),
    ).where(DatasetGrant.api_key_id == key_id)

    via_group = (
        select(
            literal("dataset_group").label("via"),
            DatasetGroupMember.dataset_id,
            DatasetGroupMember.group_id,
            literal(None, DatasetGrant.dataset_id.type),
        )
        .join(DatasetGroupGrant, DatasetGroupGrant.dataset_group_id == DatasetGroupMember.group_id)
        .where(DatasetGroupGrant.api_key_id == key_id)
    )

    via_directory = (
        select(
            literal("directory").label("via"),
            DatasetGroupMember.dataset_id,
            DatasetGroupMember.group_id,
            DirectoryGroup.id,
        )
        .select_from(ApiKey)
        .join(DirectoryMembership, DirectoryMembership.user_id == ApiKey.directory_user_id)
        .join(DirectoryGroup, DirectoryGroup.id == DirectoryMembership.group_id)
        .join(
            DatasetGroup,
            (DatasetGroup.account_id == DirectoryGroup.account_id)
            & (DatasetGroup.name_key == DirectoryGroup.display_name_key),
        )
        .join(DatasetGroupMember, DatasetGroupMember.group_id == DatasetGroup.id)
        .where(ApiKey.id == key_id, ApiKey.auto_provisioned.is_(True))
    )

    if dataset_id is not None:
        direct = direct.where(DatasetGrant.dataset_id == dataset_id)
        via_group = via_group.where(DatasetGroupMember.dataset_id == dataset_id)
        via_directory = via_directory.where(DatasetGroupMember.dataset_id == dataset_id)
    return union_all(direct, via_group, via_directory)  # type: ignore[return-value]


def may_use(session: Session, key_id: uuid.UUID, dataset_id: uuid.UUID) -> bool:
    """May key ``key_id`` use dataset ``dataset_id``? One indexed EXISTS query."""
    return bool(session.scalar(select(exists(paths(key_id, dataset_id).subquery().select()))))


def usable_datasets(session: Session, key_id: uuid.UUID) -> list[Dataset]:
    """Every dataset key ``key_id`` may use, by name."""
    reachable = paths(key_id).subquery()
    return list(
        session.scalars(
            select(Dataset)
            .where(Dataset.id.in_(select(reachable.c.dataset_id)))
            .order_by(Dataset.name_key)
        )
    )


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
    reasons = [
        Reason(via, ds, dg_id, dg_name, dir_id, dir_name)
        for via, ds, dg_id, dg_name, dir_id, dir_name in rows
    ]
    return sorted(
        reasons,
        key=lambda r: (
            str(r.dataset_id),
            order[r.via],
            r.dataset_group or "",
            r.directory_group or "",
        ),
    )
