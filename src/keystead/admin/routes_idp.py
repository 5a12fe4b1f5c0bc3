"""The account's IDP integration: enable/disable, the SCIM secret token, the sign-in
settings and their "test configuration" check."""

from __future__ import annotations

from fastapi import APIRouter

from keystead.accounts import service as accounts
from keystead.admin.auth import Reader, RuntimeDep, Writer
from keystead.admin.schemas import IdpOut, IdpStatusOut, IdpTestOut, IdpUpdateIn, ScimTokenOut
from keystead.admin.views import idp_view, scim_url
from keystead.idp import service as idp
from keystead.idp import status as idp_status

router = APIRouter(tags=["IDP integration"])


@router.get("/idp")
def get_idp(principal: Reader, runtime: RuntimeDep) -> IdpOut:
    with runtime.db.read() as session:
        return idp_view(runtime.settings, idp.settings_of(session, principal.account_id))


@router.patch("/idp")
def update_idp(body: IdpUpdateIn, principal: Writer, runtime: RuntimeDep) -> IdpOut:
    """Change what the body names: ``enabled`` and the sign-in settings (shape-checked)."""
    with runtime.db.write() as session:
        account = accounts.get_account(session, principal.account_id)
        settings = idp.configure(
            session,
            account,
            body.sign_in_changes(),
            actor=principal.actor,
            allow_private=runtime.settings.idp_allow_private_addresses,
        )
        if body.enabled is not None:
            settings = idp.set_enabled(
                session, account, body.enabled, actor=principal.actor, master=runtime.master
            )
        return idp_view(runtime.settings, settings)


@router.post("/idp/scim-token")
def rotate_scim_token(principal: Writer, runtime: RuntimeDep) -> ScimTokenOut:
    with runtime.db.write() as session:
        account = accounts.get_account(session, principal.account_id)
        new = idp.rotate_scim_token(session, account, actor=principal.actor)
    return ScimTokenOut(
        scim_url=scim_url(runtime.settings.effective_public_url, str(principal.account_id)),
        token=new.token,
    )


@router.post("/idp/test")
def check_configuration(principal: Reader, runtime: RuntimeDep) -> IdpTestOut:
    """Fetch the discovery document and signing keys now and report every problem found.
    The outcome is remembered for the setup guide (``GET /idp/status``)."""
    with runtime.db.read() as session:
        settings = idp.settings_of(session, principal.account_id)
    report = idp.check_configuration(settings, fetch=runtime.outbound)
    with runtime.db.write() as session:
        idp_status.record_test(session, principal.account_id, report.ok)
    return IdpTestOut.of(report)


@router.get("/idp/status")
def integration_status(principal: Reader, runtime: RuntimeDep) -> IdpStatusOut:
    """What Keystead has observed: the last SCIM request, users and groups synced,
    failures and refused sign-ins in the last 24 hours, and the setup guide's ticks."""
    with runtime.db.read() as session:
        return IdpStatusOut.of(idp_status.of(session, principal.account_id))
