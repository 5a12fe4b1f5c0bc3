"""API keys and their manual grants."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.orm import Session

from keystead import audit, names
from keystead.apikeys import credentials
from keystead.apikeys.policy import ensure_editable_by_hand
from keystead.audit import Actor
from keystead.catalog.datasets import Named, find_dataset
from keystead.catalog.groups import find_group
from keystead.crypto.masterkey import MasterKey
from keystead.errors import InvalidInput, NotFound
from keystead.storage.models import ApiKey, Dataset, DatasetGrant, DatasetGroup, DatasetGroupGrant
from keystead.storage.types import utcnow


def signing_key_context(key_id: uuid.UUID) -> str:
    return f"api-key-signing:{key_id}"


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secrets: credentials.ClientSecrets


@dataclass(frozen=True)
class Grants:
    datasets: list[Dataset]
    dataset_groups: list[DatasetGroup]

    def names(self) -> dict[str, list[str]]:
        return {
            "datasets": [d.name for d in self.datasets],
            "dataset_groups": [g.name for g in self.dataset_groups],
        }


def create_api_key(
    session: Session,
    *,
    account_id: uuid.UUID,
    name: str,
    datasets: Iterable[str] = (),
    dataset_groups: Iterable[str] = (),
    master: MasterKey,
    actor: Actor,
) -> CreatedKey:
    """A manual key with its three one-time secrets and initial grants."""
    clean = names.display_name(name, what="API key")
    # Resolve grants first so an unknown name fails before anything is generated.
    wanted = _named(session, account_id, datasets, dataset_groups)
    granted = Grants(_distinct(wanted.datasets), _distinct(wanted.dataset_groups))
    generated = credentials.generate()
    key = ApiKey(
        id=uuid.uuid4(),
        account_id=account_id,
        access_key_id=generated.access_key_id,
        name=clean,
        enabled=True,
        auto_provisioned=False,
        public_key_pem=generated.public_key_pem,
        encrypted_private_key_pem=generated.encrypted_private_key_pem,
    )
    key.wrapped_signing_key = master.wrap(
        generated.secret_signing_key.encode(), signing_key_context(key.id)
    )
    session.add(key)
    session.flush()
    _add_grants(session, key, granted)
    detail = {kind: sorted(listed) for kind, listed in granted.names().items()}
    audit.record_about(session, _subject(key), actor, "api_key.created", detail)
    return CreatedKey(key, generated)


def find_api_key(session: Session, account_id: uuid.UUID, ref: str) -> ApiKey:
    """By access key id (or internal id); NotFound otherwise."""
    query = select(ApiKey).where(ApiKey.account_id == account_id)
    key = session.scalar(query.where(ApiKey.access_key_id == ref))
    wanted = names.as_id(ref)
    if key is None and wanted is not None:
        key = session.scalar(query.where(ApiKey.id == wanted))
    if key is None:
        raise NotFound(f"no API key {ref!r} in this account")
    return key


KeyKind = Literal["manual", "auto", "enabled", "disabled", "suspended"]
KEY_KINDS: tuple[KeyKind, ...] = get_args(KeyKind)
_KINDS: dict[KeyKind, ColumnElement[bool]] = {
    "manual": ApiKey.auto_provisioned.is_(False),
    "auto": ApiKey.auto_provisioned.is_(True),
    "enabled": ApiKey.enabled.is_(True),
    "disabled": ApiKey.enabled.is_(False),
    "suspended": ApiKey.suspended.is_(True),
}


@dataclass(frozen=True)
class KeySearch:
    """Which keys a listing shows: ``text`` is a case-insensitive part of the name or the
    whole access key id; ``limit`` None lists every match."""

    text: str | None = None
    kind: KeyKind | None = None
    limit: int | None = None
    offset: int = 0


def _search_filter(account_id: uuid.UUID, search: KeySearch) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [ApiKey.account_id == account_id]
    text = (search.text or "").strip()
    if text:
        where.append(
            or_(ApiKey.name.icontains(text, autoescape=True), ApiKey.access_key_id == text)
        )
    if search.kind is not None:
        where.append(_KINDS[search.kind])
    return where


def list_api_keys(
    session: Session, account_id: uuid.UUID, search: KeySearch | None = None
) -> tuple[list[ApiKey], int]:
    """The keys matching ``search`` by name, and how many match in all."""
    wanted = search or KeySearch()
    where = _search_filter(account_id, wanted)
    query = select(ApiKey).where(*where).order_by(ApiKey.name, ApiKey.access_key_id)
    if wanted.limit is None:
        keys = list(session.scalars(query))
        return keys, len(keys)
    keys = list(session.scalars(query.limit(wanted.limit).offset(wanted.offset)))
    if wanted.offset == 0 and len(keys) < wanted.limit:
        return keys, len(keys)
    total = session.scalar(select(func.count()).select_from(ApiKey).where(*where))
    return keys, int(total or 0)


def grants_of(session: Session, key: ApiKey) -> Grants:
    datasets = session.scalars(
        select(Dataset)
        .join(DatasetGrant, DatasetGrant.dataset_id == Dataset.id)
        .where(DatasetGrant.api_key_id == key.id)
        .order_by(Dataset.name_key)
    )
    groups = session.scalars(
        select(DatasetGroup)
        .join(DatasetGroupGrant, DatasetGroupGrant.dataset_group_id == DatasetGroup.id)
        .where(DatasetGroupGrant.api_key_id == key.id)
        .order_by(DatasetGroup.name_key)
    )
    return Grants(list(datasets), list(groups))


def _named(
    session: Session, account_id: uuid.UUID, datasets: Iterable[str], groups: Iterable[str]
) -> Grants:
    """The datasets and dataset groups named, as given; NotFound for an unknown one."""
    return Grants(
        [find_dataset(session, account_id, ref) for ref in datasets],
        [find_group(session, account_id, ref) for ref in groups],
    )


def _distinct(items: Iterable[Named], but: Iterable[Named] = ()) -> list[Named]:
    """``items`` each once, in order, less those in ``but``."""
    left_out = {item.id for item in but}
    return list({item.id: item for item in items if item.id not in left_out}.values())


def _add_grants(session: Session, key: ApiKey, grants: Grants) -> None:
    session.add_all(DatasetGrant(api_key_id=key.id, dataset_id=d.id) for d in grants.datasets)
    session.add_all(
        DatasetGroupGrant(api_key_id=key.id, dataset_group_id=g.id) for g in grants.dataset_groups
    )
    session.flush()


def _by_hand(key: ApiKey, change: str) -> None:
    ensure_editable_by_hand(name=key.name, auto_provisioned=key.auto_provisioned, change=change)


def _subject(key: ApiKey) -> audit.Subject:
    return audit.Subject(key.account_id, "api_key", key.access_key_id, key.name)


def _changed(
    session: Session, key: ApiKey, actor: Actor, action: str, detail: dict[str, Any]
) -> None:
    """A hand edit of ``key``: its update time, and the audit event."""
    key.updated_at = utcnow()
    audit.record_about(session, _subject(key), actor, action, detail)


def rename(session: Session, key: ApiKey, new_name: str, *, actor: Actor) -> None:
    _by_hand(key, "renamed")
    before, key.name = key.name, names.display_name(new_name, what="API key")
    detail = {"before": {"name": before}, "after": {"name": key.name}}
    _changed(session, key, actor, "api_key.renamed", detail)


def suspend(session: Session, key: ApiKey, *, actor: Actor, reason: str | None = None) -> None:
    """An emergency stop: every endpoint refuses the key from its next request. Allowed on
    auto-provisioned keys too (the one hand edit they take): directory sync never clears
    it, so the provisioning rules still hold for everything else about the key."""
    if key.suspended:
        return
    key.suspended, key.suspended_at = True, utcnow()
    key.suspended_by = (actor.label or actor.type)[:256]
    detail = {"reason": reason[:500]} if reason else {}
    audit.record_about(session, _subject(key), actor, "api_key.suspended", detail)


def resume(session: Session, key: ApiKey, *, actor: Actor) -> None:
    """Lift a suspension (the key is again whatever its enabled flag says)."""
    if not key.suspended:
        return
    key.suspended, key.suspended_at, key.suspended_by = False, None, None
    audit.record_about(session, _subject(key), actor, "api_key.resumed")


def set_enabled(session: Session, key: ApiKey, enabled: bool, *, actor: Actor) -> None:
    _by_hand(key, "enabled" if enabled else "disabled")
    if key.enabled == enabled:
        return
    key.enabled = enabled
    detail = {"before": {"enabled": not enabled}, "after": {"enabled": enabled}}
    _changed(session, key, actor, "api_key.enabled" if enabled else "api_key.disabled", detail)


def delete_api_key(session: Session, key: ApiKey, *, actor: Actor) -> None:
    _by_hand(key, "deleted")
    session.execute(delete(DatasetGrant).where(DatasetGrant.api_key_id == key.id))
    session.execute(delete(DatasetGroupGrant).where(DatasetGroupGrant.api_key_id == key.id))
    session.execute(delete(ApiKey).where(ApiKey.id == key.id))
    audit.record_about(session, _subject(key), actor, "api_key.deleted")


def grant(
    session: Session,
    key: ApiKey,
    *,
    datasets: Iterable[str] = (),
    dataset_groups: Iterable[str] = (),
    actor: Actor,
) -> Grants:
    """Add grants (existing ones are kept); returns what was newly granted."""
    _by_hand(key, "granted datasets")
    held = grants_of(session, key)
    wanted = _named(session, key.account_id, datasets, dataset_groups)
    added = Grants(
        _distinct(wanted.datasets, but=held.datasets),
        _distinct(wanted.dataset_groups, but=held.dataset_groups),
    )
    _add_grants(session, key, added)
    if added.datasets or added.dataset_groups:
        _changed(session, key, actor, "api_key.granted", added.names())
    return added


def revoke(
    session: Session,
    key: ApiKey,
    *,
    datasets: Iterable[str] = (),
    dataset_groups: Iterable[str] = (),
    actor: Actor,
) -> Grants:
    """Remove grants; naming something that is not granted is an error (nothing changes)."""
    _by_hand(key, "revoked datasets")
    held = grants_of(session, key)
    dropped = _named(session, key.account_id, datasets, dataset_groups)
    if stray := _distinct(dropped.datasets, but=held.datasets):
        raise NotFound(f"API key {key.name!r} has no direct grant of dataset {stray[0].name!r}")
    if stray_groups := _distinct(dropped.dataset_groups, but=held.dataset_groups):
        group = stray_groups[0].name
        raise NotFound(f"API key {key.name!r} has no grant of dataset group {group!r}")
    if dropped.datasets:
        session.execute(
            delete(DatasetGrant).where(
                DatasetGrant.api_key_id == key.id,
                DatasetGrant.dataset_id.in_([d.id for d in dropped.datasets]),
            )
        )
    if dropped.dataset_groups:
        session.execute(
            delete(DatasetGroupGrant).where(
                DatasetGroupGrant.api_key_id == key.id,
                DatasetGroupGrant.dataset_group_id.in_([g.id for g in dropped.dataset_groups]),
            )
        )
    if dropped.datasets or dropped.dataset_groups:
        _changed(session, key, actor, "api_key.revoked", dropped.names())
    return dropped


def set_default_dataset(
    session: Session, key: ApiKey, dataset_ref: str | None, *, actor: Actor
) -> None:
    """Choose (or with None, clear) the unstructured dataset the key encrypts under when it
    may use several. The choice matters only while the key may use that dataset."""
    _by_hand(key, "given a default dataset")
    dataset = None if dataset_ref is None else find_dataset(session, key.account_id, dataset_ref)
    if dataset is not None and dataset.type != "unstructured":
        raise InvalidInput(
            f"dataset {dataset.name!r} is structured; the default is for unstructured data"
        )
    chosen = None if dataset is None else dataset.id
    if chosen != key.default_unstructured_dataset_id:
        key.default_unstructured_dataset_id = chosen
        detail = {"after": {"default_unstructured_dataset": dataset.name if dataset else None}}
        _changed(session, key, actor, "api_key.default_dataset_set", detail)


def signing_key(key: ApiKey, master: MasterKey) -> str:
    """The key's HMAC signing secret (for request verification)."""
    return master.unwrap(key.wrapped_signing_key, signing_key_context(key.id)).decode()
