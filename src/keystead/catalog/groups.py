"""Dataset groups: named sets of datasets. A dataset group whose name matches a directory
group's displayName gives that group's members access (see keystead.access); pinned to
one directory group, it gives access through that group only."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from keystead import access, audit, names
from keystead.audit import Actor
from keystead.catalog.datasets import check_name_free, find_dataset, find_named, flush_named
from keystead.errors import InvalidInput, NotFound
from keystead.storage.models import (
    Dataset,
    DatasetGroup,
    DatasetGroupGrant,
    DatasetGroupMember,
    DirectoryGroup,
)


def _subject(group: DatasetGroup) -> audit.Subject:
    return audit.Subject(group.account_id, "dataset_group", group.id, group.name)


def create_group(
    session: Session,
    *,
    account_id: uuid.UUID,
    name: str,
    datasets: Iterable[str] = (),
    actor: Actor,
) -> DatasetGroup:
    clean = names.display_name(name, what="dataset group")
    check_name_free(session, DatasetGroup, account_id, clean, "dataset group")
    members = [find_dataset(session, account_id, ref) for ref in datasets]
    group = DatasetGroup(account_id=account_id, name=clean, name_key=names.name_key(clean))
    session.add(group)
    flush_named(session, clean, "dataset group")
    for dataset in {d.id: d for d in members}.values():
        session.add(DatasetGroupMember(group_id=group.id, dataset_id=dataset.id))
    session.flush()
    detail = {"datasets": sorted(d.name for d in members)}
    audit.record_about(session, _subject(group), actor, "dataset_group.created", detail)
    return group


def find_group(session: Session, account_id: uuid.UUID, ref: str) -> DatasetGroup:
    return find_named(session, DatasetGroup, account_id, ref, "dataset group")


def list_groups(session: Session, account_id: uuid.UUID) -> list[DatasetGroup]:
    query = select(DatasetGroup).where(DatasetGroup.account_id == account_id)
    return list(session.scalars(query.order_by(DatasetGroup.name_key)))


def group_datasets(session: Session, group: DatasetGroup) -> list[Dataset]:
    query = (
        select(Dataset)
        .join(DatasetGroupMember, DatasetGroupMember.dataset_id == Dataset.id)
        .where(DatasetGroupMember.group_id == group.id)
        .order_by(Dataset.name_key)
    )
    return list(session.scalars(query))


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
        detail = {"datasets": added}
        audit.record_about(session, _subject(group), actor, "dataset_group.datasets_added", detail)
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
                DatasetGroupMember.group_id == group.id, DatasetGroupMember.dataset_id == dataset.id
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"dataset {dataset.name!r} is not in dataset group {group.name!r}")
        removed.append(dataset.name)
    if removed:
        audit.record_about(
            session, _subject(group), actor, "dataset_group.datasets_removed", {"datasets": removed}
        )
    return removed


def rename_group(session: Session, group: DatasetGroup, new_name: str, *, actor: Actor) -> None:
    clean = names.display_name(new_name, what="dataset group")
    check_name_free(session, DatasetGroup, group.account_id, clean, "dataset group", but=group.id)
    before = group.name
    group.name, group.name_key = clean, names.name_key(clean)
    flush_named(session, clean, "dataset group")
    detail = {"before": {"name": before}, "after": {"name": clean}}
    audit.record_about(session, _subject(group), actor, "dataset_group.renamed", detail)


def delete_group(session: Session, group: DatasetGroup, *, actor: Actor) -> None:
    """Delete the group and the grants of it; its datasets are untouched."""
    datasets = [d.name for d in group_datasets(session, group)]
    session.execute(delete(DatasetGroupMember).where(DatasetGroupMember.group_id == group.id))
    session.execute(delete(DatasetGroupGrant).where(DatasetGroupGrant.dataset_group_id == group.id))
    session.execute(delete(DatasetGroup).where(DatasetGroup.id == group.id))
    detail = {"datasets_kept": datasets}
    audit.record_about(session, _subject(group), actor, "dataset_group.deleted", detail)


# --- pinning to one directory group -------------------------------------------------------


def _named_alike(session: Session, group: DatasetGroup) -> list[DirectoryGroup]:
    query = select(DirectoryGroup).where(
        DirectoryGroup.account_id == group.account_id,
        DirectoryGroup.display_name_key == group.name_key,
    )
    return list(session.scalars(query.order_by(DirectoryGroup.display_name, DirectoryGroup.id)))


def pin_group(
    session: Session, group: DatasetGroup, directory_group_id: str, *, actor: Actor
) -> DirectoryGroup:
    """Pin ``group`` to the directory group it matches now: from then on only that group
    (same id, same externalId) gives access through it, whatever else is named alike."""
    wanted = names.as_id(directory_group_id)
    chosen = next((g for g in _named_alike(session, group) if g.id == wanted), None)
    if chosen is None:
        problem = (
            f"is not a directory group named like {group.name!r}; "
            "pin to one of the groups that match it (by id)"
        )
        raise InvalidInput(
            f"directory group {directory_group_id!r} {problem}", fields={"directory_group": problem}
        )
    group.pinned_group_id, group.pinned_group_external_id = chosen.id, chosen.external_id
    session.flush()
    detail = {
        "directory_group": chosen.display_name,
        "directory_group_id": str(chosen.id),
        "external_id": chosen.external_id,
    }
    audit.record_about(session, _subject(group), actor, "dataset_group.pinned", detail)
    return chosen


def unpin_group(session: Session, group: DatasetGroup, *, actor: Actor) -> None:
    """Back to matching by name: every directory group named alike gives access."""
    if group.pinned_group_id is None:
        return
    detail = {"directory_group_id": str(group.pinned_group_id)}
    group.pinned_group_id = group.pinned_group_external_id = None
    session.flush()
    audit.record_about(session, _subject(group), actor, "dataset_group.unpinned", detail)


def match_note(
    session: Session, *, account_id: uuid.UUID, group_id: uuid.UUID, name_key: str
) -> str | None:
    """For the provisioning log, when directory group ``group_id`` gets a name: what an
    admin should know if that name matches a dataset group another group holds already."""
    group = session.scalar(
        select(DatasetGroup).where(
            DatasetGroup.account_id == account_id, DatasetGroup.name_key == name_key
        )
    )
    if group is None:
        return None
    if group.pinned_group_id is not None:
        if group.pinned_group_id == group_id:
            return None
        return (
            f"displayName matches dataset group {group.name!r}, which is pinned to another "
            "directory group: this group gives its members no access through it"
        )
    others = [g for g in _named_alike(session, group) if g.id != group_id]
    if not others:
        return None
    named = ", ".join(repr(g.display_name) for g in others[:3])
    return (
        f"displayName matches dataset group {group.name!r}, which directory group {named} "
        "matches too: each gives its members that group's datasets; pin the dataset group "
        "to the right one"
    )


def ambiguous_groups(session: Session, account_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Dataset groups of the account that more than one directory group is named like,
    with how many (for listings)."""
    rows = session.execute(
        select(DatasetGroup.id, func.count(DirectoryGroup.id))
        .join(DirectoryGroup, access.named_alike())
        .where(DatasetGroup.account_id == account_id)
        .group_by(DatasetGroup.id)
        .having(func.count(DirectoryGroup.id) > 1)
    )
    return {group_id: int(count) for group_id, count in rows}
