"""The access rule (keystead.access) on real SQLite and PostgreSQL: every path by which a
key reaches a dataset, and every change that must move access at once."""

from __future__ import annotations

import uuid

from sqlalchemy import delete
from sqlalchemy.orm import Session

from keystead import access
from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.catalog import groups
from keystead.runtime import Runtime
from keystead.storage.models import ApiKey, DirectoryGroup, DirectoryMembership
from tests import factories as f
from tests.factories import ACTOR


def usable(session: Session, key: ApiKey) -> list[str]:
    return [d.name for d in access.usable_datasets(session, key.id)]


def vias(session: Session, key: ApiKey, dataset_name: str, account_id: uuid.UUID) -> list[str]:
    dataset = catalog.find_dataset(session, account_id, dataset_name)
    return [r.via for r in access.explain(session, key.id, dataset.id)]


def may(session: Session, key: ApiKey, dataset_name: str, account_id: uuid.UUID) -> bool:
    dataset = catalog.find_dataset(session, account_id, dataset_name)
    return access.may_use(session, key.id, dataset.id)


def test_a_new_key_without_grants_may_use_nothing(runtime: Runtime) -> None:
    """No grant, no group, no directory: no access."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        key = f.manual_key(s, acct, runtime.master).key
        assert usable(s, key) == []
        assert not may(s, key, "SSN", acct)
        assert access.explain(s, key.id) == []


def test_direct_grant_gives_access_to_exactly_that_dataset(runtime: Runtime) -> None:
    """A direct grant reaches the granted dataset and no other."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Cards", runtime.master, template="digits")
        key = f.manual_key(s, acct, runtime.master, datasets=("SSN",)).key
        assert usable(s, key) == ["SSN"]
        assert may(s, key, "SSN", acct)
        assert not may(s, key, "Cards", acct)
        assert vias(s, key, "SSN", acct) == ["direct"]


def test_grant_of_a_dataset_group_gives_access_to_its_datasets(runtime: Runtime) -> None:
    """Granting a dataset group reaches every dataset in it."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Notes", runtime.master, template="text")
        f.dataset(s, acct, "Other", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN", "Notes")
        key = f.manual_key(s, acct, runtime.master, dataset_groups=("HR",)).key
        assert usable(s, key) == ["Notes", "SSN"]
        assert not may(s, key, "Other", acct)
        reasons = access.explain(s, key.id)
        assert {(r.via, r.dataset_group) for r in reasons} == {("dataset_group", "HR")}


def test_dataset_added_to_a_granted_group_is_reachable_at_once(runtime: Runtime) -> None:
    """Adding a dataset to a granted group gives access without touching the key."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Late", runtime.master)
        group = f.dataset_group(s, acct, "HR", "SSN")
        key = f.manual_key(s, acct, runtime.master, dataset_groups=("HR",)).key
        assert not may(s, key, "Late", acct)
        groups.add_datasets(s, group, ["Late"], actor=ACTOR)
        assert may(s, key, "Late", acct)
        assert usable(s, key) == ["Late", "SSN"]


def test_dataset_removed_from_a_granted_group_is_unreachable_at_once(runtime: Runtime) -> None:
    """Removing a dataset from a granted group takes access away and keeps the dataset."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Notes", runtime.master, template="text")
        group = f.dataset_group(s, acct, "HR", "SSN", "Notes")
        key = f.manual_key(s, acct, runtime.master, dataset_groups=("HR",)).key
        groups.remove_datasets(s, group, ["SSN"], actor=ACTOR)
        assert usable(s, key) == ["Notes"]
        assert catalog.find_dataset(s, acct, "SSN").name == "SSN"


def test_direct_and_group_grants_of_one_dataset_both_explain_it(runtime: Runtime) -> None:
    """Two paths to one dataset are both reported; losing one keeps access."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        group = f.dataset_group(s, acct, "HR", "SSN")
        key = f.manual_key(s, acct, runtime.master, datasets=("SSN",), dataset_groups=("HR",)).key
        assert vias(s, key, "SSN", acct) == ["direct", "dataset_group"]
        assert usable(s, key) == ["SSN"]
        groups.remove_datasets(s, group, ["SSN"], actor=ACTOR)
        assert vias(s, key, "SSN", acct) == ["direct"]
        apikeys.revoke(s, key, datasets=["SSN"], actor=ACTOR)
        assert not may(s, key, "SSN", acct)


def test_deleted_dataset_leaves_every_group_and_grant(runtime: Runtime) -> None:
    """Deleting a dataset removes it from groups and grants; the groups remain."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Notes", runtime.master, template="text")
        group = f.dataset_group(s, acct, "HR", "SSN", "Notes")
        direct = f.manual_key(s, acct, runtime.master, "direct", datasets=("SSN",)).key
        via_group = f.manual_key(s, acct, runtime.master, "grouped", dataset_groups=("HR",)).key
        detail = catalog.delete_dataset(s, catalog.find_dataset(s, acct, "SSN"), actor=ACTOR)
        assert detail == {"removed_from_dataset_groups": ["HR"], "removed_grants": 1}
        assert usable(s, direct) == []
        assert usable(s, via_group) == ["Notes"]
        assert [d.name for d in groups.group_datasets(s, group)] == ["Notes"]
        assert apikeys.grants_of(s, direct).datasets == []


def test_renaming_a_granted_dataset_group_keeps_its_manual_grants(runtime: Runtime) -> None:
    """A manual grant names the group itself, so renaming the group keeps access."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        group = f.dataset_group(s, acct, "HR", "SSN")
        key = f.manual_key(s, acct, runtime.master, dataset_groups=("HR",)).key
        groups.rename_group(s, group, "People Ops", actor=ACTOR)
        assert usable(s, key) == ["SSN"]
        assert access.explain(s, key.id)[0].dataset_group == "People Ops"


def test_deleting_a_granted_dataset_group_removes_access_but_not_datasets(
    runtime: Runtime,
) -> None:
    """Deleting a dataset group drops access through it; its datasets stay."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        group = f.dataset_group(s, acct, "HR", "SSN")
        key = f.manual_key(s, acct, runtime.master, dataset_groups=("HR",)).key
        groups.delete_group(s, group, actor=ACTOR)
        assert usable(s, key) == []
        assert [d.name for d in catalog.list_datasets(s, acct)] == ["SSN"]


def test_directory_member_reaches_the_matching_dataset_group(runtime: Runtime) -> None:
    """A user in directory group X reaches the datasets of dataset group X."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Notes", runtime.master, template="text")
        f.dataset_group(s, acct, "HR Team", "SSN", "Notes")
        user, key = f.directory_user(s, acct, "alice@example.com")
        group = f.directory_group(s, acct, "HR Team")
        assert usable(s, key) == []
        f.member(s, group, user)
        assert usable(s, key) == ["Notes", "SSN"]
        (reason,) = access.explain(s, key.id, catalog.find_dataset(s, acct, "SSN").id)
        assert (reason.via, reason.directory_group, reason.dataset_group) == (
            "directory",
            "HR Team",
            "HR Team",
        )


def test_directory_match_ignores_case_and_surrounding_space(runtime: Runtime) -> None:
    """' hr team ' in the directory matches dataset group 'HR Team'."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR Team", "SSN")
        user, key = f.directory_user(s, acct, "alice@example.com")
        f.member(s, f.directory_group(s, acct, "  hr TEAM "), user)
        assert usable(s, key) == ["SSN"]


def test_directory_match_needs_the_whole_name(runtime: Runtime) -> None:
    """'HR' does not match 'HR Team', nor 'HR Team 2'."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR Team", "SSN")
        user, key = f.directory_user(s, acct, "alice@example.com")
        f.member(s, f.directory_group(s, acct, "HR"), user)
        f.member(s, f.directory_group(s, acct, "HR Team 2"), user)
        assert usable(s, key) == []


def test_removed_member_loses_directory_access(runtime: Runtime) -> None:
    """Removing the membership takes access away at once."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN")
        user, key = f.directory_user(s, acct, "alice@example.com")
        group = f.directory_group(s, acct, "HR")
        f.member(s, group, user)
        s.execute(delete(DirectoryMembership).where(DirectoryMembership.user_id == user.id))
        assert usable(s, key) == []


def test_renaming_the_dataset_group_moves_directory_access(runtime: Runtime) -> None:
    """Directory access follows the dataset group's name, not its id."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        dgroup = f.dataset_group(s, acct, "HR", "SSN")
        alice, alice_key = f.directory_user(s, acct, "alice@example.com")
        bob, bob_key = f.directory_user(s, acct, "bob@example.com")
        f.member(s, f.directory_group(s, acct, "HR"), alice)
        f.member(s, f.directory_group(s, acct, "Finance"), bob)
        assert (usable(s, alice_key), usable(s, bob_key)) == (["SSN"], [])
        groups.rename_group(s, dgroup, "finance", actor=ACTOR)
        assert (usable(s, alice_key), usable(s, bob_key)) == ([], ["SSN"])


def test_renaming_the_directory_group_moves_access(runtime: Runtime) -> None:
    """A directory group renamed away from the match loses it; renamed onto one gains it."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset(s, acct, "Cards", runtime.master, template="digits")
        f.dataset_group(s, acct, "HR", "SSN")
        f.dataset_group(s, acct, "Finance", "Cards")
        user, key = f.directory_user(s, acct, "alice@example.com")
        group = f.directory_group(s, acct, "HR")
        f.member(s, group, user)
        f.rename_directory_group(s, group, "Finance")
        assert usable(s, key) == ["Cards"]
        f.rename_directory_group(s, group, "Nothing matches")
        assert usable(s, key) == []


def test_deleting_the_directory_group_removes_access(runtime: Runtime) -> None:
    """All access through a deleted directory group goes with it."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN")
        user, key = f.directory_user(s, acct, "alice@example.com")
        group = f.directory_group(s, acct, "HR")
        f.member(s, group, user)
        s.execute(delete(DirectoryGroup).where(DirectoryGroup.id == group.id))
        assert usable(s, key) == []


def test_member_of_two_matching_groups_keeps_access_until_removed_from_both(
    runtime: Runtime,
) -> None:
    """'HR' and 'hr ' both match dataset group HR: one membership is enough."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN")
        user, key = f.directory_user(s, acct, "alice@example.com")
        first, second = f.directory_group(s, acct, "HR"), f.directory_group(s, acct, "hr ")
        f.member(s, first, user)
        f.member(s, second, user)
        assert len(access.explain(s, key.id)) == 2
        s.execute(delete(DirectoryMembership).where(DirectoryMembership.group_id == first.id))
        assert usable(s, key) == ["SSN"]
        s.execute(delete(DirectoryMembership).where(DirectoryMembership.group_id == second.id))
        assert usable(s, key) == []


def test_two_dataset_groups_with_one_dataset_keep_access_until_both_go(runtime: Runtime) -> None:
    """A dataset reachable through two matching groups stays reachable through either."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        hr = f.dataset_group(s, acct, "HR", "SSN")
        f.dataset_group(s, acct, "Payroll", "SSN")
        user, key = f.directory_user(s, acct, "alice@example.com")
        f.member(s, f.directory_group(s, acct, "HR"), user)
        payroll = f.directory_group(s, acct, "Payroll")
        f.member(s, payroll, user)
        groups.remove_datasets(s, hr, ["SSN"], actor=ACTOR)
        assert usable(s, key) == ["SSN"]
        s.execute(delete(DirectoryMembership).where(DirectoryMembership.group_id == payroll.id))
        assert usable(s, key) == []


def test_dataset_created_into_a_matching_group_reaches_its_members(runtime: Runtime) -> None:
    """A dataset created and put in a matching dataset group is reachable at once."""
    with runtime.db.write() as s:
        acct = f.account(s)
        dgroup = f.dataset_group(s, acct, "HR")
        user, key = f.directory_user(s, acct, "alice@example.com")
        f.member(s, f.directory_group(s, acct, "HR"), user)
        f.dataset(s, acct, "Fresh", runtime.master)
        assert usable(s, key) == []
        groups.add_datasets(s, dgroup, ["Fresh"], actor=ACTOR)
        assert usable(s, key) == ["Fresh"]


def test_directory_path_applies_only_to_auto_provisioned_keys(runtime: Runtime) -> None:
    """A manual key linked to nothing gains no access from directory groups."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN")
        user, auto_key = f.directory_user(s, acct, "alice@example.com")
        f.member(s, f.directory_group(s, acct, "HR"), user)
        auto_key.auto_provisioned = False  # a key that no longer follows the directory
        s.flush()
        assert usable(s, auto_key) == []


def test_other_accounts_groups_never_match(runtime: Runtime) -> None:
    """Names match only within one account."""
    with runtime.db.write() as s:
        mine, theirs = f.account(s, "Mine"), f.account(s, "Theirs")
        f.dataset(s, mine, "SSN", runtime.master)
        f.dataset_group(s, mine, "HR", "SSN")
        f.dataset(s, theirs, "SSN", runtime.master)
        f.dataset_group(s, theirs, "HR", "SSN")
        user, key = f.directory_user(s, theirs, "eve@example.com")
        f.member(s, f.directory_group(s, theirs, "HR"), user)
        reachable = access.usable_datasets(s, key.id)
        assert [d.account_id for d in reachable] == [theirs]
        mine_ssn = catalog.find_dataset(s, mine, "SSN")
        assert not access.may_use(s, key.id, mine_ssn.id)


def test_explain_lists_every_reason_in_a_stable_order(runtime: Runtime) -> None:
    """direct, then dataset groups, then directory groups."""
    with runtime.db.write() as s:
        acct = f.account(s)
        f.dataset(s, acct, "SSN", runtime.master)
        f.dataset_group(s, acct, "HR", "SSN")
        user, key = f.directory_user(s, acct, "alice@example.com")
        f.member(s, f.directory_group(s, acct, "HR"), user)
        dataset_id = catalog.find_dataset(s, acct, "SSN").id
        reasons = access.explain(s, key.id, dataset_id)
        assert [r.describe() for r in reasons] == [
            "member of directory group 'HR', which matches dataset group 'HR', "
            "which contains the dataset"
        ]
