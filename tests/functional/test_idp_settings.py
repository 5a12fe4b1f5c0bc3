"""IDP integration settings: enabling, and the SCIM secret token's lifecycle."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from keystead.accounts import service as accounts
from keystead.errors import Forbidden, Unauthenticated
from keystead.idp import service as idp
from keystead.runtime import Runtime
from keystead.storage.models import AuditEvent, IdpSettings
from tests import factories as f
from tests.factories import ACTOR
from tests.support.accounts import FirstAccount


def test_scim_token_is_stored_hashed_and_rotation_invalidates_the_old_one(
    runtime: Runtime,
) -> None:
    """Only a hash is stored; after rotation the old token fails and the new one passes."""
    with runtime.db.write() as s:
        account = accounts.get_account(s, f.account(s))
        first = idp.rotate_scim_token(s, account, actor=ACTOR)
        stored = s.get(IdpSettings, account.id)
        assert stored is not None
        assert first.token not in (stored.scim_token_hash, stored.scim_token_hint)
        idp.check_scim_token_hash(stored.scim_token_hash, first.token)
        second = idp.rotate_scim_token(s, account, actor=ACTOR)
        with pytest.raises(Unauthenticated):
            idp.check_scim_token_hash(stored.scim_token_hash, first.token)
        idp.check_scim_token_hash(stored.scim_token_hash, second.token)
        actions = set(s.scalars(select(AuditEvent.action)))
        assert {"idp.scim_token_created", "idp.scim_token_rotated"} <= actions


@pytest.mark.parametrize("presented", [None, "", "scim_wrong", "Bearer scim_x"])
def test_missing_or_wrong_scim_tokens_are_refused(runtime: Runtime, presented: str | None) -> None:
    """Absent, empty or wrong tokens are Unauthenticated."""
    with runtime.db.write() as s:
        account = accounts.get_account(s, f.account(s))
        idp.rotate_scim_token(s, account, actor=ACTOR)
        with pytest.raises(Unauthenticated):
            idp.check_scim_token_hash(idp.settings_of(s, account.id).scim_token_hash, presented)


def test_account_a_token_does_not_open_account_b(runtime: Runtime) -> None:
    """Each account checks against its own hash only."""
    with runtime.db.write() as s:
        a = accounts.get_account(s, f.account(s, "A"))
        b = accounts.get_account(s, f.account(s, "B"))
        token_a = idp.rotate_scim_token(s, a, actor=ACTOR).token
        idp.rotate_scim_token(s, b, actor=ACTOR)
        with pytest.raises(Unauthenticated):
            idp.check_scim_token_hash(idp.settings_of(s, b.id).scim_token_hash, token_a)


def test_idp_integration_needs_the_enterprise_plan(runtime: Runtime) -> None:
    """A standard account can neither enable the integration nor get a SCIM token."""
    with runtime.db.write() as s:
        account = accounts.get_account(s, f.account(s, plan="standard"))
        with pytest.raises(Forbidden, match="enterprise"):
            idp.set_enabled(s, account, True, actor=ACTOR, master=runtime.master)
        with pytest.raises(Forbidden, match="enterprise"):
            idp.rotate_scim_token(s, account, actor=ACTOR)


def test_admin_api_shows_the_scim_url_and_token_once(
    admin_api: httpx.Client, first_account: FirstAccount, live_server: object
) -> None:
    """PATCH /idp enables; POST /idp/scim-token shows the token once; GET /idp never does."""
    assert admin_api.get("/idp").json()["enabled"] is False
    assert admin_api.patch("/idp", json={"enabled": True}).json()["enabled"] is True
    issued = admin_api.post("/idp/scim-token").json()
    assert issued["scim_url"].endswith(f"/{first_account.customer_id}/api/v3/scim")
    assert issued["token"].startswith("scim_")
    shown = admin_api.get("/idp")
    assert shown.json()["scim_token_set"] is True
    assert issued["token"] not in shown.text
