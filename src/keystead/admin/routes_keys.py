"""API keys, their grants, and the access rule's answers (access list, explain)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from keystead.admin import views
from keystead.admin.auth import Reader, RuntimeDep, Writer
from keystead.admin.params import PageLimit, PageOffset, SearchText
from keystead.admin.schemas import (
    AccessOut,
    ApiKeyCreatedOut,
    ApiKeyCreateIn,
    ApiKeyListedOut,
    ApiKeyOut,
    ApiKeyUpdateIn,
    ExplainOut,
    GrantsIn,
    Page,
    SuspendIn,
)
from keystead.apikeys import service as apikeys
from keystead.catalog import datasets as catalog
from keystead.errors import InvalidInput

router = APIRouter(tags=["API keys"])


@router.get("/api-keys")
def list_keys(
    principal: Reader,
    runtime: RuntimeDep,
    *,
    q: SearchText = None,
    kind: Annotated[
        apikeys.KeyKind | None,
        Query(description="manual, auto (provisioned), enabled, disabled, suspended"),
    ] = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[ApiKeyListedOut]:
    """API keys by name, a page at a time; ``q`` matches part of the name (case-insensitive)
    or a whole access key id."""
    search = apikeys.KeySearch(q, kind, limit, offset)
    with runtime.db.read() as session:
        return views.api_keys(session, principal.account_id, search)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreateIn, principal: Writer, runtime: RuntimeDep) -> ApiKeyCreatedOut:
    with runtime.db.write() as session:
        created = apikeys.create_api_key(
            session,
            account_id=principal.account_id,
            name=body.name,
            datasets=body.datasets,
            dataset_groups=body.dataset_groups,
            master=runtime.master,
            actor=principal.actor,
        )
        return views.api_key_created(session, created, runtime.settings.effective_public_url)


@router.get("/api-keys/{ref}")
def get_key(ref: str, principal: Reader, runtime: RuntimeDep) -> ApiKeyOut:
    with runtime.db.read() as session:
        return views.api_key(session, apikeys.find_api_key(session, principal.account_id, ref))


@router.patch("/api-keys/{ref}")
def update_key(ref: str, body: ApiKeyUpdateIn, principal: Writer, runtime: RuntimeDep) -> ApiKeyOut:
    if body.name is None and body.enabled is None and body.default_unstructured_dataset is None:
        raise InvalidInput(
            "nothing to change: give 'name', 'enabled' or 'default_unstructured_dataset'"
        )
    with runtime.db.write() as session:
        key = apikeys.find_api_key(session, principal.account_id, ref)
        if body.name is not None:
            apikeys.rename(session, key, body.name, actor=principal.actor)
        if body.enabled is not None:
            apikeys.set_enabled(session, key, body.enabled, actor=principal.actor)
        if body.default_unstructured_dataset is not None:
            apikeys.set_default_dataset(
                session, key, body.default_unstructured_dataset or None, actor=principal.actor
            )
        return views.api_key(session, key)


@router.delete("/api-keys/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(ref: str, principal: Writer, runtime: RuntimeDep) -> Response:
    with runtime.db.write() as session:
        key = apikeys.find_api_key(session, principal.account_id, ref)
        apikeys.delete_api_key(session, key, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _change_key(
    ref: str, principal: Writer, runtime: RuntimeDep, change: Callable[..., object]
) -> ApiKeyOut:
    """Find the key, ``change`` it (called with the session, the key and the admin as
    ``actor``) and answer it as it now is, in one transaction."""
    with runtime.db.write() as session:
        key = apikeys.find_api_key(session, principal.account_id, ref)
        change(session, key, actor=principal.actor)
        return views.api_key(session, key)


def _change_grants(
    ref: str,
    body: GrantsIn,
    principal: Writer,
    runtime: RuntimeDep,
    change: Callable[..., apikeys.Grants],
) -> ApiKeyOut:
    if not body.datasets and not body.dataset_groups:
        raise InvalidInput("name at least one dataset or dataset group")
    return _change_key(ref, principal, runtime, partial(change, **body.model_dump()))


@router.post("/api-keys/{ref}/grants")
def grant(ref: str, body: GrantsIn, principal: Writer, runtime: RuntimeDep) -> ApiKeyOut:
    return _change_grants(ref, body, principal, runtime, apikeys.grant)


@router.post("/api-keys/{ref}/revoke")
def revoke(ref: str, body: GrantsIn, principal: Writer, runtime: RuntimeDep) -> ApiKeyOut:
    return _change_grants(ref, body, principal, runtime, apikeys.revoke)


@router.post("/api-keys/{ref}/suspend")
def suspend(
    ref: str, principal: Writer, runtime: RuntimeDep, body: SuspendIn | None = None
) -> ApiKeyOut:
    """Emergency stop: every endpoint refuses the key from its next request. Allowed on
    auto-provisioned keys (directory sync never clears it)."""
    stop = partial(apikeys.suspend, reason=body.reason if body else None)
    return _change_key(ref, principal, runtime, stop)


@router.post("/api-keys/{ref}/resume")
def resume(ref: str, principal: Writer, runtime: RuntimeDep) -> ApiKeyOut:
    """Lift a suspension."""
    return _change_key(ref, principal, runtime, apikeys.resume)


@router.get("/api-keys/{ref}/access")
def key_access(ref: str, principal: Reader, runtime: RuntimeDep) -> AccessOut:
    with runtime.db.read() as session:
        return views.access_of(session, apikeys.find_api_key(session, principal.account_id, ref))


@router.get("/api-keys/{ref}/explain")
def explain(
    ref: str,
    principal: Reader,
    runtime: RuntimeDep,
    dataset: Annotated[str, Query(description="Dataset name or id")],
) -> ExplainOut:
    with runtime.db.read() as session:
        key = apikeys.find_api_key(session, principal.account_id, ref)
        target = catalog.find_dataset(session, principal.account_id, dataset)
        return views.explain(session, key, target)
