"""The account's IDP integration: enable/disable and the SCIM secret token."""

from __future__ import annotations

from fastapi import APIRouter, Request

from keystead.accounts import service as accounts
from keystead.admin.auth import Reader, RuntimeDep, Writer
from keystead.admin.schemas import IdpOut, IdpUpdateIn, ScimTokenOut
from keystead.idp import service as idp

router = APIRouter(tags=["IDP integration"])


def scim_url(public_url: str, customer_id: str) -> str:
    return f"{public_url}/{customer_id}/api/v3/scim"


def _view(runtime: RuntimeDep, settings: idp.IdpSettings) -> IdpOut:
    return IdpOut.of(
        settings, scim_url(runtime.settings.effective_public_url, str(settings.account_id))
    )


@router.get("/idp", response_model=IdpOut)
def get_idp(principal: Reader, runtime: RuntimeDep) -> IdpOut:
    with runtime.db.read() as session:
        return _view(runtime, idp.settings_of(session, principal.account_id))


@router.patch("/idp", response_model=IdpOut)
def update_idp(body: IdpUpdateIn, principal: Writer, runtime: RuntimeDep) -> IdpOut:
    with runtime.db.write() as session:
        account = accounts.get_account(session, principal.account_id)
        settings = idp.set_enabled(session, account, body.enabled, actor=principal.actor)
        return _view(runtime, settings)


@router.post("/idp/scim-token", response_model=ScimTokenOut)
def rotate_scim_token(request: Request, principal: Writer, runtime: RuntimeDep) -> ScimTokenOut:
    with runtime.db.write() as session:
        account = accounts.get_account(session, principal.account_id)
        new = idp.rotate_scim_token(session, account, actor=principal.actor)
    return ScimTokenOut(
        scim_url=scim_url(runtime.settings.effective_public_url, str(principal.account_id)),
        token=new.token,
    )
