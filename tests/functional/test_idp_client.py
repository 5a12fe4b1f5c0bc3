"""The official Ubiq client (ubiq-security 2.4.0) in IDP mode, end to end: a stand-in Entra
tenant on loopback, SCIM provisioning over HTTP, the admin API, and the client signing in
with IDP_USERNAME/IDP_PASSWORD, then encrypting and decrypting through its certificate.

Key caching is off in every client, so each call reaches the server."""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ubiq_security
from ubiq_security import structured

from tests.conftest import LiveServer
from tests.support.accounts import FirstAccount
from tests.support.fake_entra import FakeEntra
from tests.support.ubiq import assert_http_error

USER = "dana.reyes@contoso.example"
PASSWORD = "correct horse battery staple"
GROUP = "Finance Analysts"
GROUP_OBJECT_ID = "0d2c6c8e-3f1b-4b7a-9a51-5f3e2b7d9c10"
SSN = "123-45-6789"


@dataclass
class Setup:
    entra: FakeEntra
    scim: httpx.Client
    admin: httpx.Client
    customer_id: str
    host: str
    config_file: str
    user_id: str = ""
    group_id: str = ""

    def client(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        """A signed-in client, as an application would make one (IDP_* in the environment)."""
        monkeypatch.setenv("IDP_USERNAME", USER)
        monkeypatch.setenv("IDP_PASSWORD", PASSWORD)
        creds = ubiq_security.credentials(host=self.host, config_file=self.config_file)
        creds.init()
        return creds

    def sign_ins(self) -> int:
        entries = self.admin.get("/provisioning/log", params={"limit": 1000}).json()
        return sum(1 for e in entries if e["operation"] == "sso" and e["outcome"] == "success")


@pytest.fixture
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        tenant.add_user(USER, PASSWORD, groups=[GROUP_OBJECT_ID])
        yield tenant


def _setup(
    live_server: LiveServer,
    first_account: FirstAccount,
    admin_api: httpx.Client,
    entra: FakeEntra,
    tmp_path: Path,
    **sign_in: Any,
) -> Iterator[Setup]:
    customer_id = first_account.customer_id
    # The admin: enable the integration, point it at the tenant, get the SCIM token.
    configured = admin_api.patch(
        "/idp",
        json={
            "enabled": True,
            "discovery_url": entra.discovery_url,
            "issuer": entra.issuer,
            "audience": entra.audience,
            **sign_in,
        },
    )
    assert configured.status_code == 200, configured.text
    token = admin_api.post("/idp/scim-token").json()["token"]
    for dataset in (
        {"name": "ssn", "type": "structured", "template": "ssn"},
        {"name": "notes", "type": "unstructured", "template": "text"},
    ):
        assert admin_api.post("/datasets", json=dataset).status_code == 201
    group = admin_api.post("/dataset-groups", json={"name": GROUP, "datasets": ["ssn", "notes"]})
    assert group.status_code == 201, group.text

    config_file = tmp_path / "ubiq-configuration.json"
    config_file.write_text(
        json.dumps(
            {
                # IDP mode never delivers events (the reporter has no credentials); trap it.
                "event_reporting": {"synchronous": True, "trap_exceptions": True},
                "key_caching": {"structured": False, "unstructured": False},
                "idp": {
                    "provider": "entra",
                    "ubiq_customer_id": customer_id,
                    "idp_token_endpoint_url": entra.token_endpoint,
                    "idp_tenant_id": entra.client_id,
                    "idp_client_secret": entra.client_secret,
                },
            }
        )
    )
    with httpx.Client(
        base_url=f"{live_server.url}/{customer_id}/api/v3/scim",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        timeout=30,
    ) as scim:
        setup = Setup(entra, scim, admin_api, customer_id, live_server.url, str(config_file))
        # Entra's provisioning: the user, then the group with the user as member.
        user = scim.post(
            "/Users",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": USER,
                "externalId": "dana.reyes",
                "active": True,
                "name": {"givenName": "Dana", "familyName": "Reyes"},
            },
        )
        assert user.status_code == 201, user.text
        setup.user_id = user.json()["id"]
        group = scim.post(
            "/Groups",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": GROUP,
                "externalId": GROUP_OBJECT_ID,
                "members": [{"value": setup.user_id}],
            },
        )
        assert group.status_code == 201, group.text
        setup.group_id = group.json()["id"]
        yield setup


@pytest.fixture
def setup(
    live_server: LiveServer,
    first_account: FirstAccount,
    admin_api: httpx.Client,
    entra: FakeEntra,
    tmp_path: Path,
) -> Iterator[Setup]:
    yield from _setup(live_server, first_account, admin_api, entra, tmp_path)


def _patch(scim: httpx.Client, path: str, operations: list[dict[str, Any]]) -> None:
    response = scim.patch(
        path,
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        },
    )
    assert response.status_code in (200, 204), response.text


def _round_trips(creds: Any) -> None:
    encrypted = ubiq_security.encrypt(creds, b"salary review notes")
    assert ubiq_security.decrypt(creds, encrypted) == b"salary review notes"
    ciphertext = structured.Encrypt(creds, "ssn", SSN)
    assert ciphertext != SSN
    assert structured.Decrypt(creds, "ssn", ciphertext) == SSN


def test_client_signs_in_and_encrypts_until_the_directory_says_otherwise(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = setup.client(monkeypatch)
    _round_trips(creds)

    # Removed from the group in Entra → SCIM PATCH → the very next key fetch is refused.
    _patch(
        setup.scim,
        f"/Groups/{setup.group_id}",
        [{"op": "Remove", "path": f'members[value eq "{setup.user_id}"]'}],
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        structured.Encrypt(creds, "ssn", SSN)
    assert_http_error(refused, 403)
    with pytest.raises(urllib.error.HTTPError) as refused:
        ubiq_security.encrypt(creds, b"more notes")
    assert_http_error(refused, 403)

    # Disabled in Entra → SCIM active false → the exchange itself is refused. (The 2.4.0
    # client builds its HTTPError for a refused exchange with too few arguments, so the
    # refusal surfaces as TypeError; the provisioning log says what happened.)
    _patch(
        setup.scim,
        f"/Users/{setup.user_id}",
        [{"op": "Replace", "path": "active", "value": "False"}],
    )
    with pytest.raises((urllib.error.HTTPError, TypeError)):
        setup.client(monkeypatch)
    log = setup.admin.get("/provisioning/log", params={"outcome": "failed"}).json()
    assert any(e["operation"] == "sso" and e["scim_type"] == "user_inactive" for e in log)


def test_short_certificates_are_renewed_transparently_across_an_idp_key_rotation(
    live_server: LiveServer,
    first_account: FirstAccount,
    admin_api: httpx.Client,
    entra: FakeEntra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a 60-second certificate the client renews (token + exchange) before every key
    request; a signing-key rotation at the provider in between needs no restart."""
    setup = next(
        _setup(live_server, first_account, admin_api, entra, tmp_path, cert_ttl_seconds=60)
    )
    creds = setup.client(monkeypatch)
    assert setup.sign_ins() == 1
    _round_trips(creds)
    renewed = setup.sign_ins()
    assert renewed > 1

    time.sleep(1.1)  # the test server's refetch cooldown for unknown key ids
    entra.rotate_keys()
    entra.retire_old_keys()
    _round_trips(creds)
    assert setup.sign_ins() > renewed
    # The first papi is still the one the client signs with; the server kept it valid.
    assert creds.access_key_id == setup.admin.get("/api-keys").json()["items"][0]["access_key_id"]


def test_token_groups_policy_withdraws_access_before_provisioning_runs(
    live_server: LiveServer,
    first_account: FirstAccount,
    admin_api: httpx.Client,
    entra: FakeEntra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under "directory_and_token", a user whom Entra removed from the group loses access
    at the next sign-in, while SCIM still lists the membership; the overage form falls
    back to the directory."""
    setup = next(
        _setup(
            live_server,
            first_account,
            admin_api,
            entra,
            tmp_path,
            group_policy="directory_and_token",
        )
    )
    _round_trips(setup.client(monkeypatch))

    entra.user(USER).groups = []  # removed in Entra; provisioning has not run yet
    creds = setup.client(monkeypatch)
    with pytest.raises(urllib.error.HTTPError) as refused:
        structured.Encrypt(creds, "ssn", SSN)
    assert_http_error(refused, 403)

    entra.groups_overage(USER)  # too many groups to list: the directory decides
    _round_trips(setup.client(monkeypatch))
    assert "sso_groups_overage" in live_server.log()

    # Back to the directory-only policy: the SCIM membership alone gives access again.
    entra.groups_overage(USER, False)
    creds = setup.client(monkeypatch)
    assert admin_api.patch("/idp", json={"group_policy": "directory"}).status_code == 200
    _round_trips(creds)
