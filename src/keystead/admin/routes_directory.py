"""The synced directory, read-only: users and groups as Entra provisioned them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from keystead.admin import views
from keystead.admin.auth import Reader, RuntimeDep
from keystead.admin.params import PageLimit, PageOffset
from keystead.admin.schemas import (
    DirectoryGroupDetailOut,
    DirectoryGroupOut,
    DirectoryUserDetailOut,
    DirectoryUserOut,
    Page,
    fields_of,
)
from keystead.directory import listing

router = APIRouter(tags=["directory"])

DirectorySearch = Annotated[
    str | None, Query(max_length=256, description="Case-insensitive part of the name or externalId")
]


@router.get("/directory/users")
def list_users(
    principal: Reader,
    runtime: RuntimeDep,
    *,
    q: DirectorySearch = None,
    active: Annotated[bool | None, Query(description="Only active (or inactive) users")] = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[DirectoryUserOut]:
    """Synced users by userName, each with its auto-provisioned API key."""
    with runtime.db.read() as session:
        found = listing.search_users(
            session, principal.account_id, text=q, active=active, limit=limit, offset=offset
        )
    return views.directory_users(found, limit, offset)


@router.get("/directory/users/{user_id}")
def get_user(user_id: str, principal: Reader, runtime: RuntimeDep) -> DirectoryUserDetailOut:
    with runtime.db.read() as session:
        user, groups = listing.get_user(session, principal.account_id, user_id)
    return DirectoryUserDetailOut(**fields_of(user, DirectoryUserDetailOut, groups=groups))


@router.get("/directory/groups")
def list_groups(
    principal: Reader,
    runtime: RuntimeDep,
    *,
    q: DirectorySearch = None,
    matched: Annotated[
        bool | None, Query(description="Only groups that match (or do not match) a dataset group")
    ] = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[DirectoryGroupOut]:
    """Synced groups by displayName, with member counts and the dataset group each
    matches by name."""
    with runtime.db.read() as session:
        found = listing.search_groups(
            session, principal.account_id, text=q, matched=matched, limit=limit, offset=offset
        )
    return views.directory_groups(found, limit, offset)


@router.get("/directory/groups/{group_id}")
def get_group(
    group_id: str,
    principal: Reader,
    runtime: RuntimeDep,
    *,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> DirectoryGroupDetailOut:
    """One group and a page of its members."""
    with runtime.db.read() as session:
        group, members = listing.get_group(
            session, principal.account_id, group_id, limit=limit, offset=offset
        )
    page = views.directory_users(members, limit, offset)
    return DirectoryGroupDetailOut(**fields_of(group, DirectoryGroupDetailOut, members=page))
