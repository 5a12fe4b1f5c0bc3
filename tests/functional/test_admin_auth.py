"""Admin API authentication, roles, console sessions and account isolation, on the live server.

Every response these tests receive is also checked by a response hook: never a 5xx, never
a stack trace, and every error is JSON with a ``message``.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from keystead.accounts import service as accounts
from keystead.audit import Actor
from keystead.runtime import Runtime
from keystead.storage.models import AdminSession
from tests.conftest import LiveServer
from tests.support.accounts import FirstAccount, admin_token

PREFIX = "/api/admin/v1"
COOKIE = "keystead_session"


# --- helpers ------------------------------------------------------------------------------


def _check_response(response: httpx.Response) -> None:
    """Every admin response: no 5xx, no stack trace, errors as JSON with a message."""
    response.read()
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert "Traceback" not in response.text, f"{where} leaks a stack trace: {response.text}"
    assert response.status_code < 500, f"{where}: {response.text}"
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), where
        body = response.json()
        assert isinstance(body, dict), f"{where}: {body!r}"
        assert isinstance(body.get("message"), str), f"{where}: {body!r}"
        assert body["message"], f"{where}: empty message"


def _client(live_server: LiveServer, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{live_server.url}{PREFIX}",
        headers=headers,
        timeout=30,
        event_hooks={"response": [_check_response]},
    )


def _bearer(live_server: LiveServer, token: str) -> httpx.Client:
    return _client(live_server, Authorization=f"Bearer {token}")


@pytest.fixture
def api(admin_api: httpx.Client) -> httpx.Client:
    """The first admin's bearer client, with every response checked."""
    admin_api.event_hooks = {"request": [], "response": [_check_response]}
    return admin_api


@pytest.fixture
def anon(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A client that sends no credentials."""
    with _client(live_server) as client:
        yield client


@dataclass
class ConsoleSession:
    cookie: str
    csrf: str
    response: httpx.Response

    def client(self, live_server: LiveServer, *, csrf: bool = True) -> httpx.Client:
        headers = {"Cookie": f"{COOKIE}={self.cookie}"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return _client(live_server, **headers)


def _login(anon: httpx.Client, email: str, password: str) -> ConsoleSession:
    response = anon.post("/session", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    cookie = response.cookies.get(COOKIE)
    assert cookie, response.headers
    # Do not let the shared anonymous client carry the cookie into later requests.
    anon.cookies.clear()
    return ConsoleSession(cookie, response.json()["csrf_token"], response)


def _first_sign_in(
    live_server: LiveServer, anon: httpx.Client, email: str, otp: str
) -> ConsoleSession:
    """Sign in with a one-time password and choose a new one, as the console makes an
    admin do; the session stays signed in."""
    session = _login(anon, email, otp)
    with session.client(live_server) as client:
        changed = client.post(
            "/me/password", json={"current_password": otp, "new_password": "chosen password 1"}
        )
        assert changed.status_code == 204, changed.text
    return session


def _account_id(first_account: FirstAccount) -> uuid.UUID:
    return uuid.UUID(first_account.customer_id)


def _second_account_token(runtime: Runtime) -> str:
    """Account B with its own admin and admin API token, made through the services."""
    actor = Actor.system()
    with runtime.db.write() as session:
        account = accounts.create_account(session, name="Account B", plan="enterprise", actor=actor)
    return admin_token(runtime, account.id, "admin@b.example")


def _dataset(client: httpx.Client, name: str, template: str = "digits") -> dict[str, Any]:
    response = client.post(
        "/datasets", json={"name": name, "type": "structured", "template": template}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _wait_for_log(
    live_server: LiveServer, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    """JSON log events of the server, polled until ``predicate`` holds for one of them."""
    deadline = time.monotonic() + timeout
    while True:
        events = live_server.records()
        if any(predicate(e) for e in events) or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


# --- bearer tokens --------------------------------------------------------------------------


def test_request_without_credentials_is_refused_with_401_and_a_json_message(
    anon: httpx.Client,
) -> None:
    """No credentials: 401 with {"message": …} and a WWW-Authenticate challenge."""
    for method, path in [("GET", "/datasets"), ("POST", "/datasets"), ("GET", "/audit")]:
        response = anon.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.text)
        body = response.json()
        assert set(body) == {"message"}
        assert "Bearer" in body["message"] or "sign in" in body["message"]
        assert response.headers.get("www-authenticate", "").startswith("Bearer")


def test_wrong_bearer_token_is_refused_with_401(live_server: LiveServer, api: httpx.Client) -> None:
    """A token that is not an issued admin token (any shape) gets 401."""
    for token in ["kst_" + secrets.token_urlsafe(32), "not-a-token", "kst_", "kst_" + "x" * 500]:
        with _bearer(live_server, token) as client:
            response = client.get("/datasets")
        assert response.status_code == 401, (token[:10], response.text)
        assert "not valid" in response.json()["message"]


def test_revoked_admin_token_is_refused_at_once(live_server: LiveServer, api: httpx.Client) -> None:
    """DELETE /tokens/{id} makes the token useless on the very next request."""
    created = api.post("/tokens", json={"name": "ci script"})
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["token"].startswith("kst_")
    assert token["hint"].startswith(token["token"][:8])
    with _bearer(live_server, token["token"]) as client:
        assert client.get("/datasets").status_code == 200
        assert api.delete(f"/tokens/{token['id']}").status_code == 204
        response = client.get("/datasets")
        assert response.status_code == 401, response.text
    assert token["id"] not in {t["id"] for t in api.get("/tokens").json()}


def test_revoking_an_unknown_token_id_is_404(api: httpx.Client) -> None:
    """DELETE /tokens/{id} for a token that does not exist (or is not a UUID) is 404."""
    assert api.delete(f"/tokens/{uuid.uuid4()}").status_code == 404
    assert api.delete("/tokens/not-a-uuid").status_code == 404


def test_expired_admin_token_is_refused_with_401(
    live_server: LiveServer, runtime: Runtime, first_account: FirstAccount
) -> None:
    """A token past its expiry time gets 401 saying it has expired."""
    with runtime.db.write() as session:
        admin = accounts.get_admin(session, _account_id(first_account), first_account.admin_email)
        secret = accounts.create_token(
            session, admin, name="old", actor=Actor.system(), expires_in=timedelta(seconds=-1)
        ).secret
    with _bearer(live_server, secret) as client:
        response = client.get("/datasets")
    assert response.status_code == 401, response.text
    assert "expired" in response.json()["message"]


def test_token_created_with_an_expiry_works_until_then_and_reports_it(
    live_server: LiveServer, api: httpx.Client
) -> None:
    """POST /tokens with expires_in_days returns expires_at and the token works now."""
    created = api.post("/tokens", json={"name": "short", "expires_in_days": 1})
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"] is not None
    with _bearer(live_server, created.json()["token"]) as client:
        assert client.get("/me").status_code == 200
    assert api.post("/tokens", json={"name": "bad", "expires_in_days": 0}).status_code == 422


def test_an_admin_with_a_long_email_creates_a_token_with_a_long_name(
    live_server: LiveServer, api: httpx.Client, anon: httpx.Client
) -> None:
    """A 249-character email and a 200-character token name make an audit label longer than
    its column: the token is created and the label cut with '…' (was a 500 on PostgreSQL,
    and no token)."""
    email = "a" * 64 + "@" + "b" * 180 + ".com"
    created = api.post("/admins", json={"email": email, "role": "admin"})
    assert created.status_code == 201, created.text
    session = _first_sign_in(live_server, anon, email, created.json()["one_time_password"])
    with session.client(live_server) as client:
        token = client.post("/tokens", json={"name": "t" * 200})
        assert token.status_code == 201, token.text
        assert token.json()["name"] == "t" * 200
        assert client.delete(f"/tokens/{token.json()['id']}").status_code == 204
    labels = [e["subject"] for e in api.get("/audit", params={"action": "admin_token."}).json()]
    full = f"{email}: {'t' * 200}"
    assert labels[:2] == [full[:255] + "\u2026"] * 2
    assert token.json()["id"] not in api.get("/tokens").text


# --- roles ------------------------------------------------------------------------------------


def test_viewer_admin_may_read_but_gets_403_on_writes(
    live_server: LiveServer, api: httpx.Client, anon: httpx.Client
) -> None:
    """A viewer (created via POST /admins) can GET but every write is 403."""
    created = api.post("/admins", json={"email": "Viewer@Example.com", "role": "viewer"})
    assert created.status_code == 201, created.text
    viewer = created.json()
    assert viewer["role"] == "viewer"
    assert viewer["email"] == "viewer@example.com"
    assert viewer["password_change_required"] is True
    assert len(viewer["one_time_password"]) >= 12
    _dataset(api, "ssn", "ssn")

    session = _first_sign_in(live_server, anon, "viewer@example.com", viewer["one_time_password"])
    with session.client(live_server) as client:
        listed = client.get("/datasets")
        assert listed.status_code == 200
        assert [d["name"] for d in listed.json()] == ["ssn"]
        assert client.get("/me").json()["role"] == "viewer"
        assert client.get("/audit").status_code == 200
        writes = [
            client.post("/datasets", json={"name": "x", "type": "unstructured"}),
            client.post("/datasets/ssn/rotate-key"),
            client.delete("/datasets/ssn"),
            client.post("/dataset-groups", json={"name": "g"}),
            client.post("/api-keys", json={"name": "k"}),
            client.post("/tokens", json={"name": "t"}),
            client.post("/admins", json={"email": "x@example.com"}),
            client.patch("/account", json={"name": "renamed"}),
        ]
    for response in writes:
        assert response.status_code == 403, (response.request.url.path, response.text)
        assert "read-only" in response.json()["message"]
    detail = api.get("/datasets/ssn").json()
    assert detail["current_key_number"] == 0
    assert [d["name"] for d in api.get("/datasets").json()] == ["ssn"]
    assert api.get("/dataset-groups").json() == []
    assert api.get("/api-keys").json()["items"] == []


def test_creating_an_admin_with_an_existing_email_or_a_bad_role_is_refused(
    api: httpx.Client, first_account: FirstAccount
) -> None:
    """POST /admins: duplicate email (any case) → 409, unknown role or bad email → 422."""
    dup = api.post("/admins", json={"email": first_account.admin_email.upper()})
    assert dup.status_code == 409, dup.text
    assert api.post("/admins", json={"email": "a@example.com", "role": "root"}).status_code == 422
    bad = api.post("/admins", json={"email": "not an email"})
    assert bad.status_code == 422
    assert "email" in bad.json()["message"]


# --- console sessions -------------------------------------------------------------------------


def test_console_login_sets_an_httponly_cookie_and_returns_a_csrf_token(
    anon: httpx.Client, first_account: FirstAccount
) -> None:
    """POST /session: HttpOnly SameSite=Strict cookie, csrf_token, admin and account."""
    session = _login(anon, first_account.admin_email, first_account.admin_password)
    set_cookie = session.response.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().lower() for part in set_cookie.split(";")}
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    body = session.response.json()
    assert body["csrf_token"]
    assert body["csrf_token"] != session.cookie
    assert session.cookie not in session.response.text
    assert body["admin"]["email"] == first_account.admin_email
    assert body["account"]["customer_id"] == first_account.customer_id
    assert body["expires_at"]


def test_login_email_is_matched_case_insensitively_and_trimmed(
    anon: httpx.Client, first_account: FirstAccount
) -> None:
    """POST /session accepts the email in another case and with surrounding spaces."""
    _login(anon, f"  {first_account.admin_email.upper()} ", first_account.admin_password)


def test_console_session_unsafe_request_needs_the_csrf_header(
    live_server: LiveServer, api: httpx.Client, anon: httpx.Client, first_account: FirstAccount
) -> None:
    """With the cookie: GET needs no CSRF header; POST without/with a wrong one → 403."""
    session = _login(anon, first_account.admin_email, first_account.admin_password)
    body = {"name": "cards", "type": "structured", "template": "digits"}
    with session.client(live_server, csrf=False) as client:
        assert client.get("/datasets").status_code == 200
        missing = client.post("/datasets", json=body)
        assert missing.status_code == 403, missing.text
        assert "CSRF" in missing.json()["message"]
        wrong = client.post("/datasets", json=body, headers={"X-CSRF-Token": "nope"})
        assert wrong.status_code == 403, wrong.text
        assert client.delete("/session").status_code == 403
    assert api.get("/datasets").json() == []
    with session.client(live_server) as client:
        created = client.post("/datasets", json=body)
    assert created.status_code == 201, created.text
    assert [d["name"] for d in api.get("/datasets").json()] == ["cards"]


def test_wrong_password_gets_401_with_the_same_message_as_an_unknown_email(
    anon: httpx.Client, first_account: FirstAccount
) -> None:
    """POST /session does not reveal whether the email exists."""
    wrong = anon.post(
        "/session", json={"email": first_account.admin_email, "password": "wrong-password-1"}
    )
    unknown = anon.post(
        "/session", json={"email": "nobody@example.com", "password": "wrong-password-1"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert COOKIE not in wrong.headers.get("set-cookie", "")
    assert COOKIE not in unknown.headers.get("set-cookie", "")


def test_logout_ends_the_console_session(
    live_server: LiveServer, anon: httpx.Client, first_account: FirstAccount
) -> None:
    """DELETE /session → 204, clears the cookie, and the old cookie is refused after."""
    session = _login(anon, first_account.admin_email, first_account.admin_password)
    with session.client(live_server) as client:
        assert client.get("/me").status_code == 200
        out = client.delete("/session")
        assert out.status_code == 204, out.text
        assert out.headers.get("set-cookie", "").startswith(f"{COOKIE}=")
        after = client.get("/me")
        assert after.status_code == 401, after.text
        assert (
            client.post("/datasets", json={"name": "x", "type": "unstructured"}).status_code == 401
        )


def test_logout_with_a_bearer_token_is_refused_and_the_token_keeps_working(
    api: httpx.Client,
) -> None:
    """DELETE /session with a bearer token is 401 (no session to end); the token stays valid."""
    assert api.delete("/session").status_code == 401
    assert api.get("/me").status_code == 200


def test_password_change_replaces_the_old_password_and_ends_sessions_and_tokens(
    live_server: LiveServer, api: httpx.Client, anon: httpx.Client, first_account: FirstAccount
) -> None:
    """POST /me/password → 204; the old password, existing sessions and the admin's API
    tokens (the one that made the change included) stop working."""
    email, old = first_account.admin_email, first_account.admin_password
    earlier = _login(anon, email, old)
    new = "a much longer new password"
    changed = api.post("/me/password", json={"current_password": old, "new_password": new})
    assert changed.status_code == 204, changed.text
    assert anon.post("/session", json={"email": email, "password": old}).status_code == 401
    with earlier.client(live_server) as client:
        assert client.get("/me").status_code == 401
    assert api.get("/me").status_code == 401
    fresh = _login(anon, email, new)
    assert fresh.response.json()["admin"]["password_change_required"] is False
    with fresh.client(live_server) as client:
        assert client.get("/me").json()["password_change_required"] is False


def test_password_change_rejects_a_short_new_password_with_422(
    anon: httpx.Client, api: httpx.Client, first_account: FirstAccount
) -> None:
    """A new password under 12 characters is 422 and the old password keeps working."""
    email, old = first_account.admin_email, first_account.admin_password
    short = api.post("/me/password", json={"current_password": old, "new_password": "short"})
    assert short.status_code == 422, short.text
    assert "12" in short.json()["message"]
    _login(anon, email, old)


def test_password_change_with_the_wrong_current_password_is_refused(
    anon: httpx.Client, api: httpx.Client, first_account: FirstAccount
) -> None:
    """POST /me/password with a wrong current password is 422 (a form field to fix, not a
    reason to sign out) and changes nothing."""
    email, old = first_account.admin_email, first_account.admin_password
    response = api.post(
        "/me/password",
        json={"current_password": "not-the-password", "new_password": "another long password"},
    )
    assert response.status_code == 422, response.text
    assert "current password is wrong" in response.json()["message"]
    _login(anon, email, old)
    assert (
        anon.post(
            "/session", json={"email": email, "password": "another long password"}
        ).status_code
        == 401
    )


def test_expired_console_session_is_refused(
    live_server: LiveServer, runtime: Runtime, anon: httpx.Client, first_account: FirstAccount
) -> None:
    """A session cookie past its expiry time gets 401 saying the session has expired."""
    session = _login(anon, first_account.admin_email, first_account.admin_password)
    with runtime.db.write() as db:
        db.execute(update(AdminSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    with session.client(live_server) as client:
        response = client.get("/me")
    assert response.status_code == 401, response.text
    assert "expired" in response.json()["message"]


def test_deleted_admin_loses_sessions_and_the_last_admin_cannot_be_deleted(
    live_server: LiveServer, api: httpx.Client, anon: httpx.Client, first_account: FirstAccount
) -> None:
    """DELETE /admins/{ref} ends that admin's access; deleting the last admin is 409."""
    created = api.post("/admins", json={"email": "v@example.com", "role": "viewer"}).json()
    session = _first_sign_in(live_server, anon, "v@example.com", created["one_time_password"])
    last = api.delete(f"/admins/{first_account.admin_email}")
    assert last.status_code == 409, last.text
    assert "last admin" in last.json()["message"]
    assert api.delete(f"/admins/{created['id']}").status_code == 204
    with session.client(live_server) as client:
        assert client.get("/me").status_code == 401
    assert [a["email"] for a in api.get("/admins").json()] == [first_account.admin_email]
    assert api.delete(f"/admins/{created['id']}").status_code == 404


# --- account isolation ------------------------------------------------------------------------


def test_other_accounts_token_gets_404_for_a_dataset_by_id_and_by_name(
    live_server: LiveServer, api: httpx.Client, runtime: Runtime
) -> None:
    """Account B cannot read, rotate or delete account A's dataset, by id or by name."""
    dataset = _dataset(api, "ssn", "ssn")
    with _bearer(live_server, _second_account_token(runtime)) as b:
        for ref in (dataset["id"], dataset["name"], "SSN"):
            assert b.get(f"/datasets/{ref}").status_code == 404, ref
            assert b.post(f"/datasets/{ref}/rotate-key").status_code == 404, ref
            assert b.delete(f"/datasets/{ref}").status_code == 404, ref
    after = api.get(f"/datasets/{dataset['id']}").json()
    assert after["current_key_number"] == 0
    assert [k["key_number"] for k in after["keys"]] == [0]


def test_other_accounts_dataset_list_is_empty(
    live_server: LiveServer, api: httpx.Client, runtime: Runtime
) -> None:
    """Account B's lists of datasets, groups, keys and audit events show nothing of A's."""
    _dataset(api, "ssn", "ssn")
    assert api.post("/dataset-groups", json={"name": "HR", "datasets": ["ssn"]}).status_code == 201
    assert api.post("/api-keys", json={"name": "app", "datasets": ["ssn"]}).status_code == 201
    with _bearer(live_server, _second_account_token(runtime)) as b:
        assert b.get("/datasets").json() == []
        assert b.get("/dataset-groups").json() == []
        assert b.get("/api-keys").json()["items"] == []
        actions = {e["action"] for e in b.get("/audit").json()}
        assert not actions & {"dataset.created", "dataset_group.created", "api_key.created"}
        assert {a["email"] for a in b.get("/admins").json()} == {"admin@b.example"}


def test_other_account_cannot_touch_groups_keys_or_tokens_of_the_first(
    live_server: LiveServer, api: httpx.Client, runtime: Runtime
) -> None:
    """Account B gets 404 for A's dataset group, API key and admin token, and they survive."""
    _dataset(api, "ssn", "ssn")
    group = api.post("/dataset-groups", json={"name": "HR", "datasets": ["ssn"]}).json()
    key = api.post("/api-keys", json={"name": "app"}).json()
    token_id = api.get("/tokens").json()[0]["id"]
    with _bearer(live_server, _second_account_token(runtime)) as b:
        assert b.get(f"/dataset-groups/{group['id']}").status_code == 404
        assert b.get("/dataset-groups/HR").status_code == 404
        assert b.delete("/dataset-groups/HR").status_code == 404
        assert b.get(f"/api-keys/{key['access_key_id']}").status_code == 404
        assert (
            b.patch(f"/api-keys/{key['access_key_id']}", json={"enabled": False}).status_code == 404
        )
        assert b.delete(f"/api-keys/{key['access_key_id']}").status_code == 404
        assert b.delete(f"/tokens/{token_id}").status_code == 404
        # B's own dataset group may not take A's dataset.
        assert b.post("/dataset-groups", json={"name": "X", "datasets": ["ssn"]}).status_code == 404
    assert api.get("/dataset-groups/HR").json()["datasets"] == ["ssn"]
    assert api.get(f"/api-keys/{key['access_key_id']}").json()["enabled"] is True
    assert api.get("/me").status_code == 200


def test_other_account_may_create_a_dataset_with_the_same_name(
    live_server: LiveServer, api: httpx.Client, runtime: Runtime
) -> None:
    """Dataset names are unique per account: B creates "ssn" too (201, not 409)."""
    a = _dataset(api, "ssn", "ssn")
    with _bearer(live_server, _second_account_token(runtime)) as b:
        created = b.post("/datasets", json={"name": "SSN", "type": "structured", "template": "ssn"})
        assert created.status_code == 201, created.text
        assert created.json()["id"] != a["id"]
        assert [d["name"] for d in b.get("/datasets").json()] == ["SSN"]
        group = b.post("/dataset-groups", json={"name": "HR", "datasets": ["ssn"]})
        assert group.status_code == 201, group.text
    assert [d["name"] for d in api.get("/datasets").json()] == ["ssn"]
    assert api.post("/dataset-groups", json={"name": "hr"}).status_code == 201


# --- denial logging -------------------------------------------------------------------------


def test_denied_requests_are_logged_with_their_reason(
    live_server: LiveServer, anon: httpx.Client
) -> None:
    """A 401 leaves a "denied" event in the server log with the path, status and reason."""
    marker = f"denied-probe-{secrets.token_hex(6)}"
    token = "kst_" + secrets.token_urlsafe(32)
    with _bearer(live_server, token) as client:
        assert client.get(f"/datasets/{marker}").status_code == 401

    def is_ours(event: dict[str, Any]) -> bool:
        return event.get("event") == "denied" and marker in str(event.get("path", ""))

    events = _wait_for_log(live_server, is_ours)
    ours = [e for e in events if is_ours(e)]
    assert ours, "no 'denied' event for the refused request in the server log"
    assert ours[-1]["status"] == 401
    assert "not valid" in ours[-1]["reason"]
    assert token not in live_server.log()
