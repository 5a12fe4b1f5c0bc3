"""Console sign-in on the live server: one-time passwords, the session's CSRF token,
throttled failures, and what a password change or reset revokes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from keystead.accounts import service as accounts
from keystead.accounts import signin
from keystead.audit import Actor
from keystead.crypto import passwords
from keystead.errors import Unauthenticated
from keystead.runtime import Runtime
from keystead.storage.models import AdminSession, AuditEvent, SignInFailure
from tests.conftest import LiveServer
from tests.support.accounts import FirstAccount

COOKIE = "keystead_session"
NEW_PASSWORD = "a password of my own"


@pytest.fixture
def anon(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live_server.url}/api/admin/v1", timeout=30) as client:
        yield client


def sign_in(anon: httpx.Client, email: str, password: str) -> httpx.Response:
    response = anon.post("/session", json={"email": email, "password": password})
    anon.cookies.clear()
    return response


def session_client(live_server: LiveServer, response: httpx.Response) -> httpx.Client:
    assert response.status_code == 200, response.text
    return httpx.Client(
        base_url=f"{live_server.url}/api/admin/v1",
        headers={
            "Cookie": f"{COOKIE}={response.cookies[COOKIE]}",
            "X-CSRF-Token": response.json()["csrf_token"],
        },
        timeout=30,
    )


def invite(admin_api: httpx.Client, email: str, role: str = "admin") -> str:
    created = admin_api.post("/admins", json={"email": email, "role": role})
    assert created.status_code == 201, created.text
    password: str = created.json()["one_time_password"]
    return password


def test_an_admin_on_a_one_time_password_may_only_choose_a_new_one(
    live_server: LiveServer, admin_api: httpx.Client, anon: httpx.Client, runtime: Runtime
) -> None:
    """Session and API token alike: everything but /me, /me/password and the session is
    403 naming the fix, until the password is changed."""
    otp = invite(admin_api, "new@example.com")
    first = sign_in(anon, "new@example.com", otp)
    assert first.json()["admin"]["password_change_required"] is True
    account_id = uuid.UUID(first.json()["account"]["customer_id"])
    with runtime.db.write() as s:  # an operator's `keystead admin token create`
        admin = accounts.get_admin(s, account_id, "new@example.com")
        token = accounts.create_token(s, admin, name="early", actor=Actor.cli()).secret
    with (
        session_client(live_server, first) as console,
        httpx.Client(
            base_url=f"{live_server.url}/api/admin/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as script,
    ):
        for client in (console, script):
            for method, path in (
                ("GET", "/datasets"),
                ("GET", "/account"),
                ("GET", "/idp"),
                ("POST", "/tokens"),
                ("GET", "/admins"),
            ):
                refused = client.request(
                    method, path, json={"name": "x"} if method == "POST" else None
                )
                assert refused.status_code == 403, (method, path, refused.text)
                assert "one-time password" in refused.json()["message"]
                assert "/me/password" in refused.json()["message"]
            assert client.get("/me").status_code == 200
        assert console.get("/session").status_code == 200
        changed = console.post(
            "/me/password", json={"current_password": otp, "new_password": NEW_PASSWORD}
        )
        assert changed.status_code == 204, changed.text
        # The session that chose the password goes on; the token made before is revoked.
        assert console.get("/datasets").status_code == 200
        assert console.get("/me").json()["password_change_required"] is False
        assert script.get("/me").status_code == 401


def test_the_csrf_token_is_derived_from_the_session_and_given_again_after_a_reload(
    live_server: LiveServer, anon: httpx.Client, first_account: FirstAccount, runtime: Runtime
) -> None:
    """GET /session answers the same CSRF token as the sign-in did (the page can reload);
    another session has another token, which does not work with this cookie."""
    one = sign_in(anon, first_account.admin_email, first_account.admin_password)
    two = sign_in(anon, first_account.admin_email, first_account.admin_password)
    assert one.json()["csrf_token"] != two.json()["csrf_token"]
    with session_client(live_server, one) as client:
        again = client.get("/session", headers={"X-CSRF-Token": ""})
        assert again.status_code == 200, again.text
        assert again.json()["csrf_token"] == one.json()["csrf_token"]
        assert again.json()["admin"]["email"] == first_account.admin_email
        crossed = client.post(
            "/datasets",
            json={"name": "x", "type": "unstructured"},
            headers={"X-CSRF-Token": two.json()["csrf_token"]},
        )
        assert crossed.status_code == 403, crossed.text
    # Nothing in the database holds the token.
    with runtime.db.read() as s:
        columns = set(AdminSession.__table__.columns.keys())
        assert columns == {"id", "admin_id", "token_hash", "created_at", "expires_at"}
        stored = [
            str(v) for row in s.execute(select(AdminSession)).scalars() for v in vars(row).values()
        ]
    assert not any(one.json()["csrf_token"] in v for v in stored)


def test_get_session_with_an_api_token_is_401(admin_api: httpx.Client) -> None:
    response = admin_api.get("/session")
    assert response.status_code == 401
    assert "console session" in response.json()["message"]


def test_failed_sign_ins_are_throttled_per_email_with_the_wait_in_words(
    anon: httpx.Client, admin_api: httpx.Client, first_account: FirstAccount, runtime: Runtime
) -> None:
    """Five wrong passwords are plain 401s; the sixth locks the email: the right password
    too is then 429 with Retry-After and 'try again in N seconds' until the lock ends.
    Every failure is in the audit log with its reason, never the password tried."""
    email = first_account.admin_email
    for attempt in range(6):
        wrong = sign_in(anon, email, f"wrong password {attempt}")
        assert wrong.status_code == 401, wrong.text
    locked = sign_in(anon, email, first_account.admin_password)
    assert locked.status_code == 429, locked.text
    wait = int(locked.headers["Retry-After"])
    assert 0 < wait <= 30
    assert f"try again in {wait} seconds" in locked.json()["message"]
    other_email = sign_in(anon, "someone.else@example.com", "whatever password")
    assert other_email.status_code == 401  # the lock is this email's, not the address's

    # The account's audit log has each failure aimed at it, unknown emails too.
    failures = admin_api.get("/audit", params={"action": "admin.sign_in_failed"}).json()
    assert [f["detail"]["reason"] for f in failures] == ["unknown email"] + ["wrong password"] * 6
    assert failures[1]["detail"]["locked"] == ["email"]
    assert all(f["subject"] == email for f in failures[1:])
    assert "wrong password 3" not in str(failures)

    with runtime.db.write() as s:
        s.execute(
            update(SignInFailure)
            .where(SignInFailure.scope == "email")
            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert sign_in(anon, email, first_account.admin_password).status_code == 200
    with runtime.db.read() as s:
        # success clears the email's count
        assert s.get(SignInFailure, ("email", f"{first_account.customer_id}/{email}")) is None


def test_failed_sign_ins_from_one_address_are_throttled_across_emails(
    anon: httpx.Client, first_account: FirstAccount, runtime: Runtime
) -> None:
    """Twenty failures from one client address with twenty different emails lock the
    address: the next attempt, whatever the email, is 429."""
    for n in range(21):
        assert sign_in(anon, f"guess{n}@example.com", "password guess").status_code == 401
    refused = sign_in(anon, first_account.admin_email, first_account.admin_password)
    assert refused.status_code == 429, refused.text
    assert "try again in" in refused.json()["message"]
    with runtime.db.read() as s:
        unknown = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "admin.sign_in_failed")
        ).all()
    assert len(unknown) == 21
    assert {e.detail["reason"] for e in unknown} == {"unknown email"}
    # aimed at the installation's one account: its admins see them
    assert {str(e.account_id) for e in unknown} == {first_account.customer_id}


def test_a_reset_ends_the_admins_sessions_and_tokens_and_asks_for_a_new_password(
    live_server: LiveServer, admin_api: httpx.Client, anon: httpx.Client
) -> None:
    """POST /admins/{ref}/password-reset answers a one-time password once; the admin's
    sessions and API tokens stop working at once."""
    otp = invite(admin_api, "ops@example.com")
    first = sign_in(anon, "ops@example.com", otp)
    with session_client(live_server, first) as console:
        assert (
            console.post(
                "/me/password", json={"current_password": otp, "new_password": NEW_PASSWORD}
            ).status_code
            == 204
        )
        token = console.post("/tokens", json={"name": "ops script"}).json()["token"]
    script = httpx.Client(
        base_url=f"{live_server.url}/api/admin/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    with script:
        assert script.get("/datasets").status_code == 200
        reset = admin_api.post("/admins/ops@example.com/password-reset")
        assert reset.status_code == 200, reset.text
        body = reset.json()
        assert body["password_change_required"] is True
        assert body["one_time_password"] not in (otp, NEW_PASSWORD)
        assert script.get("/datasets").status_code == 401
    with session_client(live_server, first) as console:
        assert console.get("/me").status_code == 401
    assert sign_in(anon, "ops@example.com", NEW_PASSWORD).status_code == 401
    again = sign_in(anon, "ops@example.com", body["one_time_password"])
    assert again.json()["admin"]["password_change_required"] is True
    assert "admin.password_reset" in [e["action"] for e in admin_api.get("/audit").json()]


def test_roles_change_but_the_last_admin_stays_an_admin(
    admin_api: httpx.Client, first_account: FirstAccount
) -> None:
    last = admin_api.patch(f"/admins/{first_account.admin_email}", json={"role": "viewer"})
    assert last.status_code == 409, last.text
    assert "last admin" in last.json()["message"]
    invite(admin_api, "second@example.com", role="viewer")
    promoted = admin_api.patch("/admins/second@example.com", json={"role": "admin"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "admin"
    bad = admin_api.patch("/admins/second@example.com", json={"role": "owner"})
    assert bad.status_code == 422
    assert admin_api.patch("/admins/nobody@example.com", json={"role": "admin"}).status_code == 404
    changes = admin_api.get("/audit", params={"action": "admin.role_changed"}).json()
    assert [c["detail"] for c in changes] == [{"before": "viewer", "after": "admin"}]


@pytest.mark.engines("sqlite")
def test_the_password_check_runs_outside_the_write_lock(
    runtime: Runtime, first_account: FirstAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has one writer: argon2 inside a write transaction would stall every other
    account's writes for its whole run. The check must see the lock free, right and wrong
    password alike. (PostgreSQL has no such lock.)"""
    seen: list[bool] = []
    real = passwords.verify_password

    def watched(stored: str | None, password: str) -> bool:
        seen.append(runtime.db._write_lock._is_owned())  # type: ignore[union-attr]
        return real(stored, password)

    monkeypatch.setattr(passwords, "verify_password", watched)
    ttl = timedelta(minutes=5)
    with pytest.raises(Unauthenticated):
        signin.sign_in(
            runtime.db, email=first_account.admin_email, password="nope", address="t", ttl=ttl
        )
    made = signin.sign_in(
        runtime.db,
        email=first_account.admin_email,
        password=first_account.admin_password,
        address="t",
        ttl=ttl,
    )
    assert made.csrf_token
    assert seen == [False, False]


def test_x_forwarded_for_from_an_untrusted_peer_changes_no_address(
    anon: httpx.Client, first_account: FirstAccount, admin_api: httpx.Client
) -> None:
    """No proxy is configured (KEYSTEAD_TRUSTED_PROXIES empty): a client naming another
    address in X-Forwarded-For is still counted, throttled and audited as itself."""
    for n in range(21):
        response = anon.post(
            "/session",
            json={"email": f"guess{n}@example.com", "password": "password guess"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        assert response.status_code == 401, response.text
    refused = anon.post(
        "/session",
        json={"email": first_account.admin_email, "password": first_account.admin_password},
        headers={"X-Forwarded-For": "198.51.100.1"},
    )
    assert refused.status_code == 429, refused.text


def test_a_wrong_current_password_is_throttled_and_audited_like_a_sign_in(
    live_server: LiveServer, anon: httpx.Client, first_account: FirstAccount, runtime: Runtime
) -> None:
    """Whoever holds a session or token cannot guess the password through /me/password."""
    session = sign_in(anon, first_account.admin_email, first_account.admin_password)
    with session_client(live_server, session) as console:
        for n in range(6):
            wrong = console.post(
                "/me/password",
                json={"current_password": f"guess number {n}", "new_password": NEW_PASSWORD},
            )
            assert wrong.status_code == 422, wrong.text
            assert wrong.json()["errors"] == [
                {"field": "current_password", "problem": "the current password is wrong"}
            ]
        locked = console.post(
            "/me/password",
            json={"current_password": first_account.admin_password, "new_password": NEW_PASSWORD},
        )
        assert locked.status_code == 429, locked.text
    with runtime.db.read() as s:
        failures = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "admin.password_change_failed")
        ).all()
    assert len(failures) == 6
    assert all("guess number" not in str(e.detail) for e in failures)
    assert sign_in(anon, first_account.admin_email, first_account.admin_password).status_code == 429


def test_refusals_made_before_the_api_carry_the_security_headers(live_server: LiveServer) -> None:
    """413 and the NUL refusal come from middleware in front of the admin API: they carry
    the same headers as every other answer."""
    for response in (
        httpx.post(f"{live_server.url}/api/admin/v1/session", content=b"x" * 2_000_000),
        httpx.get(f"{live_server.url}/api/admin/v1/%00"),
    ):
        assert response.status_code in (400, 413), response.text
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
