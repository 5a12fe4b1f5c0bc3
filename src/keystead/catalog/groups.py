"""Dataset groups: named sets of datasets. A dataset group whose name matches a directory
group's displayName gives that group's members access (see keystead.access)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keystead import audit, names
from keystead.audit import Actor
from keystead.catalog.datasets import find_dataset
from keystead.errors import Conflict, NotFound
from keystead.storage.models import Dataset, DatasetGroup, DatasetGroupGrant, DatasetGroupMember


def _check_free(
    session: Session, account_id: uuid.UUID, name: str, *, but: uuid.UUID | None
) -> None:
    existing = session.scalar(
        select(DatasetGroup.id).where(
            DatasetGroup.account_id == account_id, DatasetGroup.name_key == names.name_key(name)
        )
    )
    if existing is not None and existing != but:
        raise Conflict(f"a dataset group named {name!r} already exists in this account")


def create_group(
    session: Session,
    *,
    account_id: uuid.UUID,
    name: str,
    datasets: Iterable[str] = (),
    actor: Actor,
) -> DatasetGroup:
    clean = names.display_name(name, what="dataset group")
    _check_free(session, account_id, clean, but=None)
    members = [find_dataset(session, account_id, ref) for ref in datasets]
    group = DatasetGroup(account_id=account_id, name=clean, name_key=names.name_key(clean))
    session.add(group)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a dataset group named {clean!r} already exists in this account") from exc
    for dataset in {d.id: d for d in members}.values():
        session.add(DatasetGroupMember(group_id=group.id, dataset_id=dataset.id))
    session.flush()
    audit.record(
        session,
        account_id=account_id,
        actor=actor,
        action="dataset_group.created",
        subject_type="dataset_group",
        subject_id=group.id,
        subject_label=clean,
        detail={"datasets": sorted(d.name for d in members)},
    )
    return group


def find_group(session: Session, account_id: uuid.UUID, ref: str) -> DatasetGroup:
    """By id or by name (case-insensitive, trimmed); NotFound otherwise."""
    query = select(DatasetGroup).where(DatasetGroup.account_id == account_id)
    try:
        group = session.scalar(query.where(DatasetGroup.id == uuid.UUID(ref)))
    except ValueError:
        group = None
    if group is None:
        group = session.scalar(query.where(DatasetGroup.name_key == names.name_key(ref)))
    if group is None:
        raise NotFound(f"no dataset group {ref!r} in this account")
    return group


def list_groups(session: Session, account_id: uuid.UUID) -> list[DatasetGroup]:
    return list(
        session.scalars(
            select(DatasetGroup)
            .where(DatasetGroup.account_id == account_id)
            .order_by(DatasetGroup.name_key)
        )
    )


def group_datasets(session: Session, group: DatasetGroup) -> list[Dataset]:
    return list(
        session.scalars(
            select(Dataset)
            .join(DatasetGroupMember, DatasetGroupMember.dataset_id == Dataset.id)
            .where(DatasetGroupMember.group_id == group.id)
            .order_by(Dataset.name_key)
        )
    )


def datasets_by_group(session: Session, account_id: uuid.UUID) -> dict[uuid.UUID, list[str]]:
    """Dataset names of every group in the account, in one query (for listings)."""
    rows = session.execute(
        select(DatasetGroupMember.group_id, Dataset.name)
        .join(Dataset, Dataset.id == DatasetGroupMember.dataset_id)
        .where(Dataset.account_id == account_id)
        .order_by(Dataset.name_key)
    )
    result: dict[uuid.UUID, list[str]] = {}
    for group_id, name in rows:
        result.setdefault(group_id, []).append(name)
    return result


def add_datasets(
    session: Session, group: DatasetGroup, refs: Iterable[str], *, actor: Actor
) -> list[str]:
    """Add datasets (already-present ones are left as they are); returns the names added."""
    current = {d.id for d in group_datasets(session, group)}
    added: list[str] = []
    for ref in refs:
        dataset = find_dataset(session, group.account_id, ref)
        if dataset.id not in current:
            session.add(DatasetGroupMember(group_id=group.id, dataset_id=dataset.id))
            current.add(dataset.id)
            added.append(dataset.name)
    session.flush()
    if added:
        audit.record(
            session,
            account_id=group.account_id,
            actor=actor,
            action="dataset_group.datasets_added",
            subject_type="dataset_group",
            subject_id=group.id,
            subject_label=group.name,
            detail={"datasets": added},
        )
    return added


def remove_datasets(
    session: Session, group: DatasetGroup, refs: Iterable[str], *, actor: Actor
) -> list[str]:
    """Remove datasets from the group (never deletes the datasets); returns names removed."""
    removed: list[str] = []
    for ref in refs:
        dataset = find_dataset(session, group.account_id, ref)
        result = session.execute(
            delete(DatasetGroupMember).where(
                DatasetGroupMember.group_id == group.id,
                DatasetGroupMember.dataset_id == dataset.id,
            )
        )
        if result.rowcount:  # type: ignore[attr-defined]
            removed.append(dataset.name)
        else:
            raise NotFound(f"dataset {dataset.name!r} is not in dataset group {group.name!r}")
    if removed:
        audit.record(
            session,
            account_id=group.account_id,
            actor=actor,
            action="dataset_group.datasets_removed",
            subject_type="dataset_group",
            subject_id=group.id,
            subject_label=group.name,
            detail={"datasets": removed},
        )
    return removed


def rename_group(session: Session, group: DatasetGroup, new_name: str, *, actor: Actor) -> None:
    clean = names.display_name(new_name, what="dataset group")
    _check_free(session, group.account_id, clean, but=group.id)
    before = group.name
    group.name, group.name_key = clean, names.name_key(clean)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a dataset group named {clean!r} already exists in this account") from exc
    audit.record(
        session,
        account_id=group.account_id,
        actor=actor,
        action="dataset_group.renamed",
        subject_type="dataset_group",
        subject_id=group.id,
        subject_label=clean,
        detail={"before": {"name": before}, "after": {"name": clean}},
    )


def delete_group(session: Session, group: DatasetGroup, *, actor: Actor) -> None:
    """Delete the group and the grants of it; its datasets are untouched."""
    datasets = [d.name for d in group_datasets(session, group)]
    session.execute(delete(DatasetGroupMember).where(DatasetGroupMember.group_id == group.id))
    session.execute(delete(DatasetGroupGrant).where(DatasetGroupGrant.dataset_group_id == group.id))
    session.execute(delete(DatasetGroup).where(DatasetGroup.id == group.id))
    audit.record(
        session,
        account_id=group.account_id,
        actor=actor,
        action="dataset_group.deleted",
        subject_type="dataset_group",
        subject_id=group.id,
        subject_label=group.name,
        detail={"datasets_kept": datasets},
    )
