"""Reads shared by the admin API and the CLI: domain calls assembled into wire shapes."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from keystead import access
from keystead.admin.schemas import (
    AccessEntryOut,
    AccessOut,
    ApiKeyCreatedOut,
    ApiKeyListedOut,
    ApiKeyOut,
    DatasetDetailOut,
    DatasetGroupDetailOut,
    DatasetGroupOut,
    DatasetOut,
    DirectoryGroupOut,
    DirectoryGroupRefOut,
    DirectoryUserOut,
    ExplainOut,
    GrantsOut,
    IdpOut,
    KeyVersionOut,
    Page,
    PinOut,
    ReasonOut,
    TemplateOut,
    fields_of,
)
from keystead.apikeys import credentials
from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.catalog import fpe
from keystead.catalog import groups as dataset_groups
from keystead.directory import listing
from keystead.settings import Settings
from keystead.storage.models import (
    ApiKey,
    Dataset,
    DatasetGrant,
    DatasetGroup,
    DatasetGroupGrant,
    DirectoryGroup,
    DirectoryUser,
    IdpSettings,
)


def _described(session: Session, keys: list[ApiKey]) -> list[ApiKeyOut]:
    """``keys`` with their grants, default unstructured datasets and directory users: a
    fixed number of queries per 500 keys, whatever the number of keys."""
    grants = {k.id: GrantsOut(datasets=[], dataset_groups=[]) for k in keys}
    names: dict[uuid.UUID, tuple[str | None, str | None]] = {}
    granted = (  # what a grant names, and the list of each key's grants it goes to
        (DatasetGrant, Dataset, DatasetGrant.dataset_id, "datasets"),
        (DatasetGroupGrant, DatasetGroup, DatasetGroupGrant.dataset_group_id, "dataset_groups"),
    )
    for chunk in _chunks([k.id for k in keys]):
        for grant, target, target_id, into in granted:
            for key_id, name in session.execute(
                select(grant.api_key_id, target.name)
                .join(target, target.id == target_id)
                .where(grant.api_key_id.in_(chunk))
                .order_by(target.name_key)
            ):
                getattr(grants[key_id], into).append(name)
        for key_id, default, user in session.execute(
            select(ApiKey.id, Dataset.name, DirectoryUser.user_name)
            .outerjoin(Dataset, Dataset.id == ApiKey.default_unstructured_dataset_id)
            .outerjoin(DirectoryUser, DirectoryUser.id == ApiKey.directory_user_id)
            .where(ApiKey.id.in_(chunk))
        ):
            names[key_id] = (default, user)
    return [ApiKeyOut.of(k, grants[k.id], *names[k.id]) for k in keys]


def api_key(session: Session, key: ApiKey) -> ApiKeyOut:
    return _described(session, [key])[0]


def api_key_created(session: Session, created: apikeys.CreatedKey, server: str) -> ApiKeyCreatedOut:
    """A new key with its secrets and the Ubiq credentials file for ``server`` (shown once)."""
    s = created.secrets
    return ApiKeyCreatedOut(
        **api_key(session, created.key).model_dump(),
        secret_signing_key=s.secret_signing_key,
        secret_crypto_access_key=s.secret_crypto_access_key,
        credentials_file=credentials.credentials_file(
            access_key_id=s.access_key_id,
            secret_signing_key=s.secret_signing_key,
            secret_crypto_access_key=s.secret_crypto_access_key,
            server=server,
        ),
    )


def api_keys(
    session: Session, account_id: uuid.UUID, search: apikeys.KeySearch
) -> Page[ApiKeyListedOut]:
    """The keys ``search`` asks for, described, with how many datasets each may use."""
    keys, total = apikeys.list_api_keys(session, account_id, search)
    counts: dict[uuid.UUID, int] = {}
    for chunk in _chunks([k.id for k in keys]):
        counts.update(access.usable_counts(session, chunk))
    items = [
        ApiKeyListedOut(**out.model_dump(), datasets_count=counts.get(k.id, 0))
        for k, out in zip(keys, _described(session, keys), strict=True)
    ]
    limit = len(items) if search.limit is None else search.limit
    return Page[ApiKeyListedOut](items=items, total=total, limit=limit, offset=search.offset)


def _chunks(ids: list[uuid.UUID], size: int = 500) -> list[list[uuid.UUID]]:
    """IN lists of a bounded length (SQLite binds at most 32,766 parameters)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def directory_users(found: listing.Users, limit: int, offset: int) -> Page[DirectoryUserOut]:
    return Page[DirectoryUserOut](items=found.items, total=found.total, limit=limit, offset=offset)


def directory_groups(found: listing.Groups, limit: int, offset: int) -> Page[DirectoryGroupOut]:
    return Page[DirectoryGroupOut](items=found.items, total=found.total, limit=limit, offset=offset)


def dataset_detail(session: Session, dataset: Dataset) -> DatasetDetailOut:
    return DatasetDetailOut(
        **DatasetOut.of(dataset).model_dump(),
        keys=[KeyVersionOut.of(k) for k in catalog.list_keys(session, dataset)],
        dataset_groups=catalog.group_names(session, dataset),
    )


def dataset_group(session: Session, group: DatasetGroup) -> DatasetGroupDetailOut:
    matching = listing.matching_groups(session, group)
    pinned, pin = group.pinned_group_id, None
    if pinned is not None:
        pin = PinOut(
            directory_group_id=str(pinned),
            external_id=group.pinned_group_external_id,
            present=any(g.id == pinned and gives for g, gives in matching),
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
                **fields_of(g, DirectoryGroupRefOut, gives_access=gives, pinned=g.id == pinned)
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
    by_dataset: dict[uuid.UUID, list[ReasonOut]] = {}
    for reason in access.explain(session, key.id):
        by_dataset.setdefault(reason.dataset_id, []).append(ReasonOut.of(reason))
    entries = [
        AccessEntryOut(dataset=d.name, type=d.type, reasons=by_dataset.get(d.id, []))
        for d in access.usable_datasets(session, key.id)
    ]
    return AccessOut(access_key_id=key.access_key_id, enabled=key.enabled, datasets=entries)


def explain(session: Session, key: ApiKey, dataset: Dataset) -> ExplainOut:
    reasons = [ReasonOut.of(r) for r in access.explain(session, key.id, dataset.id)]
    if reasons:
        why = "; ".join(r.description for r in reasons)
        summary = f"API key {key.name!r} may use dataset {dataset.name!r}: {why}"
    else:
        summary = (
            f"API key {key.name!r} has no access to dataset {dataset.name!r}: it is not granted "
            "directly, through a granted dataset group, or through a directory group"
        )
    if not key.enabled:
        summary += " (but the key is disabled, so every request with it is refused)"
    return ExplainOut(
        access_key_id=key.access_key_id,
        dataset=dataset.name,
        allowed=bool(reasons),
        key_enabled=key.enabled,
        reasons=reasons,
        summary=summary,
    )


def templates() -> list[TemplateOut]:
    out = []
    for name, raw in sorted(fpe.TEMPLATES.items()):
        definition = fpe.from_template(name)
        given = {"name": name, "type": "structured", "description": str(raw["description"])}
        limit = fpe.max_key_number(definition)
        out.append(TemplateOut(**fields_of(definition, TemplateOut, max_key_number=limit, **given)))
    out.append(
        TemplateOut(
            name=fpe.UNSTRUCTURED_TEMPLATE,
            type="unstructured",
            description="Free text or files of any size, AES-256-GCM with per-request data keys",
            max_key_number=None,
        )
    )
    return out


def scim_url(public_url: str, customer_id: str) -> str:
    return f"{public_url}/{customer_id}/api/v3/scim"


def idp_view(config: Settings, settings: IdpSettings) -> IdpOut:
    """The integration's settings as the admin API and the CLI show them."""
    return IdpOut.of(settings, scim_url(config.effective_public_url, str(settings.account_id)))
