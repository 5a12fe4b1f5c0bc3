"""Reads shared by the admin API and the CLI: domain calls assembled into wire shapes."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from keystead import access
from keystead.admin.schemas import (
    AccessEntryOut,
    AccessOut,
    ApiKeyListedOut,
    ApiKeyOut,
    DatasetDetailOut,
    DatasetGroupDetailOut,
    DatasetGroupOut,
    DatasetOut,
    DirectoryGroupRefOut,
    ExplainOut,
    GrantsOut,
    KeyVersionOut,
    Page,
    PinOut,
    ReasonOut,
    TemplateOut,
)
from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.catalog import fpe
from keystead.catalog import groups as dataset_groups
from keystead.directory import listing
from keystead.storage.models import (
    ApiKey,
    Dataset,
    DatasetGrant,
    DatasetGroup,
    DatasetGroupGrant,
    DatasetGroupMember,
    DirectoryGroup,
    DirectoryUser,
)


def _user_name(session: Session, key: ApiKey) -> str | None:
    if key.directory_user_id is None:
        return None
    return session.scalar(
        select(DirectoryUser.user_name).where(DirectoryUser.id == key.directory_user_id)
    )


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
        _user_name(session, key),
    )


def api_keys(
    session: Session, account_id: uuid.UUID, search: apikeys.KeySearch | None = None
) -> Page[ApiKeyListedOut]:
    """The keys ``search`` asks for, with their grants, directory users and how many
    datasets each may use: a fixed number of queries per key listed, whatever the
    number of keys in the account."""
    keys, total = apikeys.list_api_keys(session, account_id, search)
    ids = [k.id for k in keys]
    counts: dict[uuid.UUID, int] = {}
    ds: dict[uuid.UUID, list[str]] = {}
    gr: dict[uuid.UUID, list[str]] = {}
    users: dict[uuid.UUID, str] = {}
    defaults: dict[uuid.UUID, str] = {}
    for chunk in _chunks(ids):
        counts.update(access.usable_counts(session, chunk))
        for key_id, name in session.execute(
            select(DatasetGrant.api_key_id, Dataset.name)
            .join(Dataset, Dataset.id == DatasetGrant.dataset_id)
            .where(DatasetGrant.api_key_id.in_(chunk))
            .order_by(Dataset.name_key)
        ):
            ds.setdefault(key_id, []).append(name)
        for key_id, name in session.execute(
            select(DatasetGroupGrant.api_key_id, DatasetGroup.name)
            .join(DatasetGroup, DatasetGroup.id == DatasetGroupGrant.dataset_group_id)
            .where(DatasetGroupGrant.api_key_id.in_(chunk))
            .order_by(DatasetGroup.name_key)
        ):
            gr.setdefault(key_id, []).append(name)
        users.update(
            (key_id, name)
            for key_id, name in session.execute(
                select(ApiKey.id, DirectoryUser.user_name)
                .join(DirectoryUser, DirectoryUser.id == ApiKey.directory_user_id)
                .where(ApiKey.id.in_(chunk))
            )
        )
        defaults.update(
            (key_id, name)
            for key_id, name in session.execute(
                select(ApiKey.id, Dataset.name)
                .join(Dataset, Dataset.id == ApiKey.default_unstructured_dataset_id)
                .where(ApiKey.id.in_(chunk))
            )
        )
    items = [
        ApiKeyListedOut(
            **ApiKeyOut.of(
                k,
                GrantsOut(datasets=ds.get(k.id, []), dataset_groups=gr.get(k.id, [])),
                defaults.get(k.id),
                users.get(k.id),
            ).model_dump(),
            datasets_count=counts.get(k.id, 0),
        )
        for k in keys
    ]
    limit = search.limit if search is not None and search.limit is not None else len(items)
    return Page[ApiKeyListedOut](
        items=items, total=total, limit=limit, offset=search.offset if search else 0
    )


def _chunks(ids: list[uuid.UUID], size: int = 500) -> list[list[uuid.UUID]]:
    """IN lists of a bounded length (SQLite binds at most 32,766 parameters)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


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


def dataset_group(session: Session, group: DatasetGroup) -> DatasetGroupDetailOut:
    matching = listing.matching_groups(session, group)
    pin = None
    if group.pinned_group_id is not None:
        pin = PinOut(
            directory_group_id=str(group.pinned_group_id),
            external_id=group.pinned_group_external_id,
            present=any(g.id == group.pinned_group_id and gives for g, gives in matching),
        )
    return DatasetGroupDetailOut(
        **DatasetGroupOut.of(
            group,
            [d.name for d in dataset_groups.group_datasets(session, group)],
            [g.display_name for g, gives in matching if gives],
            ambiguous=len(matching) > 1,
        ).model_dump(),
        matching_directory_groups=[
            DirectoryGroupRefOut(
                id=str(g.id),
                display_name=g.display_name,
                external_id=g.external_id,
                member_count=g.member_count,
                gives_access=gives,
                pinned=g.id == group.pinned_group_id,
            )
            for g, gives in matching
        ],
        pinned_to=pin,
        keys_with_access=access.keys_through_dataset_group(session, group.id),
    )


def dataset_group_list(session: Session, account_id: uuid.UUID) -> list[DatasetGroupOut]:
    contents = dataset_groups.datasets_by_group(session, account_id)
    matched: dict[uuid.UUID, list[str]] = {}
    for group_id, name in session.execute(
        select(DatasetGroup.id, DirectoryGroup.display_name)
        .join(DirectoryGroup, access.matches())
        .where(DatasetGroup.account_id == account_id)
        .order_by(DirectoryGroup.display_name)
    ):
        matched.setdefault(group_id, []).append(name)
    ambiguous = dataset_groups.ambiguous_groups(session, account_id)
    return [
        DatasetGroupOut.of(
            g, contents.get(g.id, []), matched.get(g.id, []), ambiguous=g.id in ambiguous
        )
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
    out = []
    for name, raw in sorted(fpe.TEMPLATES.items()):
        definition = fpe.from_template(name)
        out.append(
            TemplateOut(
                name=name,
                type="structured",
                description=str(raw["description"]),
                max_key_number=fpe.max_key_number(definition),
                input_character_set=definition.input_character_set,
                output_character_set=definition.output_character_set,
                passthrough=definition.passthrough,
                min_input_length=definition.min_input_length,
                max_input_length=definition.max_input_length,
            )
        )
    out.append(
        TemplateOut(
            name=fpe.UNSTRUCTURED_TEMPLATE,
            type="unstructured",
            description="Free text or files of any size, AES-256-GCM with per-request data keys",
            max_key_number=None,
        )
    )
    return out
