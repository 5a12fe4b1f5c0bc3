"""The access rule against a model: for random worlds of grants, dataset groups, directory
groups and memberships, the database's answer equals a plain-Python reading of the rule."""

from __future__ import annotations

from typing import TypedDict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from keystead import access
from keystead.names import name_key
from keystead.runtime import Runtime
from keystead.storage.models import (
    Account,
    ApiKey,
    Dataset,
    DatasetGrant,
    DatasetGroup,
    DatasetGroupGrant,
    DatasetGroupMember,
    DirectoryGroup,
    DirectoryMembership,
    DirectoryUser,
)
from tests.conftest import empty_tables

DATASETS = [f"d{i}" for i in range(5)]
GROUP_NAMES = ["HR", "Finance", "Ops"]
# Directory names include spelling variants that must match, and near misses that must not.
DIRECTORY_NAMES = ["HR", " hr", "HR ", "finance", "FINANCE", "Ops", "HR Team", "Opss"]
KEYS = 3


class World(TypedDict):
    """One drawn world (the strategy ``world`` below)."""

    group_contents: list[frozenset[str]]
    direct: list[frozenset[str]]
    group_grants: list[frozenset[str]]
    directory_groups: frozenset[str]
    auto: list[bool]
    memberships: list[frozenset[str]]


subsets = st.frozensets
world = st.fixed_dictionaries(
    {
        "group_contents": st.lists(
            subsets(st.sampled_from(DATASETS)), min_size=len(GROUP_NAMES), max_size=3
        ),
        "direct": st.lists(subsets(st.sampled_from(DATASETS)), min_size=KEYS, max_size=KEYS),
        "group_grants": st.lists(
            subsets(st.sampled_from(GROUP_NAMES)), min_size=KEYS, max_size=KEYS
        ),
        "directory_groups": subsets(st.sampled_from(DIRECTORY_NAMES)),
        "auto": st.lists(st.booleans(), min_size=KEYS, max_size=KEYS),
        "memberships": st.lists(
            subsets(st.sampled_from(DIRECTORY_NAMES)), min_size=KEYS, max_size=KEYS
        ),
    }
)


def expected(w: World, k: int) -> set[str]:
    """The rule as the product brief states it, computed without a database."""
    contents = dict(zip(GROUP_NAMES, w["group_contents"], strict=True))
    result = set(w["direct"][k])
    for group in w["group_grants"][k]:
        result |= contents[group]
    if w["auto"][k]:
        for directory_group in w["memberships"][k] & w["directory_groups"]:
            for dataset_group, datasets in contents.items():
                if name_key(directory_group) == name_key(dataset_group):
                    result |= datasets
    return result


def build(session: Session, w: World) -> list[ApiKey]:
    account = Account(name="model", plan="enterprise")
    session.add(account)
    session.flush()
    ds = {
        n: Dataset(account_id=account.id, name=n, name_key=n, type="unstructured") for n in DATASETS
    }
    dg = {n: DatasetGroup(account_id=account.id, name=n, name_key=name_key(n)) for n in GROUP_NAMES}
    dirs = {
        n: DirectoryGroup(account_id=account.id, display_name=n, display_name_key=name_key(n))
        for n in w["directory_groups"]
    }
    session.add_all([*ds.values(), *dg.values(), *dirs.values()])
    session.flush()
    for name, contents in zip(GROUP_NAMES, w["group_contents"], strict=True):
        session.add_all(
            DatasetGroupMember(group_id=dg[name].id, dataset_id=ds[d].id) for d in contents
        )
    keys = []
    for k in range(KEYS):
        user = DirectoryUser(account_id=account.id, user_name=f"u{k}", user_name_key=f"u{k}")
        session.add(user)
        session.flush()
        key = ApiKey(
            account_id=account.id,
            access_key_id=f"key{k}",
            name=f"key{k}",
            auto_provisioned=w["auto"][k],
            directory_user_id=user.id,
            wrapped_signing_key=b"-",
        )
        session.add(key)
        session.flush()
        keys.append(key)
        session.add_all(
            DatasetGrant(api_key_id=key.id, dataset_id=ds[d].id) for d in w["direct"][k]
        )
        session.add_all(
            DatasetGroupGrant(api_key_id=key.id, dataset_group_id=dg[g].id)
            for g in w["group_grants"][k]
        )
        session.add_all(
            DirectoryMembership(group_id=dirs[g].id, user_id=user.id)
            for g in w["memberships"][k]
            if g in dirs
        )
    session.flush()
    return keys


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(w=world)
def test_access_rule_matches_the_model(session_runtime: Runtime, w: World) -> None:
    """usable_datasets, may_use and explain agree with the brief's rule in every world."""
    empty_tables(session_runtime)
    with session_runtime.db.write() as session:
        keys = build(session, w)
        datasets = {d.name: d.id for d in session.scalars(select(Dataset))}
        for k, key in enumerate(keys):
            want = expected(w, k)
            assert {d.name for d in access.usable_datasets(session, key.id)} == want
            for name, dataset_id in datasets.items():
                assert access.may_use(session, key.id, dataset_id) == (name in want)
            explained = {r.dataset_id for r in access.explain(session, key.id)}
            assert explained == {datasets[n] for n in want}
