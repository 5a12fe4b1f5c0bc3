"""Every other page and rule of the console, through the UI: keys made and their secrets
shown once, usage drawn from the official client's reports, a viewer's read-only view,
CSRF, throttled and expired sign-ins, keyboard use, a phone's width, and /docs."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import ubiq_security
from playwright.sync_api import expect
from sqlalchemy import update
from ubiq_security import structured

from keystead.runtime import Runtime
from keystead.storage.models import AdminSession, UsageRefusal
from tests.browser.conftest import Console
from tests.conftest import LiveServer
from tests.support.accounts import FirstAccount
from tests.support.scim import Scim, create_group, create_user

WRITE_CONTROLS = re.compile(
    r"^(New |Enable|Disable|Generate|Rotate|Delete|Invite|Save|Remove|Revoke|Reset|Grant|Rename"
    r"|Create|Add$)"
)


def sign_in(console: Console, account: FirstAccount, route: str = "") -> None:
    console.open(route)
    console.sign_in(account.admin_email, account.admin_password)


def test_a_manual_key_is_made_its_secrets_shown_once_and_usage_is_charted(
    console: Console,
    runtime: Runtime,
    first_account: FirstAccount,
    admin_api: httpx.Client,
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    page = console.page
    created = admin_api.post(
        "/datasets", json={"name": "SSN", "type": "structured", "template": "ssn"}
    )
    assert created.status_code == 201, created.text
    sign_in(console, first_account, "/api-keys")
    console.heading("API keys")
    expect(page.get_by_text("No API keys match.")).to_be_visible()

    page.get_by_role("button", name="New API key").click()
    dialog = page.get_by_role("dialog", name="New API key")
    dialog.get_by_role("button", name="Create key").click()
    expect(dialog.locator("#new-key-name-error")).to_have_text(
        "Enter a name, e.g. the application's."
    )
    dialog.get_by_label("Name", exact=True).fill("payroll-app")
    dialog.get_by_role("checkbox", name="SSN").check()
    console.axe("the new-key dialog")
    dialog.get_by_role("button", name="Create key").click()

    shown = page.get_by_role("dialog", name="API key payroll-app created")
    expect(shown.get_by_text("shown only now")).to_be_visible()
    access_key_id = shown.get_by_label("Access key id", exact=True).input_value()
    signing = shown.get_by_label("Secret signing key", exact=True).input_value()
    crypto = shown.get_by_label("Secret crypto access key", exact=True).input_value()
    console.axe("the key's secrets, shown once")
    console.shot("api-key-created", full_page=False)
    with page.expect_download() as waiting:
        shown.get_by_role("button", name="Download the Ubiq credentials file").click()
    credentials = Path(waiting.value.path()).read_text()
    assert f"access_key_id = {access_key_id}" in credentials
    assert f"secret_signing_key = {signing}" in credentials
    assert f"secret_crypto_access_key = {crypto}" in credentials
    shown.get_by_role("button", name="I have saved them").click()
    console.heading("payroll-app")
    assert signing not in page.content()  # gone once the dialog closed
    access = page.get_by_role("region", name="Datasets this key may use, and why")
    expect(access).to_contain_text("granted directly")

    # The official client reports its operations; the usage page draws them.
    config = tmp_path / "ubiq.json"
    config.write_text(
        json.dumps(
            {
                "event_reporting": {"synchronous": True, "minimum_count": 1, "flush_interval": 1},
                "key_caching": {"structured": False, "unstructured": False},
            }
        )
    )
    creds = ubiq_security.credentials(
        access_key_id, signing, crypto, host=live_server.url, config_file=str(config)
    )
    tokens = [structured.Encrypt(creds, "SSN", f"123-45-678{n}") for n in range(3)]
    assert structured.Decrypt(creds, "SSN", tokens[0]) == "123-45-6780"

    console.go("/usage")
    console.heading("Usage")
    charts = page.locator(".chart canvas")
    expect(charts.first).to_be_visible()
    expect(page.locator(".uplot")).to_have_count(2)
    by_dataset = page.get_by_role("table", name="Operations per day, by dataset: totals")
    expect(by_dataset.get_by_role("row").filter(has_text="SSN")).to_contain_text("4")
    by_key = page.get_by_role("table", name="Operations per day, by API key: totals")
    expect(by_key.get_by_role("row").filter(has_text="payroll-app")).to_contain_text("4")
    console.axe("the usage page")
    console.shot("usage")
    csv_link = page.get_by_role("link", name="Download CSV")
    with page.expect_download() as waiting:
        csv_link.click()
    exported = Path(waiting.value.path()).read_text()
    assert exported.splitlines()[0].startswith('"day","dataset","dataset_type","api_key"')
    assert "payroll-app" in exported

    # Reports refused over the key's limits (as the data plane counts them) are flagged.
    with runtime.db.write() as session:
        session.add(
            UsageRefusal(
                account_id=uuid.UUID(first_account.customer_id),
                reported_by=access_key_id,
                day=datetime.now(UTC).date(),
                reports=3,
                entries=2400,
            )
        )
    page.reload()
    refused = page.get_by_role("region", name="Reports refused over a key's limit")
    expect(refused.get_by_role("row").filter(has_text="payroll-app")).to_contain_text("2,400")
    console.axe("the usage page with refused reports")

    # The key's own page lists the same usage.
    console.go(f"/api-keys/{access_key_id}")
    usage = page.get_by_role("region", name="Recent usage")
    expect(usage.get_by_role("row").filter(has_text="encrypt")).to_contain_text("3")


def test_a_viewer_sees_every_page_and_no_write_control(
    console: Console, admin_api: httpx.Client, scim: Scim
) -> None:
    page = console.page
    for body in (
        {"name": "SSN", "type": "structured", "template": "ssn"},
        {"name": "Notes", "type": "unstructured"},
    ):
        assert admin_api.post("/datasets", json=body).status_code == 201
    assert (
        admin_api.post("/dataset-groups", json={"name": "HR", "datasets": ["SSN"]}).status_code
        == 201
    )
    key = admin_api.post("/api-keys", json={"name": "batch", "datasets": ["Notes"]}).json()
    user = create_user(scim, "dana@fabrikam.example")
    group = create_group(scim, "HR")
    invited = admin_api.post("/admins", json={"email": "viewer@example.com", "role": "viewer"})
    assert invited.status_code == 201, invited.text

    console.open()
    console.sign_in("viewer@example.com", invited.json()["one_time_password"])
    console.choose_password("viewer password 1")
    console.heading("Account")
    expect(page.get_by_text("viewer@example.com (viewer: read-only)")).to_be_visible()
    routes = {
        "/profile": "Account",
        "/api-keys": "API keys",
        f"/api-keys/{key['access_key_id']}": "batch",
        "/datasets": "Datasets",
        "/datasets/SSN": "SSN",
        "/dataset-groups": "Dataset groups",
        "/dataset-groups/HR": "HR",
        "/directory": "Directory",
        f"/directory/users/{user['id']}": "dana@fabrikam.example",
        f"/directory/groups/{group['id']}": "HR",
        "/provisioning": "Provisioning log",
        "/usage": "Usage",
        "/audit": "Audit log",
        "/admins": "Admins",
    }
    for route, title in routes.items():
        console.go(route)
        console.heading(title)
        page.wait_for_load_state("networkidle")
        buttons = page.locator("main").get_by_role("button")
        labels = [b.inner_text().strip() for b in buttons.all() if b.is_visible()]
        writes = [label for label in labels if WRITE_CONTROLS.search(label)]
        assert not writes, f"{route} shows write controls to a viewer: {writes}"
        fields = page.locator("main input:not([readonly]):not([type=search]), main select")
        editable = [
            f.get_attribute("id")
            for f in fields.all()
            if f.is_visible() and f.is_enabled() and not _is_filter(f.get_attribute("id") or "")
        ]
        assert not editable, f"{route} offers a viewer editable fields: {editable}"
        console.axe(f"{route} as a viewer")
    console.shot("viewer-api-key")


def _is_filter(field_id: str) -> bool:
    """Search, filter and date-range controls change no data; nor does a viewer choosing
    their own password."""
    return bool(
        re.search(r"(search|kind|active|matched|outcome|since|until|log-|audit-|own-)", field_id)
    )


def test_a_write_without_the_csrf_token_is_refused(
    console: Console, first_account: FirstAccount, admin_api: httpx.Client
) -> None:
    sign_in(console, first_account)
    console.heading("Account")
    console.page.reload()  # the session, and its CSRF token, survive a reload
    console.heading("Account")
    refused = console.csrf_free_post(
        "/api/admin/v1/datasets", {"name": "Notes", "type": "unstructured"}
    )
    assert refused["status"] == 403
    assert "CSRF" in refused["body"]["message"]
    assert admin_api.get("/datasets").json() == []
    # The console's own writes carry the token.
    console.go("/datasets")
    console.page.get_by_role("button", name="New dataset").click()
    dialog = console.page.get_by_role("dialog", name="New dataset")
    dialog.get_by_label("Name", exact=True).fill("Notes")
    dialog.get_by_role("radio", name=re.compile("^Unstructured")).check()
    dialog.get_by_role("button", name="Create dataset").click()
    console.heading("Notes")
    assert [d["name"] for d in admin_api.get("/datasets").json()] == ["Notes"]


def test_throttled_sign_in_says_how_long_to_wait(
    console: Console, first_account: FirstAccount
) -> None:
    page = console.page
    console.open()
    for attempt in range(6):
        console.sign_in(first_account.admin_email, f"not my password {attempt}")
        expect(page.get_by_role("alert")).to_have_text("The email or the password is wrong.")
    console.sign_in(first_account.admin_email, first_account.admin_password)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed sign-ins.")
    expect(alert).to_contain_text(re.compile(r"Wait \d+ seconds before trying again"))
    expect(page.get_by_label("Email", exact=True)).to_have_value(first_account.admin_email)
    console.axe("the throttled sign-in")
    console.shot("sign-in-throttled", full_page=False)


def test_an_expired_session_returns_to_sign_in_and_then_to_the_same_page(
    console: Console, first_account: FirstAccount, runtime: Runtime
) -> None:
    page = console.page
    sign_in(console, first_account, "/datasets")
    console.heading("Datasets")
    with runtime.db.write() as session:
        session.execute(
            update(AdminSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    console.go("/audit")
    console.heading("Sign in")
    expect(page.get_by_text("Your session has expired.")).to_be_visible()
    assert page.url.endswith("#/audit")
    console.sign_in(first_account.admin_email, first_account.admin_password)
    console.heading("Audit log")
    events = page.get_by_role("table").get_by_role("row")
    expect(events.filter(has_text="admin.logged_in")).to_have_count(2)


def test_the_console_works_by_keyboard(
    console: Console, first_account: FirstAccount, admin_api: httpx.Client
) -> None:
    page = console.page
    console.open("/dataset-groups")
    page.get_by_label("Email", exact=True).focus()
    page.keyboard.type(first_account.admin_email)
    page.keyboard.press("Tab")
    page.keyboard.type(first_account.admin_password)
    page.keyboard.press("Enter")
    console.heading("Dataset groups")
    # The new page's heading has the focus; Tab walks on from there to the page's button.
    assert page.evaluate("() => document.activeElement.tagName") == "H1"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "New dataset group"
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="New dataset group")
    expect(dialog).to_be_visible()
    page.keyboard.type("Finance")  # the dialog's first field has the focus
    page.keyboard.press("Enter")
    console.heading("Finance")
    assert [g["name"] for g in admin_api.get("/dataset-groups").json()] == ["Finance"]
    # Escape closes a dialog without doing anything.
    console.go("/dataset-groups")
    page.get_by_role("button", name="New dataset group").click()
    expect(page.get_by_role("dialog", name="New dataset group")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    # Focus is visible: a focused control draws an outline.
    page.get_by_role("button", name="New dataset group").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")


def test_the_layout_holds_at_a_phones_width(
    phone: Console, first_account: FirstAccount, scim: Scim
) -> None:
    page = phone.page
    create_user(scim, "dana@fabrikam.example")
    phone.open()
    phone.sign_in(first_account.admin_email, first_account.admin_password)
    phone.heading("Account")
    nav = page.get_by_role("navigation", name="Console")
    expect(nav).to_be_hidden()
    for route, title in (
        ("/profile", "Account"),
        ("/api-keys", "API keys"),
        ("/directory", "Directory"),
    ):
        page.get_by_role("button", name="Menu").click()
        expect(nav).to_be_visible()
        nav.get_by_role("link", name=title).click()
        phone.heading(title)
        expect(nav).to_be_hidden()
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"{route} is {width} px wide at a 390 px viewport"
        phone.axe(f"{route} at a phone's width")
    phone.shot("phone-directory")


def test_the_api_docs_load_from_keystead_under_its_policy(
    console: Console, live_server: LiveServer
) -> None:
    page = console.page
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(re.sub(r"^(\w+://[^/]+).*", r"\1", request.url)))
    page.goto(f"{live_server.url}/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.get_by_text("/api/admin/v1/api-keys", exact=True).first).to_be_visible()
    assert origins <= {live_server.url, "data:"}, origins  # nothing from a CDN
    policy = httpx.get(f"{live_server.url}/docs").headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-eval" not in policy


def test_every_page_has_strict_headers_and_no_inline_script(live_server: LiveServer) -> None:
    for path in ("/", "/console/js/main.js", "/console/app.css", "/api/admin/v1/me"):
        response = httpx.get(f"{live_server.url}{path}")
        headers = response.headers
        policy = headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
    index = httpx.get(f"{live_server.url}/").text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index) is None  # no inline script
    assert httpx.get(f"{live_server.url}/api/admin/v1/me").headers["cache-control"] == "no-store"


def test_uuid_routes_that_do_not_exist_say_so(
    console: Console, first_account: FirstAccount
) -> None:
    sign_in(console, first_account, f"/directory/users/{uuid.uuid4()}")
    console.heading("Directory user")
    expect(console.page.get_by_role("alert")).to_contain_text("No directory user")
    console.go("/no-such-page")
    console.heading("Not found")
    console.go("/datasets/%E0%A4%A")  # a malformed escape in a hand-typed address
    console.heading("Dataset")
    expect(console.page.get_by_role("alert")).to_contain_text("No dataset")


def test_admins_are_invited_given_roles_reset_and_removed_and_tokens_made(
    console: Console, first_account: FirstAccount, live_server: LiveServer, admin_api: httpx.Client
) -> None:
    page = console.page
    api = f"{live_server.url}/api/admin/v1"
    sign_in(console, first_account, "/admins")
    console.heading("Admins")

    page.get_by_role("button", name="Invite admin").click()
    invite = page.get_by_role("dialog", name="Invite an admin")
    invite.get_by_label("Email", exact=True).fill("ops@example.com")
    invite.get_by_label("Role", exact=True).select_option("viewer")
    invite.get_by_role("button", name="Invite").click()
    shown = page.get_by_role("dialog", name="ops@example.com is invited")
    expect(shown).to_contain_text("It will not be shown again.")
    first_password = shown.get_by_label("One-time password", exact=True).input_value()
    shown.get_by_role("button", name="I have copied it").click()
    signed = httpx.post(
        f"{api}/session", json={"email": "ops@example.com", "password": first_password}
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["admin"]["password_change_required"] is True

    row = page.get_by_role("row").filter(has_text="ops@example.com")
    row.get_by_label("Role of ops@example.com", exact=True).select_option("admin")
    expect(page.get_by_text("ops@example.com is now an admin.")).to_be_visible()
    roles = {a["email"]: a["role"] for a in admin_api.get("/admins").json()}
    assert roles["ops@example.com"] == "admin"

    row.get_by_role("button", name="Reset password of ops@example.com").click()
    confirm = page.get_by_role("dialog", name="Reset the password of ops@example.com?")
    expect(confirm).to_contain_text("admin API tokens are revoked")
    confirm.get_by_role("button", name="Reset password").click()
    again = page.get_by_role("dialog", name="New one-time password for ops@example.com")
    second_password = again.get_by_label("One-time password", exact=True).input_value()
    again.get_by_role("button", name="I have copied it").click()
    assert second_password != first_password
    old = httpx.post(
        f"{api}/session", json={"email": "ops@example.com", "password": first_password}
    )
    assert old.status_code == 401

    tokens = page.get_by_role("region", name="Admin API tokens")
    tokens.get_by_label("New token's name", exact=True).fill("nightly export")
    tokens.get_by_role("button", name="Create token").click()
    made = page.get_by_role("dialog", name="Admin API token nightly export")
    token = made.get_by_label("Token", exact=True).input_value()
    made.get_by_role("button", name="I have copied it").click()
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api}/me", headers=bearer).status_code == 200
    console.axe("the admins page")
    console.shot("admins")
    tokens.get_by_role("button", name="Revoke token nightly export").click()
    page.get_by_role("dialog", name="Revoke token nightly export?").get_by_role(
        "button", name="Revoke token"
    ).click()
    expect(tokens.get_by_text("nightly export")).to_have_count(0)
    assert httpx.get(f"{api}/me", headers=bearer).status_code == 401

    # Demoting oneself is asked first (only another admin could undo it).
    me = page.get_by_role("row").filter(has_text=first_account.admin_email)
    me.get_by_label(f"Role of {first_account.admin_email}", exact=True).select_option("viewer")
    demote = page.get_by_role("dialog", name="Make yourself a viewer?")
    expect(demote).to_contain_text("only another admin can make you an admin again")
    demote.get_by_role("button", name="Cancel").click()
    expect(me.get_by_label(f"Role of {first_account.admin_email}", exact=True)).to_have_value(
        "admin"
    )
    assert {a["email"]: a["role"] for a in admin_api.get("/admins").json()}[
        first_account.admin_email
    ] == "admin"

    row.get_by_role("button", name="Remove ops@example.com").click()
    page.get_by_role("dialog", name="Remove ops@example.com?").get_by_role(
        "button", name="Remove admin"
    ).click()
    expect(page.get_by_role("row").filter(has_text="ops@example.com")).to_have_count(0)

    console.go("/audit")
    console.heading("Audit log")
    page.get_by_label("Kind", exact=True).select_option("admin")
    rows = page.get_by_role("table").get_by_role("row")
    for action in ("admin.created", "admin.role_changed", "admin.password_reset", "admin.deleted"):
        expect(rows.filter(has_text=action).first).to_be_visible()
    console.axe("the audit log")
    console.shot("audit")


def test_datasets_are_made_rotated_grouped_and_deleted_and_manual_keys_edited(
    console: Console, first_account: FirstAccount, admin_api: httpx.Client
) -> None:
    page = console.page
    assert admin_api.post("/dataset-groups", json={"name": "Finance"}).status_code == 201
    sign_in(console, first_account, "/datasets")
    console.heading("Datasets")

    # A custom definition: bad JSON is caught before sending, a bad definition by the API.
    page.get_by_role("button", name="New dataset").click()
    dialog = page.get_by_role("dialog", name="New dataset")
    dialog.get_by_label("Name", exact=True).fill("Account numbers")  # no spaces in a dataset name
    dialog.get_by_label("Format", exact=True).select_option("custom")
    definition = dialog.get_by_label("Definition (JSON)", exact=True)
    definition.fill("{not json")
    dialog.get_by_role("button", name="Create dataset").click()
    expect(dialog.locator("#ds-definition-error")).to_contain_text("not valid JSON")
    definition.fill(json.dumps({"input_character_set": "0123456789", "output_character_set": "01"}))
    dialog.get_by_role("button", name="Create dataset").click()
    expect(dialog.locator("#ds-name-error")).to_contain_text("is not valid: 1-64 characters")
    dialog.get_by_label("Name", exact=True).fill("account-numbers")
    dialog.get_by_role("button", name="Create dataset").click()
    expect(dialog.locator("#ds-definition-error")).to_contain_text("definition is not valid")
    expect(dialog.get_by_label("Name", exact=True)).to_have_value("account-numbers")
    definition.fill(
        json.dumps(
            {
                "input_character_set": "0123456789",
                "output_character_set": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                "min_input_length": 6,
                "max_input_length": 20,
            }
        )
    )
    dialog.get_by_role("button", name="Create dataset").click()
    console.heading("account-numbers")

    page.get_by_role("button", name="Rotate key").click()
    rotate = page.get_by_role("dialog", name="Rotate the key of account-numbers?")
    expect(rotate).to_contain_text("New encryptions use key number 1")
    rotate.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_text("1 (current)")).to_be_visible()
    page.get_by_label("Add to a dataset group", exact=True).select_option("Finance")
    page.get_by_role("button", name="Add", exact=True).click()
    groups = page.get_by_role("region", name="Dataset groups")
    expect(groups.get_by_role("link", name="Finance")).to_be_visible()
    console.axe("a dataset's page")
    console.shot("dataset")

    # A manual key: renamed, disabled, granted the group, revoked, deleted.
    created = admin_api.post("/api-keys", json={"name": "batch"}).json()
    console.go(f"/api-keys/{created['access_key_id']}")
    console.heading("batch")
    manage = page.get_by_role("region", name="Manage")
    manage.get_by_label("Name", exact=True).fill("nightly batch")
    manage.get_by_role("button", name="Rename", exact=True).click()
    console.heading("nightly batch")
    manage.get_by_role("button", name="Disable key").click()
    expect(manage.get_by_role("button", name="Enable key")).to_be_visible()
    manage.get_by_label("Grant a dataset group", exact=True).select_option("Finance")
    manage.get_by_role("button", name="Grant dataset group", exact=True).click()
    access = page.get_by_role("region", name="Datasets this key may use, and why")
    expect(access).to_contain_text("granted dataset group 'Finance'")
    expect(access).to_contain_text("The key is disabled")
    manage.get_by_role("button", name="Revoke dataset group Finance").click()
    expect(access).to_contain_text("None: no grant")
    # Two unstructured datasets and no default: unstructured encryption would be refused.
    for name in ("notes-a", "notes-b"):
        assert (
            admin_api.post("/datasets", json={"name": name, "type": "unstructured"}).status_code
            == 201
        )
    kid = created["access_key_id"]
    granted = admin_api.post(f"/api-keys/{kid}/grants", json={"datasets": ["notes-a", "notes-b"]})
    assert granted.status_code == 200, granted.text
    page.reload()
    console.heading("nightly batch")
    expect(access).to_contain_text("has no default")
    manage.get_by_label("Default unstructured dataset", exact=True).select_option("notes-b")
    expect(access).not_to_contain_text("has no default")
    assert admin_api.get(f"/api-keys/{kid}").json()["default_unstructured_dataset"] == "notes-b"
    manage.get_by_role("button", name="Delete key").click()
    page.get_by_role("dialog", name="Delete API key nightly batch?").get_by_role(
        "button", name="Delete key"
    ).click()
    console.heading("API keys")
    assert admin_api.get("/api-keys").json()["total"] == 0

    # The dataset group list, then deleting the dataset with its name typed.
    console.go("/dataset-groups")
    console.heading("Dataset groups")
    expect(page.get_by_role("row").filter(has_text="Finance")).to_contain_text("none yet")
    console.shot("dataset-groups")
    console.go("/datasets")
    console.heading("Datasets")
    console.shot("datasets")
    page.get_by_role("link", name="account-numbers").click()
    page.get_by_role("button", name="Delete dataset").click()
    delete = page.get_by_role("dialog", name="Delete dataset account-numbers?")
    expect(delete).to_contain_text("can no longer be decrypted")
    confirm = delete.get_by_role("button", name="Delete dataset")
    expect(confirm).to_be_disabled()
    delete.get_by_label("Type account-numbers to confirm", exact=True).fill("account-numbers")
    confirm.click()
    console.heading("Datasets")
    assert [d["name"] for d in admin_api.get("/datasets").json()] == ["notes-a", "notes-b"]


def test_a_standard_plan_account_sees_the_panel_disabled_with_the_reason(
    console: Console, first_account: FirstAccount, runtime: Runtime
) -> None:
    from keystead.accounts import service as accounts
    from tests.factories import ACTOR

    with runtime.db.write() as session:
        account = accounts.get_account(session, uuid.UUID(first_account.customer_id))
        accounts.update_account(session, account, actor=ACTOR, name=None, plan="standard")
    sign_in(console, first_account)
    console.heading("Account")
    panel = console.page.get_by_role("region", name="IDP Integration")
    expect(panel).to_contain_text("needs the enterprise plan")
    expect(panel).to_contain_text("standard")
    expect(panel.get_by_role("button")).to_have_count(0)
    console.axe("the account page on the standard plan")


def test_on_an_installation_of_several_accounts_the_sign_in_asks_which_once(
    console: Console, first_account: FirstAccount, runtime: Runtime
) -> None:
    """An admin email is unique within its account only, so with a second account on the
    installation the sign-in asks for the customer id, then remembers it."""
    from tests import factories

    with runtime.db.write() as session:
        factories.account(session, name="Globex")
    page = console.page
    sign_in(console, first_account)
    account = page.get_by_label("Account (customer id)", exact=True)
    expect(account).to_be_visible()
    expect(page.locator("#signin-account-error")).to_contain_text("several accounts")
    console.axe("the sign-in asking for the account")
    account.fill(first_account.customer_id)
    page.get_by_role("button", name="Sign in").click()
    console.heading("Account")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Account (customer id)", exact=True)).to_have_value(
        first_account.customer_id
    )
