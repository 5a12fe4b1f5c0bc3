"""Datasets and their key versions."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keystead import audit, names
from keystead.audit import Actor
from keystead.catalog import fpe
from keystead.crypto.masterkey import MasterKey
from keystead.errors import Conflict, InvalidInput, NotFound
from keystead.storage.models import (
    ApiKey,
    Dataset,
    DatasetGrant,
    DatasetGroup,
    DatasetGroupMember,
    DatasetKey,
)

KEY_BYTES = 32  # AES-256 for FF1 keys and for unstructured key-encryption keys
# Datasets and dataset groups: each named uniquely (case-insensitively) in its account.
Named = TypeVar("Named", Dataset, DatasetGroup)


def key_context(dataset_id: uuid.UUID, key_number: int) -> str:
    """Associated data binding a wrapped dataset key to its row."""
    return f"dataset-key:{dataset_id}:{key_number}"


def _subject(dataset: Dataset) -> audit.Subject:
    return audit.Subject(dataset.account_id, "dataset", dataset.id, dataset.name)


@dataclass(frozen=True)
class DatasetSpec:
    """What an admin asks for; exactly one of template / definition for structured."""

    name: str
    type: str
    template: str | None = None
    definition: dict[str, Any] | None = None


def _resolve_definition(spec: DatasetSpec) -> tuple[str | None, dict[str, Any] | None]:
    if spec.type not in ("structured", "unstructured"):
        raise InvalidInput(
            f"dataset type must be 'structured' or 'unstructured'; got {spec.type!r}"
        )
    if spec.type == "unstructured":
        if spec.definition is not None or spec.template not in (None, fpe.UNSTRUCTURED_TEMPLATE):
            raise InvalidInput(
                "unstructured datasets take no definition or structured template "
                f"(their template is {fpe.UNSTRUCTURED_TEMPLATE!r})"
            )
        return fpe.UNSTRUCTURED_TEMPLATE, None
    if (spec.template is None) == (spec.definition is None):
        raise InvalidInput(
            "a structured dataset needs exactly one of a template "
            f"({', '.join(sorted(fpe.TEMPLATES))}) or a custom definition"
        )
    if spec.template is not None:
        return spec.template, fpe.from_template(spec.template).model_dump(mode="json")
    return None, fpe.parse_definition(spec.definition or {}).model_dump(mode="json")


def create_dataset(
    session: Session, *, account_id: uuid.UUID, spec: DatasetSpec, master: MasterKey, actor: Actor
) -> Dataset:
    name = names.dataset_name(spec.name)
    template, definition = _resolve_definition(spec)
    check_name_free(session, Dataset, account_id, name, "dataset")
    dataset = Dataset(
        account_id=account_id,
        name=name,
        name_key=names.name_key(name),
        type=spec.type,
        template=template,
        definition=definition,
        current_key_number=0,
    )
    session.add(dataset)
    flush_named(session, name, "dataset")
    _add_key(session, dataset, 0, master)
    detail = {"type": spec.type, "template": template}
    audit.record_about(session, _subject(dataset), actor, "dataset.created", detail)
    return dataset


def _add_key(session: Session, dataset: Dataset, number: int, master: MasterKey) -> None:
    wrapped = master.wrap(secrets.token_bytes(KEY_BYTES), key_context(dataset.id, number))
    session.add(DatasetKey(dataset_id=dataset.id, key_number=number, wrapped_key=wrapped))
    session.flush()


def find_named(
    session: Session, model: type[Named], account_id: uuid.UUID, ref: str, what: str
) -> Named:
    """By id or by name (case-insensitive, trimmed); NotFound otherwise."""
    query = select(model).where(model.account_id == account_id)
    wanted = names.as_id(ref)
    found = None if wanted is None else session.scalar(query.where(model.id == wanted))
    if found is None:
        found = session.scalar(query.where(model.name_key == names.name_key(ref)))
    if found is None:
        raise NotFound(f"no {what} {ref!r} in this account")
    return found


def check_name_free(
    session: Session,
    model: type[Named],
    account_id: uuid.UUID,
    name: str,
    what: str,
    *,
    but: uuid.UUID | None = None,
) -> None:
    """Refuse ``name`` if another of the account's ``model`` (not ``but``) holds it."""
    query = select(model.id).where(model.account_id == account_id)
    existing = session.scalar(query.where(model.name_key == names.name_key(name)))
    if existing is not None and existing != but:
        raise Conflict(f"a {what} named {name!r} already exists in this account")


def flush_named(session: Session, name: str, what: str) -> None:
    """Flush a new or renamed dataset or group: a concurrent writer that took the name
    first makes it a Conflict (the unique constraint), as the check before would have."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a {what} named {name!r} already exists in this account") from exc


def find_dataset(session: Session, account_id: uuid.UUID, ref: str) -> Dataset:
    return find_named(session, Dataset, account_id, ref, "dataset")


def list_datasets(session: Session, account_id: uuid.UUID) -> list[Dataset]:
    query = select(Dataset).where(Dataset.account_id == account_id).order_by(Dataset.name_key)
    return list(session.scalars(query))


def list_keys(session: Session, dataset: Dataset) -> list[DatasetKey]:
    query = select(DatasetKey).where(DatasetKey.dataset_id == dataset.id)
    return list(session.scalars(query.order_by(DatasetKey.key_number)))


def group_names(session: Session, dataset: Dataset) -> list[str]:
    """The names of the dataset groups that contain ``dataset``."""
    query = (
        select(DatasetGroup.name)
        .join(DatasetGroupMember, DatasetGroupMember.group_id == DatasetGroup.id)
        .where(DatasetGroupMember.dataset_id == dataset.id)
        .order_by(DatasetGroup.name_key)
    )
    return list(session.scalars(query))


def max_key_number(dataset: Dataset) -> int | None:
    """The highest key number the dataset's ciphertext format can carry (None: unbounded)."""
    if dataset.type != "structured" or dataset.definition is None:
        return None
    return fpe.max_key_number(fpe.FpeDefinition.model_validate(dataset.definition))


def rotate_key(session: Session, dataset: Dataset, *, master: MasterKey, actor: Actor) -> int:
    """Add a new key version and make it current; existing versions never change."""
    limit = max_key_number(dataset)
    new_number = dataset.current_key_number + 1
    if limit is not None and new_number > limit:
        raise Conflict(
            f"dataset {dataset.name!r} already uses key number {dataset.current_key_number}, "
            f"the highest its character sets can encode ({limit}); create a new dataset with "
            "a larger output alphabet to rotate further"
        )
    # Compare-and-set so two concurrent rotations cannot both claim the same number.
    moved = session.execute(
        update(Dataset)
        .where(Dataset.id == dataset.id, Dataset.current_key_number == new_number - 1)
        .values(current_key_number=new_number)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"dataset {dataset.name!r} was rotated concurrently; try again")
    dataset.current_key_number = new_number
    _add_key(session, dataset, new_number, master)
    detail = {"before": {"key_number": new_number - 1}, "after": {"key_number": new_number}}
    audit.record_about(session, _subject(dataset), actor, "dataset.key_rotated", detail)
    return new_number


def delete_dataset(session: Session, dataset: Dataset, *, actor: Actor) -> dict[str, Any]:
    """Delete a dataset, its keys, its dataset-group memberships and grants of it."""
    groups = group_names(session, dataset)
    grants = session.scalar(
        select(func.count()).select_from(DatasetGrant).where(DatasetGrant.dataset_id == dataset.id)
    )
    # Explicit deletes rather than relying on ON DELETE CASCADE alone: the effect is then
    # the same whatever the engine's foreign-key enforcement is set to.
    session.execute(delete(DatasetGroupMember).where(DatasetGroupMember.dataset_id == dataset.id))
    session.execute(delete(DatasetGrant).where(DatasetGrant.dataset_id == dataset.id))
    session.execute(delete(DatasetKey).where(DatasetKey.dataset_id == dataset.id))
    session.execute(
        update(ApiKey)
        .where(ApiKey.default_unstructured_dataset_id == dataset.id)
        .values(default_unstructured_dataset_id=None)
    )
    session.execute(delete(Dataset).where(Dataset.id == dataset.id))
    detail = {"removed_from_dataset_groups": groups, "removed_grants": grants}
    audit.record_about(session, _subject(dataset), actor, "dataset.deleted", detail)
    return detail
