"""Reads shared by the admin API and the CLI: domain calls assembled into wire shapes."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from keystead import access
from keystead.admin.schemas import (
    AccessEntryOut,
    AccessOut,
    ApiKeyOut,
    DatasetDetailOut,
    DatasetGroupOut,
    DatasetOut,
    ExplainOut,
    GrantsOut,
    KeyVersionOut,
    ReasonOut,
    TemplateOut,
)
from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.catalog import fpe
from keystead.catalog import groups as dataset_groups
from keystead.storage.models import (
    ApiKey,
    Dataset,
    DatasetGrant,
    DatasetGroup,
    DatasetGroupGrant,
    DatasetGroupMember,
)


def _default_names(session: Session, account_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = session.execute(
        select(ApiKey.id, Dataset.name)
        .join(Dataset, Dataset.id == ApiKey.default_unstructured_dataset_id)
        .where(ApiKey.account_id == account_id)
    )
    return {row[0]: row[1] for row in rows}


def api_key(session: Session, key: ApiKey) -> ApiKeyOut:
    grants = apikeys.grants_of(session, key)
    default = None
    if key.default_unstructured_dataset_id is not None:
        default = session.scalar(
            select(Dataset.name).where(Dataset.id == key.default_unstructured_dataset_id)
        )
    return ApiKeyOut.of(
        key,
        GrantsOut(
            datasets=[d.name for d in grants.datasets],
            dataset_groups=[g.name for g in grants.dataset_groups],
        ),
        default,
    )


def api_keys(session: Session, account_id: uuid.UUID) -> list[ApiKeyOut]:
    """Every key with its grants, in four queries whatever the number of keys."""
    keys = apikeys.list_api_keys(session, account_id)
    ds: dict[uuid.UUID, list[str]] = {}
    for key_id, name in session.execute(
        select(DatasetGrant.api_key_id, Dataset.name)
        .join(Dataset, Dataset.id == DatasetGrant.dataset_id)
        .where(Dataset.account_id == account_id)
        .order_by(Dataset.name_key)
    ):
        ds.setdefault(key_id, []).append(name)
    gr: dict[uuid.UUID, list[str]] = {}
    for key_id, name in session.execute(
        select(DatasetGroupGrant.api_key_id, DatasetGroup.name)
        .join(DatasetGroup, DatasetGroup.id == DatasetGroupGrant.dataset_group_id)
        .where(DatasetGroup.account_id == account_id)
        .order_by(DatasetGroup.name_key)
    ):
        gr.setdefault(key_id, []).append(name)
    defaults = _default_names(session, account_id)
    return [
        ApiKeyOut.of(
            k,
            GrantsOut(datasets=ds.get(k.id, []), dataset_groups=gr.get(k.id, [])),
            defaults.get(k.id),
        )
        for k in keys
    ]


def dataset_detail(session: Session, dataset: Dataset) -> DatasetDetailOut:
    base = DatasetOut.of(dataset)
    groups = session.scalars(
        select(DatasetGroup.name)
        .join(DatasetGroupMember, DatasetGroupMember.group_id == DatasetGroup.id)
        .where(DatasetGroupMember.dataset_id == dataset.id)
        .order_by(DatasetGroup.name_key)
    )
    return DatasetDetailOut(
        **base.model_dump(),
        keys=[KeyVersionOut.of(k) for k in catalog.list_keys(session, dataset)],
        dataset_groups=list(groups),
    )


def dataset_group(session: Session, group: DatasetGroup) -> DatasetGroupOut:
    return DatasetGroupOut.of(
        group, [d.name for d in dataset_groups.group_datasets(session, group)]
    )


def dataset_group_list(session: Session, account_id: uuid.UUID) -> list[DatasetGroupOut]:
    contents = dataset_groups.datasets_by_group(session, account_id)
    return [
        DatasetGroupOut.of(g, contents.get(g.id, []))
        for g in dataset_groups.list_groups(session, account_id)
    ]


def access_of(session: Session, key: ApiKey) -> AccessOut:
    reasons = access.explain(session, key.id)
    by_dataset: dict[uuid.UUID, list[ReasonOut]] = {}
    for reason in reasons:
        by_dataset.setdefault(reason.dataset_id, []).append(ReasonOut.of(reason))
    entries = [
        AccessEntryOut(dataset=d.name, type=d.type, reasons=by_dataset.get(d.id, []))
        for d in access.usable_datasets(session, key.id)
    ]
    return AccessOut(access_key_id=key.access_key_id, enabled=key.enabled, datasets=entries)


def explain(session: Session, key: ApiKey, dataset: Dataset) -> ExplainOut:
    reasons = [ReasonOut.of(r) for r in access.explain(session, key.id, dataset.id)]
    allowed = bool(reasons)
    if not allowed:
        summary = (
            f"API key {key.name!r} has no access to dataset {dataset.name!r}: it is not granted "
            "directly, through a granted dataset group, or through a directory group"
        )
    else:
        summary = f"API key {key.name!r} may use dataset {dataset.name!r}: " + "; ".join(
            r.description for r in reasons
        )
    if not key.enabled:
        summary += " (but the key is disabled, so every request with it is refused)"
    return ExplainOut(
        access_key_id=key.access_key_id,
        dataset=dataset.name,
        allowed=allowed,
        key_enabled=key.enabled,
        reasons=reasons,
        summary=summary,
    )


def templates() -> list[TemplateOut]:
    out = [
        TemplateOut(
            name=name,
            type="structured",
            description=str(raw["description"]),
            max_key_number=fpe.max_key_number(fpe.from_template(name)),
        )
        for name, raw in sorted(fpe.TEMPLATES.items())
    ]
    out.append(
        TemplateOut(
            name=fpe.UNSTRUCTURED_TEMPLATE,
            type="unstructured",
            description="Free text or files of any size, AES-256-GCM with per-request data keys",
            max_key_number=None,
        )
    )
    return out
