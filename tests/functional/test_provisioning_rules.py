"""The provisioning rules of the product brief, on the directory service (both engines).
Directory sync over SCIM calls exactly these functions; here they are driven directly."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keystead import access
from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.catalog import groups
from keystead.directory import service as directory
from keystead.directory.service import User, UserFields
from keystead.errors import Conflict, FollowsDirectory, InvalidInput
from keystead.providers import PROVIDER
from keystead.runtime import Runtime
from keystead.storage.models import ApiKey, DirectoryMembership, DirectoryUser
from tests import factories as f
from tests.factories import ACTOR


def new_user(
    s: Session, runtime: Runtime, acct: uuid.UUID, name: str, *, active: bool = True
) -> User:
    return directory.create_user(
        s,
        account_id=acct,
        fields=UserFields(user_name=name, active=active, external_id=None, display_name=None),
        attributes={},
        master=runtime.master,
    )


def key(s: Session, user: User) -> ApiKey:
    found = s.scalar(select(ApiKey).where(ApiKey.directory_user_id == user.id))
    assert found is not None
    return found


def usable(s: Session, api_key: ApiKey) -> list[str]:
    return [d.name for d in access.usable_datasets(s, api_key.id)]


def test_created_user_gets_an_auto_provisioned_key_named_after_it(runtime: Runtime) -> None:
    """User created → key named after userName, auto-provisioned, no key pair of its own."""
    with runtime.db.write() as s:
        acct = f.account(s)
        user = new_user(s, runtime, acct, "dana@example.com")
        k = key(s, user)
        assert (k.name, k.enabled, k.auto_provisioned) == ("dana@example.com", True, True)
        assert k.public_key_pem is None
        assert k.encrypted_private_key_pem is None
        assert apikeys.signing_key(k, runtime.master)  # a signing secret exists


def test_user_created_inactive_gets_a_disabled_key(runtime: Runtime) -> None:
    """Enabled iff active."""
    with runtime.db.write() as s:
        acct = f.account(s)
        assert key(s, new_user(s, runtime, acct, "x@example.com", active=False)).enabled is False


def test_user_name_change_renames_the_key(runtime: Runtime) -> None:
    """User field change → the auto-provisioned key is renamed."""
    with runtime.db.write() as s:
        acct = f.account(s)
        user = new_user(s, runtime, acct, "dana@example.com")
        directory.update_user(
            s,
            user,
            fields=UserFields("dana.ortiz@example.com", True, None, "Dana"),
            attributes={},
        )
        assert key(s, user).name == "dana.ortiz@example.com"


@pytest.mark.parametrize("final", [False, True])
def test_active_change_disables_and_enables_the_key(runtime: Runtime, final: bool) -> None:
    """User active changed → key enabled / disabled."""
    with runtime.db.write() as s:
        acct = f.account(s)
        user = new_user(s, runtime, acct, "dana@example.com")
        for active in (False, final):
            user = directory.update_user(
                s, user, fields=UserFields(user.user_name, active, None, None), attributes={}
            )
            assert key(s, user).enabled is active


def test_deleted_user_takes_its_key_and_memberships(runtime: Runtime) -> None:
    """User deleted → key deleted; memberships gone; the group stays."""
    with runtime.db.write() as s:
        acct = f.account(s)
        user = new_user(s, runtime, acct, "dana@example.com")
        group = directory.create_group(
            s,
            account_id=acct,
            display_name="HR",
            external_id=None,
            attributes={},
            members=[str(user.id)],
        )
        key_id = key(s, user).id
        directory.delete_user(s, user)
        assert s.get(ApiKey, key_id) is None
        assert s.scalar(select(func.count()).where(DirectoryMembership.group_id == group.id)) == 0


def test_disabled_user_keeps_its_memberships(runtime: Runtime) -> None:
    """Deactivation keeps group memberships (Entra does not resend them on re-enable)."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN")
        user = new_user(s, runtime, acct, "dana@example.com")
        group = directory.create_group(
            s,
            account_id=acct,
            display_name="HR",
            external_id=None,
            attributes={},
            members=[str(user.id)],
        )
        directory.update_user(
            s, user, fields=UserFields(user.user_name, False, None, None), attributes={}
        )
        members = select(DirectoryMembership.user_id).where(
            DirectoryMembership.group_id == group.id
        )
        assert list(s.scalars(members)) == [user.id]
        directory.update_user(
            s, user, fields=UserFields(user.user_name, True, None, None), attributes={}
        )
        assert usable(s, key(s, user)) == ["SSN"]


def test_group_created_changes_nothing(runtime: Runtime) -> None:
    """IDP group created (even one matching a dataset group) → no access for anyone."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN")
        user = new_user(s, runtime, acct, "dana@example.com")
        directory.create_group(
            s, account_id=acct, display_name="HR", external_id=None, attributes={}
        )
        assert usable(s, key(s, user)) == []


def test_members_added_and_removed_gain_and_lose_access(runtime: Runtime) -> None:
    """Group members changed → added members gain the matching datasets, removed lose them."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Notes", runtime.master, template="text")
        f.dataset_group(s, acct, "HR", "SSN", "Notes")
        dana, eve = new_user(s, runtime, acct, "dana@x.io"), new_user(s, runtime, acct, "eve@x.io")
        group = directory.create_group(
            s, account_id=acct, display_name="HR", external_id=None, attributes={}
        )
        assert directory.add_members(s, group, [dana.id, eve.id]) == 2
        assert directory.add_members(s, group, [dana.id]) == 0  # idempotent
        assert usable(s, key(s, dana)) == usable(s, key(s, eve)) == ["Notes", "SSN"]
        assert directory.remove_members(s, group, [eve.id]) == 1
        assert usable(s, key(s, eve)) == []
        assert usable(s, key(s, dana)) == ["Notes", "SSN"]


def test_group_rename_moves_access_to_the_new_match(runtime: Runtime) -> None:
    """Group display name changed → old match gone, new match applies."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Cards", runtime.master, template="digits")
        f.dataset_group(s, acct, "HR", "SSN")
        f.dataset_group(s, acct, "Finance", "Cards")
        user = new_user(s, runtime, acct, "dana@x.io")
        group = directory.create_group(
            s,
            account_id=acct,
            display_name="HR",
            external_id=None,
            attributes={},
            members=[str(user.id)],
        )
        directory.update_group(s, group, display_name=" finance ", external_id=None, attributes={})
        assert usable(s, key(s, user)) == ["Cards"]


def test_group_deleted_removes_access_through_it(runtime: Runtime) -> None:
    """Group deleted → all access through its matching dataset group removed; users stay."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN")
        user = new_user(s, runtime, acct, "dana@x.io")
        group = directory.create_group(
            s,
            account_id=acct,
            display_name="HR",
            external_id=None,
            attributes={},
            members=[str(user.id)],
        )
        directory.delete_group(s, group)
        assert usable(s, key(s, user)) == []
        assert s.get(DirectoryUser, user.id) is not None


def test_dataset_assigned_to_a_matching_dataset_group_reaches_members(runtime: Runtime) -> None:
    """Dataset created / assigned into a matching dataset group → members gain it."""
    with runtime.db.write() as s:
        acct = f.account(s)
        dgroup = f.dataset_group(s, acct, "HR")
        user = new_user(s, runtime, acct, "dana@x.io")
        directory.create_group(
            s,
            account_id=acct,
            display_name="HR",
            external_id=None,
            attributes={},
            members=[str(user.id)],
        )
        f.dataset(s, acct, "Fresh", runtime.master)
        groups.add_datasets(s, dgroup, ["Fresh"], actor=ACTOR)
        assert usable(s, key(s, user)) == ["Fresh"]
        catalog.delete_dataset(s, catalog.find_dataset(s, acct, "Fresh"), actor=ACTOR)
        assert usable(s, key(s, user)) == []


def test_unknown_member_ids_apply_nothing(runtime: Runtime) -> None:
    """One unknown id fails the whole change, naming it; known ids are not added either."""
    with runtime.db.write() as s:
        acct = f.account(s)
        user = new_user(s, runtime, acct, "dana@x.io")
        stranger = str(uuid.uuid4())
        with pytest.raises(InvalidInput, match=stranger):
            directory.resolve_members(s, acct, [str(user.id), stranger], ignore_group_ids=True)
        with pytest.raises(InvalidInput, match="not-an-id"):
            directory.resolve_members(s, acct, ["not-an-id"], ignore_group_ids=True)


def test_group_member_ids_are_accepted_and_ignored_where_the_provider_sends_them(
    runtime: Runtime,
) -> None:
    """Entra adds nested groups as members: accepted, not flattened, no access effect. A
    provider that lists no groups as members gets a group id refused like any unknown id."""
    assert PROVIDER.nested_groups_as_members
    with runtime.db.write() as s:
        acct = f.account(s)
        nested = directory.create_group(
            s, account_id=acct, display_name="Nested", external_id=None, attributes={}
        )
        assert directory.resolve_members(s, acct, [str(nested.id)], ignore_group_ids=True) == []
        with pytest.raises(InvalidInput, match=str(nested.id)):
            directory.resolve_members(s, acct, [str(nested.id)], ignore_group_ids=False)


def test_members_of_another_account_are_unknown(runtime: Runtime) -> None:
    """A user id from account B cannot join account A's group."""
    with runtime.db.write() as s:
        mine, theirs = f.account(s, "A"), f.account(s, "B")
        outsider = new_user(s, runtime, theirs, "eve@x.io")
        with pytest.raises(InvalidInput, match=str(outsider.id)):
            directory.resolve_members(s, mine, [str(outsider.id)], ignore_group_ids=True)


def test_user_name_is_unique_per_account_case_insensitively(runtime: Runtime) -> None:
    """'Dana@X.io' collides with 'dana@x.io' in one account, not across accounts."""
    with runtime.db.write() as s:
        acct, other = f.account(s, "A"), f.account(s, "B")
        new_user(s, runtime, acct, "dana@x.io")
        with pytest.raises(Conflict, match="already exists"):
            new_user(s, runtime, acct, "Dana@X.io")
        new_user(s, runtime, other, "Dana@X.io")


def test_group_display_name_is_unique_per_account(runtime: Runtime) -> None:
    """Exact displayName collides (409); a different spelling is allowed."""
    with runtime.db.write() as s:
        acct = f.account(s)
        directory.create_group(
            s, account_id=acct, display_name="HR", external_id=None, attributes={}
        )
        with pytest.raises(Conflict):
            directory.create_group(
                s, account_id=acct, display_name="HR", external_id=None, attributes={}
            )
        directory.create_group(
            s, account_id=acct, display_name="hr", external_id=None, attributes={}
        )


def test_auto_provisioned_keys_refuse_hand_edits(runtime: Runtime) -> None:
    """Rename, enable/disable, grants, default dataset and delete all refuse with 409."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "Notes", runtime.master, template="text")
        k = key(s, new_user(s, runtime, acct, "dana@x.io"))
        attempts: list[Callable[[], object]] = [
            lambda: apikeys.rename(s, k, "other", actor=ACTOR),
            lambda: apikeys.set_enabled(s, k, False, actor=ACTOR),
            lambda: apikeys.grant(s, k, datasets=["Notes"], actor=ACTOR),
            lambda: apikeys.revoke(s, k, datasets=["Notes"], actor=ACTOR),
            lambda: apikeys.set_default_dataset(s, k, "Notes", actor=ACTOR),
            lambda: apikeys.delete_api_key(s, k, actor=ACTOR),
        ]
        for attempt in attempts:
            with pytest.raises(FollowsDirectory, match="follows the directory"):
                attempt()
        assert (k.name, k.enabled) == ("dana@x.io", True)


def test_membership_change_in_a_large_group_writes_one_row(runtime: Runtime) -> None:
    """Adding a member to a 2,000-member group inserts exactly one row."""
    with runtime.db.write() as s:
        acct = f.account(s)
        group = directory.create_group(
            s, account_id=acct, display_name="Big", external_id=None, attributes={}
        )
        users = [
            DirectoryUser(account_id=acct, user_name=f"u{i}", user_name_key=f"u{i}")
            for i in range(2001)
        ]
        s.add_all(users)
        s.flush()
        directory.add_members(s, group, [u.id for u in users[:2000]])
        before = s.scalar(select(func.count()).select_from(DirectoryMembership))
        assert before is not None
        assert directory.add_members(s, group, [users[2000].id]) == 1
        assert s.scalar(select(func.count()).select_from(DirectoryMembership)) == before + 1
