"""Sign-in settings through the admin API and the CLI, on the live server and both engines:
saving (shape-checked, nothing saved on a refusal), who may save, the account CA made once
on enabling, the "test configuration" check against the stand-in Entra tenant, and the
token-groups flag cleared when the group policy goes back to "directory"."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage.models import ApiKey, AuditEvent, IdpSettings
from tests import factories as f
from tests.conftest import LiveServer, keystead_command
from tests.support.accounts import FirstAccount, admin_token
from tests.support.fake_entra import FakeEntra

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0b9f6f43-7c1e-4a5e-9d3b-2f8e7c6a5d41"
GOOD: dict[str, Any] = {
    "discovery_url": f"https://login.microsoftonline.com/{TENANT}/.well-known/openid-configuration",
    "issuer": f"https://sts.windows.net/{TENANT}/",
    "audience": f"api://{CLIENT}",
    "username_claim": "upn",
    "leeway_seconds": 30,
    "cert_ttl_seconds": 900,
    "group_policy": "directory_and_token",
}
SIGN_IN_FIELDS = tuple(GOOD)


# --- helpers ------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def sign_in_view(view: dict[str, Any]) -> dict[str, Any]:
    return {name: view[name] for name in SIGN_IN_FIELDS}


def stored_settings(runtime: Runtime, account_id: uuid.UUID | str) -> IdpSettings | None:
    with runtime.db.read() as s:
        found = s.get(IdpSettings, uuid.UUID(str(account_id)))
        if found is not None:
            s.expunge(found)
        return found


def token_for(runtime: Runtime, account_id: uuid.UUID, email: str, *, role: str = "admin") -> str:
    """An admin API token for a new admin of ``account_id`` with ``role``."""
    return admin_token(runtime, account_id, email, role=role)


def bearer(live_server: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{live_server.url}/api/admin/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def patch(api: httpx.Client, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = api.patch("/idp", json=body)
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        yield tenant


@pytest.fixture
def tenant(entra: FakeEntra) -> FakeEntra:
    """The module's stand-in, with the correct documents."""
    entra.clear_overrides()
    entra.discovery_issuer = None
    return entra


# --- saving -------------------------------------------------------------------------------


def test_patch_saves_the_sign_in_settings_and_get_shows_them(
    admin_api: httpx.Client, first_account: FirstAccount, runtime: Runtime
) -> None:
    before = admin_api.get("/idp").json()
    assert before["sign_in_configured"] is False
    assert (before["discovery_url"], before["issuer"], before["audience"]) == (None, None, None)
    assert (before["username_claim"], before["leeway_seconds"]) == ("unique_name", 60)
    assert (before["cert_ttl_seconds"], before["group_policy"]) == (3600, "directory")

    saved = patch(admin_api, GOOD)
    shown = admin_api.get("/idp").json()
    assert saved == shown
    assert sign_in_view(shown) == GOOD
    assert shown["sign_in_configured"] is True
    assert shown["scim_url"].endswith(f"/{first_account.customer_id}/api/v3/scim")
    assert shown["sso_url"] == shown["scim_url"] + "/sso"
    assert shown["enabled"] is False  # saving sign-in settings does not enable anything

    stored = stored_settings(runtime, first_account.customer_id)
    assert stored is not None
    assert (stored.discovery_url, stored.issuer, stored.audience) == (
        GOOD["discovery_url"],
        GOOD["issuer"],
        GOOD["audience"],
    )
    assert stored.ca_cert_pem is None  # the CA comes with enabling, not with configuring
    with runtime.db.read() as s:
        events = list(
            s.scalars(select(AuditEvent).where(AuditEvent.action == "idp.sign_in_configured"))
        )
    assert len(events) == 1
    assert events[0].detail == GOOD


def test_values_are_trimmed_and_the_edges_of_the_ranges_are_accepted(
    admin_api: httpx.Client,
) -> None:
    body = {
        "discovery_url": f"  {GOOD['discovery_url']}\n",
        "issuer": f" {GOOD['issuer']} ",
        "audience": f"\t{GOOD['audience']} ",
        "leeway_seconds": 0,
        "cert_ttl_seconds": 60,
    }
    shown = patch(admin_api, body)
    assert shown["discovery_url"] == GOOD["discovery_url"]
    assert shown["issuer"] == GOOD["issuer"]
    assert shown["audience"] == GOOD["audience"]
    assert (shown["leeway_seconds"], shown["cert_ttl_seconds"]) == (0, 60)
    shown = patch(admin_api, {"leeway_seconds": 300, "cert_ttl_seconds": 86400})
    assert (shown["leeway_seconds"], shown["cert_ttl_seconds"]) == (300, 86400)
    # A loopback http discovery URL is allowed (a local stand-in or proxy).
    local = "http://127.0.0.1:8443/tenant/.well-known/openid-configuration"
    assert patch(admin_api, {"discovery_url": local})["discovery_url"] == local


def test_partial_patch_changes_only_the_fields_it_names(admin_api: httpx.Client) -> None:
    patch(admin_api, GOOD)
    shown = patch(admin_api, {"leeway_seconds": 120})
    assert sign_in_view(shown) == {**GOOD, "leeway_seconds": 120}
    other = f"api://{uuid.uuid4()}"
    shown = patch(admin_api, {"audience": other, "username_claim": "email"})
    assert sign_in_view(shown) == {
        **GOOD,
        "leeway_seconds": 120,
        "audience": other,
        "username_claim": "email",
    }
    # An empty body (or nulls) changes nothing.
    assert sign_in_view(patch(admin_api, {})) == sign_in_view(shown)
    assert sign_in_view(patch(admin_api, {"issuer": None, "leeway_seconds": None})) == (
        sign_in_view(shown)
    )
    assert sign_in_view(admin_api.get("/idp").json()) == sign_in_view(shown)


def test_an_upper_case_tenant_in_the_issuer_is_saved_in_lower_case(
    admin_api: httpx.Client,
) -> None:
    """Entra writes the tenant id in lower case in its tokens; a pasted upper-case GUID is
    the same tenant, saved as tokens will carry it."""
    shown = patch(admin_api, {"issuer": f"https://sts.windows.net/{TENANT.upper()}/"})
    assert shown["issuer"] == f"https://sts.windows.net/{TENANT}/"
    assert admin_api.get("/idp").json()["issuer"] == f"https://sts.windows.net/{TENANT}/"


def test_a_partly_set_configuration_is_not_sign_in_configured(admin_api: httpx.Client) -> None:
    shown = patch(admin_api, {"issuer": GOOD["issuer"], "audience": GOOD["audience"]})
    assert shown["sign_in_configured"] is False
    assert shown["discovery_url"] is None
    assert patch(admin_api, {"discovery_url": GOOD["discovery_url"]})["sign_in_configured"]


INVALID = [
    pytest.param(
        "discovery_url",
        "http://login.microsoftonline.com/x/.well-known/openid-configuration",
        ["discovery URL", "must use https"],
        id="http-non-loopback",
    ),
    pytest.param(
        "discovery_url",
        "/common/.well-known/openid-configuration",
        ["discovery URL", "not an absolute URL", "https://login.microsoftonline.com/TENANT_ID/"],
        id="relative-url",
    ),
    pytest.param(
        "discovery_url",
        "ftp://login.microsoftonline.com/x",
        ["discovery URL", "not an absolute URL"],
        id="ftp-url",
    ),
    pytest.param(
        "discovery_url",
        "https://login.microsoftonline.com/" + "a" * 2048,
        ["discovery URL", "2048"],
        id="too-long",
    ),
    pytest.param(
        "discovery_url",
        "https://[::1/.well-known/openid-configuration",
        ["discovery URL"],
        id="unparseable-url",
    ),
    pytest.param(
        "issuer",
        f"https://login.microsoftonline.com/{TENANT}/v2.0",
        [
            "token issuer",
            "https://sts.windows.net/TENANT_ID/",
            "v2.0",
            "accessTokenAcceptedVersion",
        ],
        id="v2-issuer",
    ),
    pytest.param(
        "issuer",
        f"https://sts.windows.net/{TENANT}",
        ["token issuer", "trailing slash", "https://sts.windows.net/TENANT_ID/"],
        id="no-trailing-slash",
    ),
    pytest.param(
        "issuer",
        "https://sts.windows.net/contoso.onmicrosoft.com/",
        ["token issuer", "tenant GUID", "https://sts.windows.net/TENANT_ID/"],
        id="non-guid-tenant",
    ),
    pytest.param(
        "audience",
        "api://my api",
        ["token audience", "Application ID URI", "no spaces"],
        id="audience-with-space",
    ),
    pytest.param("audience", "", ["token audience", "Application ID URI"], id="audience-empty"),
    pytest.param("audience", "   ", ["token audience", "Application ID URI"], id="audience-blank"),
    pytest.param(
        "audience",
        "api://" + "x" * 507,
        ["token audience", "at most 512 characters"],
        id="audience-too-long",
    ),
    pytest.param(
        "username_claim",
        "sub",
        ["username claim 'sub'", "unique_name, upn, preferred_username, email"],
        id="unknown-claim",
    ),
    pytest.param("leeway_seconds", 301, ["leeway", "from 0 to 300", "got 301"], id="leeway-301"),
    pytest.param("leeway_seconds", -1, ["leeway", "from 0 to 300", "got -1"], id="leeway-neg"),
    pytest.param("leeway_seconds", True, ["leeway_seconds", "integer"], id="leeway-bool"),
    pytest.param(
        "discovery_url", "https://exa mple.com/x", ["discovery URL", "absolute URL"], id="space"
    ),
    pytest.param(
        "discovery_url", "https://host:99999/x", ["discovery URL", "absolute URL"], id="bad-port"
    ),
    pytest.param(
        "cert_ttl_seconds",
        59,
        ["certificate lifetime", "from 60 to 86400", "got 59"],
        id="cert-ttl-59",
    ),
    pytest.param(
        "cert_ttl_seconds",
        86401,
        ["certificate lifetime", "from 60 to 86400", "got 86401"],
        id="cert-ttl-86401",
    ),
    pytest.param(
        "group_policy",
        "token",
        ["group policy 'token'", "directory, directory_and_token"],
        id="unknown-policy",
    ),
]


@pytest.mark.parametrize(("field", "value", "phrases"), INVALID)
def test_each_invalid_shape_is_422_naming_the_field_and_the_fix_and_nothing_is_saved(
    admin_api: httpx.Client,
    runtime: Runtime,
    first_account: FirstAccount,
    field: str,
    value: Any,
    phrases: list[str],
) -> None:
    patch(admin_api, GOOD)
    before = admin_api.get("/idp").json()
    audits = _audit_count(runtime)

    # Alone, and together with a valid change of another field and with enabling.
    other, other_value = ("audience", f"api://{uuid.uuid4()}")
    if field == "audience":
        other, other_value = ("issuer", f"https://sts.windows.net/{uuid.uuid4()}/")
    for body in ({field: value}, {other: other_value, field: value, "enabled": True}):
        response = admin_api.patch("/idp", json=body)
        assert response.status_code == 422, (body, response.status_code, response.text)
        message = response.json()["message"]
        for phrase in phrases:
            assert phrase in message, (phrase, message)

    assert admin_api.get("/idp").json() == before
    assert _audit_count(runtime) == audits
    stored = stored_settings(runtime, first_account.customer_id)
    assert stored is not None
    assert stored.enabled is False
    assert stored.ca_cert_pem is None


def _audit_count(runtime: Runtime) -> int:
    with runtime.db.read() as s:
        return len(list(s.scalars(select(AuditEvent.id))))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tenant_id": TENANT}, "tenant_id"),
        ({"issuer": GOOD["issuer"], "clientSecret": "x"}, "clientSecret"),
        ({"leeway_seconds": "soon"}, "leeway_seconds"),
        ({"cert_ttl_seconds": 1.5}, "cert_ttl_seconds"),
        ({"issuer": 42}, "issuer"),
    ],
)
def test_unknown_fields_and_wrong_types_are_422_and_nothing_is_saved(
    admin_api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    before = patch(admin_api, GOOD)
    response = admin_api.patch("/idp", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["message"]
    assert admin_api.get("/idp").json() == before


def test_viewer_may_read_but_not_change_the_settings(
    live_server: LiveServer,
    admin_api: httpx.Client,
    runtime: Runtime,
    first_account: FirstAccount,
    tenant: FakeEntra,
) -> None:
    configure_for(admin_api, tenant)
    before = admin_api.get("/idp").json()
    viewer = token_for(
        runtime, uuid.UUID(first_account.customer_id), "v@example.com", role="viewer"
    )
    with bearer(live_server, viewer) as client:
        assert client.get("/idp").json() == before
        for body in ({"issuer": f"https://sts.windows.net/{uuid.uuid4()}/"}, {"enabled": True}):
            response = client.patch("/idp", json=body)
            assert response.status_code == 403, response.text
            assert "read-only" in response.json()["message"]
        # The check only reads: a viewer may run it.
        checked = client.post("/idp/test")
        assert checked.status_code == 200, checked.text
        assert checked.json()["ok"] is True
    assert admin_api.get("/idp").json() == before


def test_a_standard_plan_account_cannot_configure_or_enable_sign_in(
    live_server: LiveServer, runtime: Runtime
) -> None:
    with runtime.db.write() as s:
        account_id = f.account(s, "Small Co", plan="standard")
    token = token_for(runtime, account_id, "admin@small.example")
    with bearer(live_server, token) as client:
        for body in (GOOD, {"issuer": GOOD["issuer"]}, {"enabled": True}):
            response = client.patch("/idp", json=body)
            assert response.status_code == 403, response.text
            message = response.json()["message"]
            assert "enterprise" in message
            assert "'standard'" in message
        shown = client.get("/idp").json()
    assert shown["enabled"] is False
    assert shown["sign_in_configured"] is False
    stored = stored_settings(runtime, account_id)
    assert stored is None or (stored.discovery_url, stored.issuer, stored.ca_cert_pem) == (
        None,
        None,
        None,
    )


# --- the account CA -------------------------------------------------------------------------


def test_enabling_creates_the_account_ca_exactly_once(
    admin_api: httpx.Client, runtime: Runtime, first_account: FirstAccount
) -> None:
    account_id = uuid.UUID(first_account.customer_id)
    assert patch(admin_api, {"enabled": True})["enabled"] is True
    first = stored_settings(runtime, account_id)
    assert first is not None
    assert first.ca_cert_pem is not None
    assert first.ca_key_wrapped is not None
    ca = x509.load_pem_x509_certificate(first.ca_cert_pem.encode())
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    [cn] = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert str(account_id) in str(cn.value)
    assert first.ca_cert_pem not in admin_api.get("/idp").text

    # Enabling again, disabling, re-enabling and configuring keep the same CA.
    patch(admin_api, {"enabled": True})
    assert patch(admin_api, {"enabled": False})["enabled"] is False
    assert patch(admin_api, {"enabled": True, **GOOD})["enabled"] is True
    again = stored_settings(runtime, account_id)
    assert again is not None
    assert again.ca_cert_pem == first.ca_cert_pem
    assert again.ca_key_wrapped == first.ca_key_wrapped
    with runtime.db.read() as s:
        actions = list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.in_(["idp.enabled", "idp.disabled"]))
                .order_by(AuditEvent.id)
            )
        )
    assert actions == ["idp.enabled", "idp.disabled", "idp.enabled"]


# --- the "test configuration" check --------------------------------------------------------


def configure_for(api: httpx.Client, entra: FakeEntra, **changes: str) -> None:
    patch(
        api,
        {
            "discovery_url": entra.discovery_url,
            "issuer": entra.issuer,
            "audience": entra.audience,
            **changes,
        },
    )


def codes(report: dict[str, Any]) -> list[str]:
    return [p["code"] for p in report["problems"]]


def test_check_against_the_stand_in_tenant_is_ok_and_lists_the_keys(
    admin_api: httpx.Client, tenant: FakeEntra
) -> None:
    configure_for(admin_api, tenant)
    response = admin_api.post("/idp/test")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True, report
    assert report["problems"] == []
    assert report["rs256_key_count"] >= 1
    assert report["rs256_key_count"] == len(report["key_ids"])
    assert report["key_ids"] == [k.kid for k in tenant.published_keys]
    assert report["discovery_url"] == tenant.discovery_url
    assert report["document_issuer"] == tenant.issuer
    assert report["jwks_uri"] == tenant.jwks_uri


def test_check_reports_a_v2_issuer_in_the_document_as_a_mismatch(
    admin_api: httpx.Client, tenant: FakeEntra
) -> None:
    configure_for(admin_api, tenant)
    tenant.discovery_issuer = tenant.v2_issuer
    try:
        report = admin_api.post("/idp/test").json()
    finally:
        tenant.discovery_issuer = None
    assert report["ok"] is False
    assert "issuer_mismatch" in codes(report)
    [problem] = [p for p in report["problems"] if p["code"] == "issuer_mismatch"]
    assert problem["severity"] == "error"
    assert tenant.v2_issuer in problem["message"]
    assert "accessTokenAcceptedVersion" in problem["message"]
    assert report["document_issuer"] == tenant.v2_issuer


def test_check_reports_an_overridden_document_without_keys(
    admin_api: httpx.Client, tenant: FakeEntra
) -> None:
    configure_for(admin_api, tenant)
    tenant.override("jwks", body={"keys": []})
    try:
        report = admin_api.post("/idp/test").json()
    finally:
        tenant.clear_overrides()
    assert report["ok"] is False
    assert codes(report) == ["jwks_no_keys"]
    assert report["rs256_key_count"] == 0


@pytest.mark.parametrize("which", ["discovery", "jwks"])
def test_a_document_nested_past_any_parser_is_reported_not_a_500(
    admin_api: httpx.Client, tenant: FakeEntra, which: str
) -> None:
    """A discovery document or key set of 300,000 '[' made Test configuration a 500 (and
    the CLI print a traceback): it is 'not JSON' like any other broken document."""
    configure_for(admin_api, tenant)
    tenant.override(which, body=b"[" * 300_000)  # type: ignore[arg-type]
    try:
        response = admin_api.post("/idp/test")
    finally:
        tenant.clear_overrides()
    assert response.status_code == 200, response.text
    assert codes(response.json()) == [f"{which}_not_json"]


def test_check_reports_an_unreachable_discovery_url(
    admin_api: httpx.Client, tenant: FakeEntra
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/{tenant.tenant_id}/.well-known/openid-configuration"
    configure_for(admin_api, tenant, discovery_url=url)
    report = admin_api.post("/idp/test").json()
    assert report["ok"] is False
    assert codes(report) == ["discovery_unreachable"]
    assert url in report["problems"][0]["message"]
    assert report["rs256_key_count"] == 0
    assert report["key_ids"] == []


def test_check_before_configuring_is_409_telling_to_configure(
    admin_api: httpx.Client, tenant: FakeEntra
) -> None:
    response = admin_api.post("/idp/test")
    assert response.status_code == 409, response.text
    message = response.json()["message"]
    assert "not configured" in message
    assert "keystead idp configure" in message
    # Half a configuration is still not enough.
    patch(admin_api, {"issuer": tenant.issuer, "audience": tenant.audience})
    assert admin_api.post("/idp/test").status_code == 409


# --- the group policy ------------------------------------------------------------------------


def test_going_back_to_the_directory_policy_clears_token_groups_enforced(
    admin_api: httpx.Client, runtime: Runtime, first_account: FirstAccount
) -> None:
    account_id = uuid.UUID(first_account.customer_id)
    patch(admin_api, {**GOOD, "group_policy": "directory_and_token"})
    with runtime.db.write() as s:
        _, key = f.directory_user(s, account_id, "dana@contoso.example")
        _, untouched = f.directory_user(s, account_id, "eli@contoso.example")
        other_account = f.account(s, "Other")
        _, foreign = f.directory_user(s, other_account, "fay@other.example")
        key.token_groups_enforced = True
        foreign.token_groups_enforced = True
        ids = (key.id, untouched.id, foreign.id)

    def flags() -> tuple[bool, ...]:
        with runtime.db.read() as s:
            return tuple(s.get(ApiKey, i).token_groups_enforced for i in ids)  # type: ignore[union-attr]

    # Saving other fields, or the same stricter policy, leaves the flag.
    patch(admin_api, {"leeway_seconds": 10, "group_policy": "directory_and_token"})
    assert flags() == (True, False, True)

    shown = patch(admin_api, {"group_policy": "directory"})
    assert shown["group_policy"] == "directory"
    assert flags() == (False, False, True)  # only this account's keys


# --- the CLI ---------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Keystead:
    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str) -> Run:
        done = subprocess.run(
            [keystead_command(), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        result = Run(done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in result.stdout + result.stderr, result.describe()
        return result


@pytest.fixture
def keystead(
    runtime: Runtime, settings: Settings, first_account: FirstAccount, tmp_path: Path
) -> Keystead:
    """`keystead` on this engine's test database, whose only account is the first one."""
    assert settings.master_key is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env.update(
        {
            "COLUMNS": "250",
            "KEYSTEAD_DATABASE_URL": settings.database_url or "",
            "KEYSTEAD_MASTER_KEY": settings.master_key.get_secret_value(),
            "KEYSTEAD_DATA_DIR": str(tmp_path),
            "KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES": "true",  # the stand-in is on loopback
        }
    )
    return Keystead(tmp_path, env)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_cli_configure_show_and_test(
    keystead: Keystead, runtime: Runtime, first_account: FirstAccount, tenant: FakeEntra
) -> None:
    before = keystead("idp", "test", "--json")
    assert before.returncode == 1, before.describe()
    assert "keystead idp configure" in before.json()["message"]
    assert before.json()["status"] == 409

    configured = keystead(
        "idp",
        "configure",
        "--discovery-url",
        tenant.discovery_url,
        "--issuer",
        tenant.issuer,
        "--audience",
        tenant.audience,
        "--cert-ttl",
        "600",
        "--json",
    )
    assert configured.returncode == 0, configured.describe()
    view = configured.json()
    assert view["discovery_url"] == tenant.discovery_url
    assert view["issuer"] == tenant.issuer
    assert view["audience"] == tenant.audience
    assert view["cert_ttl_seconds"] == 600
    assert (view["leeway_seconds"], view["username_claim"], view["group_policy"]) == (
        60,
        "unique_name",
        "directory",
    )
    assert view["sign_in_configured"] is True
    assert view["sso_url"] == view["scim_url"] + "/sso"
    assert view["scim_url"].endswith(f"/{first_account.customer_id}/api/v3/scim")
    stored = stored_settings(runtime, first_account.customer_id)
    assert stored is not None
    assert (stored.issuer, stored.cert_ttl_seconds) == (tenant.issuer, 600)

    shown = keystead("idp", "show", "--json")
    assert shown.returncode == 0, shown.describe()
    assert shown.json() == view
    human = keystead("idp", "show")
    assert human.returncode == 0, human.describe()
    assert tenant.discovery_url in human.stdout
    assert "600 s" in human.stdout

    good = keystead("idp", "test", "--json")
    assert good.returncode == 0, good.describe()
    report = good.json()
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["key_ids"] == [k.kid for k in tenant.published_keys]
    assert "configuration OK" in keystead("idp", "test").stdout

    tenant.discovery_issuer = tenant.v2_issuer
    try:
        bad = keystead("idp", "test", "--json")
        bad_human = keystead("idp", "test")
    finally:
        tenant.discovery_issuer = None
    assert bad.returncode == 1, bad.describe()
    report = bad.json()
    assert report["ok"] is False
    assert "issuer_mismatch" in codes(report)
    assert bad_human.returncode == 1, bad_human.describe()
    assert "issuer_mismatch" in bad_human.stdout
    assert "not usable yet" in bad_human.stdout


def test_cli_configure_changes_only_the_options_given(
    keystead: Keystead, tenant: FakeEntra
) -> None:
    first = keystead(
        "idp",
        "configure",
        "--discovery-url",
        tenant.discovery_url,
        "--issuer",
        tenant.issuer,
        "--audience",
        tenant.audience,
        "--json",
    ).json()
    second = keystead(
        "idp",
        "configure",
        "--leeway",
        "5",
        "--username-claim",
        "preferred_username",
        "--group-policy",
        "directory_and_token",
        "--json",
    )
    assert second.returncode == 0, second.describe()
    view = second.json()
    assert sign_in_view(view) == {
        **sign_in_view(first),
        "leeway_seconds": 5,
        "username_claim": "preferred_username",
        "group_policy": "directory_and_token",
    }


def test_cli_configure_without_options_is_refused(keystead: Keystead) -> None:
    plain = keystead("idp", "configure")
    assert plain.returncode == 1, plain.describe()
    assert plain.stdout.strip() == ""
    assert "nothing to change" in flat(plain.stderr)
    assert "at least one option" in flat(plain.stderr)
    as_json = keystead("idp", "configure", "--json")
    assert as_json.returncode == 1, as_json.describe()
    assert "nothing to change" in as_json.json()["message"]


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (
            ("--issuer", f"https://login.microsoftonline.com/{TENANT}/v2.0"),
            ["token issuer", "https://sts.windows.net/TENANT_ID/", "accessTokenAcceptedVersion"],
        ),
        (("--issuer", f"https://sts.windows.net/{TENANT}"), ["trailing slash"]),
        (("--cert-ttl", "59"), ["certificate lifetime", "from 60 to 86400"]),
        (("--group-policy", "strict"), ["group policy 'strict'"]),
        (("--discovery-url", "https://[::1/x"), ["discovery URL"]),
    ],
)
def test_cli_configure_with_an_invalid_value_exits_1_with_the_message(
    keystead: Keystead,
    runtime: Runtime,
    first_account: FirstAccount,
    args: tuple[str, ...],
    phrases: list[str],
) -> None:
    result = keystead("idp", "configure", *args)
    assert result.returncode == 1, result.describe()
    assert result.stdout.strip() == "", result.describe()
    for phrase in phrases:
        assert phrase in flat(result.stderr), result.describe()
    as_json = keystead("idp", "configure", *args, "--json")
    assert as_json.returncode == 1, as_json.describe()
    assert as_json.json()["status"] == 422
    stored = stored_settings(runtime, first_account.customer_id)
    assert stored is None or (stored.issuer, stored.discovery_url) == (None, None)
