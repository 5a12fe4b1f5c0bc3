"""The Entra setup flow through the console only: first sign-in, the IDP Integration panel,
synced users' keys, a matching dataset group, token rotation and the provisioning log."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from keystead import bootstrap
from keystead.runtime import Runtime
from tests.browser.conftest import Console
from tests.conftest import LiveServer
from tests.support.accounts import FirstAccount
from tests.support.fake_entra import FakeEntra
from tests.support.scim import Scim, create_group, create_user, entra_user

PASSWORD = "a console password"


def test_first_sign_in_then_entra_setup_on_the_account_page(
    console: Console, runtime: Runtime, live_server: LiveServer
) -> None:
    first = bootstrap.create_first_account(runtime)
    assert first is not None
    page = console.page

    console.open()
    console.heading("Sign in")
    console.axe("the sign-in page")
    console.shot("sign-in")
    console.sign_in(first.admin_email, first.admin_password)

    console.heading("Choose a new password")
    console.axe("the choose-a-password page")
    console.shot("choose-password")
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("New password again", exact=True).fill("short")
    page.get_by_role("button", name="Save password").click()
    expect(page.get_by_text("Use at least 12 characters.")).to_be_visible()
    console.choose_password(PASSWORD)
    console.heading("Account")

    # Turn the integration on.
    idp = page.get_by_role("region", name="IDP Integration")
    idp.get_by_role("button", name="Enable IDP integration").click()
    expect(idp.get_by_text("enabled", exact=True)).to_be_visible()

    # The SCIM secret token: shown once in a dialog, and it works.
    page.get_by_role("button", name="Generate secret token").click()
    dialog = page.get_by_role("dialog", name="Your SCIM secret token")
    expect(dialog.get_by_text("will not be shown again")).to_be_visible()
    token = dialog.get_by_label("Secret token", exact=True).input_value()
    assert token.startswith("scim_")
    console.axe("the SCIM token dialog")
    console.shot("scim-token-dialog", full_page=False)
    dialog.get_by_role("button", name="I have copied it").click()
    expect(dialog).to_be_hidden()
    scim_url = page.get_by_label("SCIM URL (Entra: Tenant URL)", exact=True).input_value()
    assert scim_url == f"{live_server.url}/{first.customer_id}/api/v3/scim"
    probe = httpx.get(
        f"{scim_url}/Users",
        params={"filter": 'userName eq "6f1c2a4e-93d7-4b0e-8a51-2c9e4f7d0b13"'},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert probe.status_code == 200, probe.text  # what Entra's Test Connection sends

    with FakeEntra() as entra:
        # A v2 issuer is refused with the fix under the field; what was typed stays.
        page.get_by_label("OpenID discovery URL", exact=True).fill(entra.discovery_url)
        page.get_by_label("Token issuer", exact=True).fill(entra.v2_issuer)
        page.get_by_label("Token audience", exact=True).fill(entra.audience)
        page.get_by_role("button", name="Save sign-in settings").click()
        issuer_error = page.locator("#idp-issuer-error")
        expect(issuer_error).to_contain_text("v2.0 issuer")
        expect(issuer_error).to_contain_text("accessTokenAcceptedVersion")
        expect(page.get_by_label("Token issuer", exact=True)).to_have_attribute(
            "aria-invalid", "true"
        )
        expect(page.get_by_label("OpenID discovery URL", exact=True)).to_have_value(
            entra.discovery_url
        )
        console.axe("the sign-in settings with a refused issuer")

        page.get_by_label("Token issuer", exact=True).fill(entra.issuer)
        page.get_by_role("button", name="Save sign-in settings").click()
        expect(page.get_by_text("Sign-in settings saved")).to_be_visible()
        expect(issuer_error).to_have_count(0)

        page.get_by_role("button", name="Test configuration").click()
        checks = page.get_by_role("list", name="Configuration checks").get_by_role("listitem")
        expect(checks).to_have_count(4)
        expect(checks.filter(has_text="Pass")).to_have_count(4)
        expect(page.get_by_text("Every check passed.")).to_be_visible()
        assert entra.jwks_fetches >= 1

        # The test runs the saved settings: with unsaved edits it waits for a save.
        test_button = page.get_by_role("button", name="Test configuration")
        page.get_by_label("Token audience", exact=True).fill("api://something-else")
        expect(test_button).to_be_disabled()
        expect(page.get_by_text("save your changes first")).to_be_visible()
        page.get_by_label("Token audience", exact=True).fill(entra.audience)
        expect(test_button).to_be_enabled()

    # The setup guide ticks what Keystead saw: the token, Entra's request, the test.
    guide = page.locator("details", has_text="Setup guide")
    expect(guide.get_by_text("Entra reached Keystead with the current token")).to_be_visible()
    expect(guide.get_by_text("The configuration test passed")).to_be_visible()
    expect(guide.get_by_text("Synced so far: 0 users, 0 groups.")).to_be_visible()
    console.axe("the account page, set up")
    console.shot("account")


def test_synced_users_get_read_only_keys_and_a_matching_dataset_group_gives_access(
    console: Console, scim: Scim, first_account: FirstAccount
) -> None:
    page = console.page
    dana = create_user(scim, "dana@fabrikam.example")
    create_user(scim, "lee@fabrikam.example", active=False)
    group = create_group(scim, "Payroll Team")
    added = scim.patch(
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": dana["id"]}]},
    )
    assert added.status_code == 204, added.text

    console.open("/api-keys")
    console.sign_in(first_account.admin_email, first_account.admin_password)
    console.heading("API keys")
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(3)  # header, dana, lee
    dana_row = rows.filter(has_text="dana@fabrikam.example")
    expect(dana_row.get_by_text("Entra: dana@fabrikam.example")).to_be_visible()
    expect(rows.filter(has_text="lee@fabrikam.example").get_by_text("disabled")).to_be_visible()
    console.axe("the API keys page")
    console.shot("api-keys")

    # A structured dataset from a template, with its alphabets previewed.
    console.go("/datasets")
    console.heading("Datasets")
    page.get_by_role("button", name="New dataset").click()
    dialog = page.get_by_role("dialog", name="New dataset")
    dialog.get_by_label("Name", exact=True).fill("SSN")
    dialog.get_by_label("Format", exact=True).select_option("ssn")
    expect(dialog.get_by_text("0123456789", exact=True)).to_be_visible()
    console.axe("the new-dataset dialog")
    console.shot("dataset-new", full_page=False)
    dialog.get_by_role("button", name="Create dataset").click()
    console.heading("SSN")

    # A dataset group named like the synced group (another case): its members gain SSN.
    console.go("/dataset-groups")
    console.heading("Dataset groups")
    page.get_by_role("button", name="New dataset group").click()
    dialog = page.get_by_role("dialog", name="New dataset group")
    dialog.get_by_label("Name", exact=True).fill("payroll team")
    dialog.get_by_role("checkbox", name="SSN (structured)").check()
    dialog.get_by_role("button", name="Create dataset group").click()
    console.heading("payroll team")
    matches = page.get_by_role("region", name="Directory groups that match")
    expect(matches.get_by_role("link", name="Payroll Team")).to_be_visible()
    expect(matches).to_contain_text("(1 member, externalId")
    expect(page.get_by_role("region", name="Keys with access through it")).to_contain_text("1 key")
    console.axe("a dataset group's page")
    console.shot("dataset-group")

    # A second directory group named alike is flagged; pinning keeps access to the first.
    create_group(scim, "PAYROLL TEAM")
    page.reload()
    console.heading("payroll team")
    expect(matches.get_by_role("status")).to_contain_text("2 directory groups are named like")
    matches.get_by_role("button", name="Pin to this group: Payroll Team", exact=True).click()
    expect(matches.get_by_text("gives no access")).to_be_visible()
    expect(matches.get_by_role("status")).to_have_count(0)
    expect(matches).to_contain_text("Pinned: only that directory group")
    console.axe("a pinned dataset group's page")

    # Dana's key: its page says why it may use SSN, and every edit is disabled with why.
    console.go("/api-keys")
    page.get_by_role("link", name="dana@fabrikam.example", exact=True).click()
    console.heading("dana@fabrikam.example")
    access = page.get_by_role("region", name="Datasets this key may use, and why")
    expect(access.get_by_role("link", name="SSN")).to_be_visible()
    expect(access).to_contain_text(
        "member of directory group 'Payroll Team', which matches dataset group 'payroll team'"
    )
    manage = page.get_by_role("region", name="Manage")
    expect(manage.get_by_text("follows the directory: change the user in Entra")).to_be_visible()
    for name in ("Rename", "Disable key", "Delete key", "Grant dataset", "Grant dataset group"):
        button = manage.get_by_role("button", name=name, exact=True)
        expect(button).to_be_disabled()
        expect(button).to_have_attribute("aria-describedby", "follows-why")
    expect(manage.get_by_label("Name", exact=True)).to_be_disabled()
    console.axe("an auto-provisioned key's page")
    console.shot("api-key-auto-provisioned")

    # The one hand edit it takes: an emergency stop, with a reason, and lifting it.
    stop = page.get_by_role("region", name="Emergency stop")
    stop.get_by_role("button", name="Suspend key").click()
    dialog = page.get_by_role("dialog", name="Suspend API key dana@fabrikam.example?")
    dialog.get_by_label("Reason (kept in the audit log)").fill("laptop reported stolen")
    dialog.get_by_role("button", name="Suspend key").click()
    expect(
        page.get_by_role("alert").filter(has_text="Directory sync does not lift it")
    ).to_be_visible()
    expect(page.get_by_text("suspended", exact=True).first).to_be_visible()
    console.axe("a suspended key's page")
    stop.get_by_role("button", name="Lift suspension").click()
    expect(stop.get_by_role("button", name="Suspend key")).to_be_visible()

    # The directory shows the same, read-only.
    console.go("/directory")
    console.heading("Directory")
    expect(page.get_by_role("link", name="dana@fabrikam.example", exact=True)).to_be_visible()
    console.axe("the directory's users")
    console.shot("directory")
    page.get_by_role("link", name="Groups", exact=True).click()
    row = page.get_by_role("row").filter(has_text="Payroll Team")
    expect(row.get_by_role("link", name="payroll team", exact=True)).to_be_visible()
    console.axe("the directory's groups")


def test_rotating_the_token_stops_the_old_one_and_the_log_shows_failures(
    console: Console, scim: Scim, first_account: FirstAccount
) -> None:
    page = console.page
    create_user(scim, "dana@fabrikam.example")
    refused = scim.client.post("/Users", json=entra_user("dana@fabrikam.example"))
    assert refused.status_code == 409, refused.text

    console.open()
    console.sign_in(first_account.admin_email, first_account.admin_password)
    console.heading("Account")
    page.get_by_role("button", name="Rotate secret token").click()
    confirm = page.get_by_role("dialog", name="Rotate the SCIM secret token?")
    expect(confirm).to_contain_text("stops working at once")
    expect(confirm).to_contain_text("until you paste the new token")
    console.axe("the rotate confirmation")
    confirm.get_by_role("button", name="Rotate token").click()
    shown = page.get_by_role("dialog", name="Your SCIM secret token")
    new_token = shown.get_by_label("Secret token", exact=True).input_value()
    shown.get_by_role("button", name="I have copied it").click()
    assert new_token != scim.token
    assert scim.client.get("/Users").status_code == 401  # the old token, at once
    # Entra still holding the old token is the likeliest mistake: the page says so.
    page.get_by_role("button", name="Refresh").click()
    expect(
        page.get_by_text("A SCIM request with a missing or wrong secret token arrived")
    ).to_be_visible()
    fresh = httpx.get(f"{scim.base}/Users", headers={"Authorization": f"Bearer {new_token}"})
    assert fresh.status_code == 200
    page.get_by_role("button", name="Refresh").click()
    expect(
        page.get_by_text("A SCIM request with a missing or wrong secret token arrived")
    ).to_have_count(0)

    # The status strip links to the log filtered to the failure.
    strip = page.get_by_role("link", name=re.compile("Failed SCIM requests, last 24 h"))
    expect(strip).to_contain_text("1")
    strip.click()
    console.heading("Provisioning log")
    expect(page.get_by_label("Outcome", exact=True)).to_have_value("failed")
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("failed 409")
    expect(rows.nth(1)).to_contain_text("it would duplicate an existing user or group")
    console.axe("the provisioning log, filtered")
    console.shot("provisioning-log")

    page.get_by_label("Outcome", exact=True).select_option("")
    expect(rows).to_have_count(3)
    # Part of a userName, in any case, finds the user's entries, the failed one included.
    page.get_by_label("User (part of the userName)", exact=True).fill("DANA")
    page.get_by_label("User (part of the userName)", exact=True).press("Enter")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="failed 409")).to_have_count(1)
    page.get_by_label("User (part of the userName)", exact=True).fill("nobody@fabrikam.example")
    page.get_by_label("User (part of the userName)", exact=True).press("Enter")
    expect(page.get_by_text("No entries match these filters.")).to_be_visible()
