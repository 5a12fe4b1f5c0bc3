"""Datasets, their key versions, templates and dataset groups."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from fastapi import APIRouter, Response, status

from keystead.admin import views
from keystead.admin.auth import Reader, RuntimeDep, Writer
from keystead.admin.schemas import (
    DatasetCreateIn,
    DatasetDeletedOut,
    DatasetDetailOut,
    DatasetGroupCreateIn,
    DatasetGroupDetailOut,
    DatasetGroupOut,
    DatasetGroupUpdateIn,
    DatasetOut,
    DatasetRefsIn,
    PinIn,
    TemplateOut,
)
from keystead.catalog import datasets as catalog
from keystead.catalog import groups

router = APIRouter()


@router.get("/dataset-templates", tags=["datasets"])
def list_templates(principal: Reader) -> list[TemplateOut]:
    return views.templates()


@router.get("/datasets", tags=["datasets"])
def list_datasets(principal: Reader, runtime: RuntimeDep) -> list[DatasetOut]:
    with runtime.db.read() as session:
        return [DatasetOut.of(d) for d in catalog.list_datasets(session, principal.account_id)]


@router.post("/datasets", status_code=status.HTTP_201_CREATED, tags=["datasets"])
def create_dataset(
    body: DatasetCreateIn, principal: Writer, runtime: RuntimeDep
) -> DatasetDetailOut:
    """Create a dataset (and its first key), in the named dataset groups at once."""
    spec = catalog.DatasetSpec(body.name, body.type, body.template, body.definition)
    with runtime.db.write() as session:
        targets = [groups.find_group(session, principal.account_id, g) for g in body.dataset_groups]
        dataset = catalog.create_dataset(
            session,
            account_id=principal.account_id,
            spec=spec,
            master=runtime.master,
            actor=principal.actor,
        )
        for group in targets:
            groups.add_datasets(session, group, [str(dataset.id)], actor=principal.actor)
        return views.dataset_detail(session, dataset)


@router.get("/datasets/{ref}", tags=["datasets"])
def get_dataset(ref: str, principal: Reader, runtime: RuntimeDep) -> DatasetDetailOut:
    with runtime.db.read() as session:
        dataset = catalog.find_dataset(session, principal.account_id, ref)
        return views.dataset_detail(session, dataset)


@router.post("/datasets/{ref}/rotate-key", tags=["datasets"])
def rotate_key(ref: str, principal: Writer, runtime: RuntimeDep) -> DatasetDetailOut:
    with runtime.db.write() as session:
        dataset = catalog.find_dataset(session, principal.account_id, ref)
        catalog.rotate_key(session, dataset, master=runtime.master, actor=principal.actor)
        return views.dataset_detail(session, dataset)


@router.delete("/datasets/{ref}", tags=["datasets"])
def delete_dataset(ref: str, principal: Writer, runtime: RuntimeDep) -> DatasetDeletedOut:
    with runtime.db.write() as session:
        dataset = catalog.find_dataset(session, principal.account_id, ref)
        detail = catalog.delete_dataset(session, dataset, actor=principal.actor)
        return DatasetDeletedOut(deleted=dataset.name, **detail)


@router.get("/dataset-groups", tags=["dataset groups"])
def list_groups(principal: Reader, runtime: RuntimeDep) -> list[DatasetGroupOut]:
    with runtime.db.read() as session:
        return views.dataset_group_list(session, principal.account_id)


@router.post("/dataset-groups", status_code=status.HTTP_201_CREATED, tags=["dataset groups"])
def create_group(
    body: DatasetGroupCreateIn, principal: Writer, runtime: RuntimeDep
) -> DatasetGroupDetailOut:
    with runtime.db.write() as session:
        group = groups.create_group(
            session,
            account_id=principal.account_id,
            name=body.name,
            datasets=body.datasets,
            actor=principal.actor,
        )
        return views.dataset_group(session, group)


@router.get("/dataset-groups/{ref}", tags=["dataset groups"])
def get_group(ref: str, principal: Reader, runtime: RuntimeDep) -> DatasetGroupDetailOut:
    with runtime.db.read() as session:
        return views.dataset_group(session, groups.find_group(session, principal.account_id, ref))


def _change_group(
    ref: str, principal: Writer, runtime: RuntimeDep, change: Callable[..., object]
) -> DatasetGroupDetailOut:
    """Find the dataset group, ``change`` it (called with the session, the group and the
    admin as ``actor``) and answer it as it now is, in one transaction."""
    with runtime.db.write() as session:
        group = groups.find_group(session, principal.account_id, ref)
        change(session, group, actor=principal.actor)
        return views.dataset_group(session, group)


@router.patch("/dataset-groups/{ref}", tags=["dataset groups"])
def rename_group(
    ref: str, body: DatasetGroupUpdateIn, principal: Writer, runtime: RuntimeDep
) -> DatasetGroupDetailOut:
    return _change_group(ref, principal, runtime, partial(groups.rename_group, new_name=body.name))


@router.post("/dataset-groups/{ref}/datasets", tags=["dataset groups"])
def add_datasets(
    ref: str, body: DatasetRefsIn, principal: Writer, runtime: RuntimeDep
) -> DatasetGroupDetailOut:
    return _change_group(ref, principal, runtime, partial(groups.add_datasets, refs=body.datasets))


@router.delete("/dataset-groups/{ref}/datasets/{dataset}", tags=["dataset groups"])
def remove_dataset(
    ref: str, dataset: str, principal: Writer, runtime: RuntimeDep
) -> DatasetGroupDetailOut:
    return _change_group(ref, principal, runtime, partial(groups.remove_datasets, refs=[dataset]))


@router.put("/dataset-groups/{ref}/pin", tags=["dataset groups"])
def pin_group(
    ref: str, body: PinIn, principal: Writer, runtime: RuntimeDep
) -> DatasetGroupDetailOut:
    """Pin the dataset group to one of the directory groups named like it (by id): from
    then on only that group (same id and externalId) gives access through it, so a
    same-named group made later in the directory gives nothing."""
    pin = partial(groups.pin_group, directory_group_id=body.directory_group)
    return _change_group(ref, principal, runtime, pin)


@router.delete("/dataset-groups/{ref}/pin", tags=["dataset groups"])
def unpin_group(ref: str, principal: Writer, runtime: RuntimeDep) -> DatasetGroupDetailOut:
    """Back to matching by name: every directory group named like it gives access."""
    return _change_group(ref, principal, runtime, groups.unpin_group)


@router.delete(
    "/dataset-groups/{ref}", status_code=status.HTTP_204_NO_CONTENT, tags=["dataset groups"]
)
def delete_group(ref: str, principal: Writer, runtime: RuntimeDep) -> Response:
    with runtime.db.write() as session:
        group = groups.find_group(session, principal.account_id, ref)
        groups.delete_group(session, group, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
