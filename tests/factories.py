"""Small builders for test data. Directory rows are inserted directly: until directory
sync fills them, this is how tests put users, groups and memberships in place."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from keystead.accounts import service as accounts
from keystead.apikeys import service as apikeys
from keystead.apikeys.service import CreatedKey
from keystead.audit import Actor
from keystead.catalog import datasets as catalog
from keystead.catalog import groups
from keystead.crypto.masterkey import MasterKey
from keystead.directory.service import User
from keystead.names import name_key
from keystead.storage.models import (
    ApiKey,
    Dataset,
    DatasetGroup,
    DirectoryGroup,
    DirectoryMembership,
    DirectoryUser,
)

ACTOR = Actor("system", None, "tests")


def account(session: Session, name: str = "Acme", plan: str = "enterprise") -> uuid.UUID:
    return accounts.create_account(session, name=name, plan=plan, actor=ACTOR).id


def dataset(
    session: Session,
    account_id: uuid.UUID,
    name: str,
    master: MasterKey,
    *,
    template: str = "ssn",
) -> Dataset:
    kind = "unstructured" if template == "text" else "structured"
    spec = catalog.DatasetSpec(name, kind, template if kind == "structured" else None)
    return catalog.create_dataset(
        session, account_id=account_id, spec=spec, master=master, actor=ACTOR
    )


def dataset_group(
    session: Session, account_id: uuid.UUID, name: str, *datasets: str
) -> DatasetGroup:
    return groups.create_group(
        session, account_id=account_id, name=name, datasets=datasets, actor=ACTOR
    )


def manual_key(
    session: Session,
    account_id: uuid.UUID,
    master: MasterKey,
    name: str = "app",
    *,
    datasets: tuple[str, ...] = (),
    dataset_groups: tuple[str, ...] = (),
) -> CreatedKey:
    return apikeys.create_api_key(
        session,
        account_id=account_id,
        name=name,
        datasets=datasets,
        dataset_groups=dataset_groups,
        master=master,
        actor=ACTOR,
    )


def directory_user(
    session: Session, account_id: uuid.UUID, user_name: str, *, active: bool = True
) -> tuple[DirectoryUser, ApiKey]:
    """A synced user with its auto-provisioned key (no server-side RSA key pair)."""
    user = DirectoryUser(
        account_id=account_id, user_name=user_name, user_name_key=name_key(user_name), active=active
    )
    session.add(user)
    session.flush()
    key = ApiKey(
        account_id=account_id,
        access_key_id=uuid.uuid4().hex[:24],
        name=user_name,
        enabled=active,
        auto_provisioned=True,
        directory_user_id=user.id,
        wrapped_signing_key=b"not-used-in-these-tests",
    )
    session.add(key)
    session.flush()
    return user, key


def directory_group(session: Session, account_id: uuid.UUID, display_name: str) -> DirectoryGroup:
    group = DirectoryGroup(
        account_id=account_id, display_name=display_name, display_name_key=name_key(display_name)
    )
    session.add(group)
    session.flush()
    return group


def member(session: Session, group: DirectoryGroup, user: DirectoryUser) -> None:
    session.add(DirectoryMembership(group_id=group.id, user_id=user.id))
    session.flush()


def rename_directory_group(session: Session, group: DirectoryGroup, display_name: str) -> None:
    group.display_name, group.display_name_key = display_name, name_key(display_name)
    session.flush()


def user_record(
    attributes: dict[str, Any], *, created_at: datetime, updated_at: datetime, version: int = 1
) -> User:
    """A directory user as the directory returns it (no database), from its stored SCIM
    attributes, for rendering it."""
    user_name = str(attributes["userName"])
    return User(
        id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        user_name=user_name,
        user_name_key=name_key(user_name),
        external_id=None,
        display_name=None,
        active=True,
        attributes=attributes,
        pinned_object_id=None,
        version=version,
        created_at=created_at,
        updated_at=updated_at,
    )
