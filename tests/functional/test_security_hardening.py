"""Attacks found on a live server, each refused now: on the live server, both engines."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from keystead.accounts import service as accounts
from keystead.apikeys.service import signing_key_context
from keystead.app import build_app
from keystead.blocking import WouldWait, no_waiting
from keystead.dataplane import usage_limits
from keystead.directory import service as directory
from keystead.errors import TooManyRequests
from keystead.idp import service as idp
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.sso.unverified import UnverifiedRefusals
from keystead.storage import migrate
from keystead.storage.engine import make_engine
from keystead.storage.models import (
    ApiKey,
    DirectoryUser,
    IdpSettings,
    UsageCounter,
    UsageEvent,
)
from tests import factories as f
from tests.conftest import LiveServer, start_server, stop_server
from tests.functional.test_dataplane_signatures import Signer
from tests.support.accounts import FirstAccount, admin_token
from tests.support.fake_entra import FakeEntra
from tests.support.scim import Scim, create_group, create_user, entra_user
from tests.support.signin import (
    SignInAccount,
    csr_pem,
    provision,
    sign_in_entries,
    signin_account,
)
from tests.support.writers import writer_held

USER = "dana.reyes@contoso.example"
EVENTS = "/api/v3/tracking/events"
OTHER = "ceo@contoso.example"


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as tenant:
        tenant.add_user(USER, "correct horse")
        tenant.add_user(OTHER, "battery staple")
        yield tenant


@pytest.fixture
def signin(live_server: LiveServer, runtime: Runtime, entra: FakeEntra) -> SignInAccount:
    entra.clear_overrides()
    return signin_account(runtime, live_server.url, entra)


def odd_exponent_key(bits: int) -> rsa.RSAPrivateKey:
    base = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    p, q = base.p, base.q
    phi = (p - 1) * (q - 1)
    e = (1 << (bits - 1)) | 1
    while math.gcd(e, phi) != 1:
        e += 2
    d = pow(e, -1, phi)
    return rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    ).private_key()


@pytest.mark.parametrize(
    ("make_key", "words"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=4160), "4160 bits"),
        (lambda: rsa.generate_private_key(public_exponent=3, key_size=2048), "exponent is 3"),
        (lambda: odd_exponent_key(2000), "a 2000-bit number"),
    ],
    ids=["oversized-modulus", "exponent-3", "huge-exponent"],
)
def test_a_csr_key_that_would_make_every_later_wrap_dearer_is_refused(
    signin: SignInAccount, entra: FakeEntra, make_key: object, words: str
) -> None:
    """A CSR for a 16,384-bit key or a 3,070-bit exponent made each of that user's later
    data-plane calls cost 6-25 times more on the shared loop: 2048-4096 bits and e=65537."""
    provision(signin.runtime, signin.account_id, USER)
    key = make_key()  # type: ignore[operator]
    response = signin.exchange(entra.token_for(USER), csr_pem(key))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["reason"] == "bad_csr"
    assert words in body["message"]
    assert "signing_value" not in body


@pytest.mark.parametrize("claim", ["", "   ", None, ["x"], 42])
def test_a_present_but_unusable_username_claim_does_not_fall_back_to_another_user(
    signin: SignInAccount, entra: FakeEntra, claim: object
) -> None:
    """A token whose unique_name is empty (or not text) but whose upn names another,
    provisioned user must not sign in as that user: 401 missing_claim."""
    provision(signin.runtime, signin.account_id, OTHER)
    token = entra.mint(USER, claims={"unique_name": claim, "upn": OTHER})
    response = signin.exchange(token)
    assert response.status_code == 401, response.text
    assert response.json()["reason"] == "missing_claim"


def test_scim_locations_come_from_the_public_url_not_the_host_header(
    scim: Scim, live_server: LiveServer
) -> None:
    """A caller claiming another Host must not make Keystead tell Entra (or anyone) that
    its resources live there."""
    response = scim.client.post(
        "/Users", json=entra_user("dana@fabrikam.example"), headers={"Host": "evil.example"}
    )
    assert response.status_code == 201, response.text
    base = f"{live_server.url}/{scim.account_id}/api/v3/scim"
    assert response.headers["location"].startswith(base)
    assert response.json()["meta"]["location"].startswith(base)
    listed = httpx.get(
        f"{base}/Users",
        headers={"Authorization": f"Bearer {scim.token}", "Host": "evil.example"},
    )
    assert all("evil.example" not in r["meta"]["location"] for r in listed.json()["Resources"])


def test_database_errors_never_carry_bound_values(runtime: Runtime) -> None:
    """A failing statement's message (and so any log line made of it) holds no attribute
    value: the engines hide bound parameters."""
    assert runtime.db.engine.hide_parameters is True


def _stored_attributes(runtime: Runtime, user_id: str) -> dict[str, object]:
    with runtime.db.read() as s:
        user = s.get(DirectoryUser, uuid.UUID(user_id))
        assert user is not None
        return dict(user.attributes)


def test_a_scim_password_is_never_stored_returned_or_filterable(scim: Scim) -> None:
    """Entra can send a user's password (a mapped attribute): the User schema marks it
    write-only and never returned, so it is dropped before anything is stored."""
    created = scim.client.post(
        "/Users", json=entra_user("dana@fabrikam.example", password="Hunter2-initial!")
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert "password" not in created.json()
    assert "password" not in _stored_attributes(scim.runtime, user_id)
    assert "Hunter2" not in scim.client.get(f"/Users/{user_id}").text

    patched = scim.patch(
        f"/Users/{user_id}", {"op": "replace", "path": "password", "value": "Hunter2-new!"}
    )
    assert patched.status_code in (200, 204), patched.text
    replaced = scim.client.put(
        f"/Users/{user_id}", json=entra_user("dana@fabrikam.example", password="Hunter2-put!")
    )
    assert replaced.status_code == 200, replaced.text
    assert "password" not in _stored_attributes(scim.runtime, user_id)

    found = scim.client.get("/Users", params={"filter": 'password eq "Hunter2-put!"'})
    assert found.status_code < 500, found.text
    if found.status_code == 200:
        assert found.json()["totalResults"] == 0


def test_passwords_stored_before_are_removed_by_the_migration(tmp_path: Path) -> None:
    """Rows written before the drop existed are cleaned by migration 0007."""
    from alembic import command

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        command.upgrade(migrate.alembic_config(engine), "0006")
        account_id, user_id = uuid.uuid4(), uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (id, name, plan, created_at) "
                    "VALUES (:id, 'Acme', 'enterprise', '2026-01-01 00:00:00')"
                ),
                {"id": account_id.hex},
            )
            conn.execute(
                text(
                    "INSERT INTO directory_users (id, account_id, user_name, user_name_key, "
                    "active, attributes, version, created_at, updated_at) VALUES (:id, :a, "
                    "'dana', 'dana', 1, :attrs, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {
                    "id": user_id.hex,
                    "a": account_id.hex,
                    "attrs": json.dumps({"userName": "dana", "password": "Hunter2", "title": "x"}),
                },
            )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT attributes FROM directory_users")).scalar()
        assert isinstance(stored, str)  # SQLite's JSON column, read as raw text
        assert json.loads(stored) == {"userName": "dana", "title": "x"}
    finally:
        engine.dispose()


class Trickle:
    """A key-set endpoint that answers one byte every ``pause`` seconds, forever."""

    def __init__(self, pause: float = 1.0) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.pause, self.stop, self.connections = pause, threading.Event(), 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/common/discovery/keys"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for byte in (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b" " * 999
                ):
                    if self.stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.pause)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


def _latencies(call: Callable[[], httpx.Response], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.monotonic()
        response = call()
        out.append(time.monotonic() - started)
        assert response.status_code == 200, response.text
    return out


def test_a_trickling_key_set_stalls_neither_its_callers_nor_other_accounts(
    live_server: LiveServer,
    runtime: Runtime,
    entra: FakeEntra,
    admin_api: httpx.Client,
    scim: Scim,
) -> None:
    """Account A's discovery document names a key set that sends a byte a second. A flood
    of A's sign-ins gets 503 within the fetch deadline (5 s), never a hang; meanwhile
    account B's admin API and SCIM answer as fast as before the flood (was ~30 s)."""
    trickle = Trickle()
    try:
        document = entra.discovery_document()
        document["jwks_uri"] = trickle.url
        entra.override("discovery", body=document)
        a = signin_account(runtime, live_server.url, entra, name="Attacked")
        provision(runtime, a.account_id, USER)
        token = entra.token_for(USER)

        def b_admin() -> httpx.Response:
            return admin_api.get("/datasets")

        def b_scim() -> httpx.Response:
            return scim.client.get("/Users", params={"filter": 'userName eq "nobody"'})

        before = _latencies(b_admin, 10) + _latencies(b_scim, 10)
        answers: list[tuple[int, float]] = []
        lock = threading.Lock()
        flood_ends = time.monotonic() + 7

        def flood() -> None:
            while time.monotonic() < flood_ends:
                started = time.monotonic()
                response = a.exchange(token)
                with lock:
                    answers.append((response.status_code, time.monotonic() - started))

        flooders = [threading.Thread(target=flood) for _ in range(24)]
        for thread in flooders:
            thread.start()
        time.sleep(0.5)
        during = _latencies(b_admin, 20) + _latencies(b_scim, 20)
        for thread in flooders:
            thread.join(60)
    finally:
        trickle.close()
        entra.clear_overrides()
    assert answers
    assert {status for status, _ in answers} == {503}
    slowest_sign_in = max(seconds for _, seconds in answers)
    assert slowest_sign_in < 5 + 1.5, sorted(round(s, 1) for _, s in answers)
    normal = sorted(before)[len(before) // 2]
    assert max(during) < max(20 * normal, 0.75), (normal, sorted(during)[-5:])


def test_garbage_sign_in_tokens_are_counted_not_logged_one_by_one(
    signin: SignInAccount, entra: FakeEntra, runtime: Runtime, live_server: LiveServer
) -> None:
    """Anyone can post tokens to an account's sign-in endpoint: a provisioning-log row for
    each would let an anonymous caller write as fast as it sends. Refusals of tokens whose
    signature never verified only add to a count; those the identity provider signed
    (here an expired one) are still logged with their reason."""
    provision(signin.runtime, signin.account_id, USER)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    garbage = ["not-a-jwt", "a.b.c", entra.mint(USER, key=attacker), entra.mint_unsigned(USER)]
    for n in range(40):
        refused = signin.exchange(garbage[n % len(garbage)])
        assert refused.status_code == 401, refused.text
    expired = signin.exchange(entra.mint(USER, claims={"exp": int(time.time()) - 3600}))
    assert expired.status_code == 401
    logged = sign_in_entries(runtime, signin.account_id)
    with runtime.db.read() as s:
        settings = s.get(IdpSettings, signin.account_id)
        assert settings is not None
        counted, last = settings.unverified_refusals, settings.unverified_refusal_at
    assert [(e.scim_type, e.status) for e in logged] == [("expired", 401)]
    assert counted >= 1  # the first at once; the rest join it within ten seconds
    assert last is not None


def refusal_counter(runtime: Runtime) -> tuple[uuid.UUID, list[float], UnverifiedRefusals]:
    """An account with sign-in enabled, and a refusal counter on a clock the test moves."""
    with runtime.db.write() as s:
        account = accounts.get_account(s, f.account(s))
        idp.set_enabled(s, account, True, actor=f.ACTOR, master=runtime.master)
        account_id = account.id
    now = [0.0]
    return account_id, now, UnverifiedRefusals(runtime.db, flush_seconds=10, clock=lambda: now[0])


def test_unverified_refusals_reach_the_database_once_per_interval(runtime: Runtime) -> None:
    account_id, now, counter = refusal_counter(runtime)

    def stored() -> int:
        with runtime.db.read() as s:
            found = s.get(IdpSettings, account_id)
            assert found is not None
            return found.unverified_refusals

    for _ in range(5):
        counter.note(account_id)
    assert stored() == 1  # the first at once, four waiting
    now[0] = 11
    counter.note(account_id)
    assert stored() == 6
    counter.note(account_id)
    counter.note(account_id)
    assert stored() == 6
    counter.flush()
    assert stored() == 8


def test_unverified_refusals_waiting_survive_a_write_that_would_wait(runtime: Runtime) -> None:
    """On SQLite the exchange runs on the event loop, where a due count's write that finds
    the write lock held (the sign-in log's writer thread, any other write) raises WouldWait
    and the exchange runs again on a thread, noting its refusal again: the sums waiting
    until then are kept, and that refusal is counted once."""
    account_id, now, counter = refusal_counter(runtime)
    for _ in range(5):
        counter.note(account_id)  # the first at once, four waiting
    now[0] = 11
    with writer_held(runtime.db), pytest.raises(WouldWait), no_waiting():
        counter.note(account_id)
    counter.note(account_id)  # the exchange again, on a thread
    with runtime.db.read() as s:
        found = s.get(IdpSettings, account_id)
        assert found is not None
        assert found.unverified_refusals == 6


def test_a_recycled_user_name_does_not_inherit_the_previous_users_key(
    signin: SignInAccount, entra: FakeEntra, runtime: Runtime
) -> None:
    """Entra's default mapping sends externalId = mailNickname, so the oid check against
    externalId rarely applies. The first successful sign-in binds the directory user to the
    token's oid; a token for the same user name with another oid is refused until the
    directory user is deleted and provisioned again."""
    first = provision(runtime, signin.account_id, USER, external_id="dana.reyes")
    assert signin.exchange(entra.token_for(USER)).status_code == 200
    with runtime.db.read() as s:
        stored = s.get(DirectoryUser, first.user_id)
        assert stored is not None
        assert stored.pinned_object_id == entra.user(USER).oid.lower()

    newcomer = str(uuid.uuid4())
    refused = signin.exchange(entra.mint(USER, claims={"oid": newcomer}))
    assert refused.status_code == 403, refused.text
    assert refused.json()["reason"] == "object_id_mismatch"
    assert "provision it again" in refused.json()["message"]

    with runtime.db.write() as s:
        directory.delete_user(s, directory.get_user(s, signin.account_id, str(first.user_id)))
    provision(runtime, signin.account_id, USER, external_id="dana.reyes")
    assert signin.exchange(entra.mint(USER, claims={"oid": newcomer})).status_code == 200
    assert signin.exchange(entra.token_for(USER)).status_code == 403


def test_a_misused_auto_provisioned_key_can_be_stopped_at_once_and_sync_does_not_undo_it(
    signin: SignInAccount, entra: FakeEntra, runtime: Runtime, live_server: LiveServer
) -> None:
    """An auto-provisioned key takes no hand edits, so an admin had no way to stop one in
    an emergency short of changing the directory. Suspension is the one hand edit it
    takes: refused on every endpoint from the next request, kept through directory sync,
    audited, and lifted only by an admin."""
    with runtime.db.write() as s:
        f.dataset(s, signin.account_id, "Payroll", runtime.master, template="ssn")
        f.dataset_group(s, signin.account_id, "Payroll", "Payroll")
        account = accounts.get_account(s, signin.account_id)
        scim_token = idp.rotate_scim_token(s, account, actor=f.ACTOR).token
    token = admin_token(runtime, signin.account_id, "security@acme.example")
    scim = httpx.Client(
        base_url=f"{live_server.url}/{signin.account_id}/api/v3/scim",
        headers={"Authorization": f"Bearer {scim_token}"},
        timeout=30,
    )
    admin = httpx.Client(
        base_url=f"{live_server.url}/api/admin/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    with scim, admin:
        user = scim.post("/Users", json=entra_user(USER))
        assert user.status_code == 201, user.text
        group = scim.post(
            "/Groups",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Payroll",
                "members": [{"value": user.json()["id"]}],
            },
        )
        assert group.status_code == 201, group.text
        signed_in = signin.exchange(entra.token_for(USER))
        assert signed_in.status_code == 200, signed_in.text
        key_id = signed_in.json()["public_value"]
        app = Signer(live_server.url, key_id, signed_in.json()["signing_value"])
        ffs = f"/api/v0/ffs?ffs_name=Payroll&papi={key_id}"
        assert app.request("GET", ffs).status_code == 200

        suspended = admin.post(f"/api-keys/{key_id}/suspend", json={"reason": "laptop stolen"})
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["suspended"] is True
        refused = app.request("GET", ffs)
        assert refused.status_code == 401
        assert "suspended" in refused.json()["message"]
        usage = app.request("POST", "/api/v3/tracking/events", b'{"usage": []}')
        assert usage.status_code == 401
        again = signin.exchange(entra.token_for(USER))
        assert again.status_code == 403
        assert again.json()["reason"] == "key_suspended"

        # Directory sync rewrites the user (Entra's PUT and PATCH both): still suspended.
        put = scim.put(f"/Users/{user.json()['id']}", json=entra_user(USER, title="CFO"))
        assert put.status_code == 200, put.text
        patch = scim.patch(
            f"/Users/{user.json()['id']}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": "True"}],
            },
        )
        assert patch.status_code in (200, 204), patch.text
        assert admin.get(f"/api-keys/{key_id}").json()["suspended"] is True
        assert app.request("GET", ffs).status_code == 401
        listed = admin.get("/api-keys", params={"kind": "suspended"}).json()
        assert [k["access_key_id"] for k in listed["items"]] == [key_id]
        # Other hand edits of the key are still refused: suspension is the only one.
        assert admin.patch(f"/api-keys/{key_id}", json={"enabled": True}).status_code == 409

        assert admin.post(f"/api-keys/{key_id}/resume").status_code == 200
        assert app.request("GET", ffs).status_code == 200
        assert signin.exchange(entra.token_for(USER)).status_code == 200
        actions = [e["action"] for e in admin.get("/audit").json()]
        assert "api_key.suspended" in actions
        assert "api_key.resumed" in actions


def test_a_viewer_cannot_suspend_or_resume_a_key(
    signin: SignInAccount, runtime: Runtime, live_server: LiveServer
) -> None:
    with runtime.db.write() as s:
        key = f.manual_key(s, signin.account_id, runtime.master, "app").secrets.access_key_id
    token = admin_token(runtime, signin.account_id, "viewer@acme.example", role="viewer")
    for action in ("suspend", "resume"):
        answer = httpx.post(
            f"{live_server.url}/api/admin/v1/api-keys/{key}/{action}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 403, answer.text


def _usage_entry(key_id: str, n: int) -> dict[str, object]:
    return {
        "datasets": f"Payroll{n}",
        "dataset_groups": "",
        "dataset_type": "structured",
        "api_key": key_id,
        "count": 1,
        "key_number": 0,
        "action": "encrypt",
        "product": "ubiq-python",
        "product_version": "2.4.0",
        "user_defined": {"n": n},
    }


def test_a_signed_in_users_secrets_cannot_flood_the_usage_table(
    runtime: Runtime, settings: Settings, tmp_path: Path, live_server: LiveServer
) -> None:
    """Usage reports need the key's secrets but no certificate, even for auto-provisioned
    keys, so a signed-in user could store rows without bound. Each key may store so many
    entries a day (and a minute), each account so many a day; beyond that the report is
    refused whole with 429 and a Retry-After, nothing is stored, and the refusal is counted
    where the admin sees it. A report that still fits goes through; other accounts are
    not held back."""
    with runtime.db.write() as s:
        account_id = f.account(s)
        mine = f.manual_key(s, account_id, runtime.master, "user").secrets
        theirs = f.manual_key(s, account_id, runtime.master, "other").secrets
        elsewhere = f.manual_key(s, f.account(s, name="Globex"), runtime.master, "x").secrets
    server = start_server(
        settings,
        tmp_path / "limits.log",
        {
            "KEYSTEAD_USAGE_ENTRIES_PER_MINUTE": "1000",
            "KEYSTEAD_USAGE_ENTRIES_PER_DAY": "5",
            "KEYSTEAD_USAGE_ENTRIES_PER_ACCOUNT_DAY": "8",
        },
    )
    try:
        flooder = Signer(server.url, mine.access_key_id, mine.secret_signing_key)
        other = Signer(server.url, theirs.access_key_id, theirs.secret_signing_key)
        outsider = Signer(server.url, elsewhere.access_key_id, elsewhere.secret_signing_key)

        def report(signer: Signer, count: int) -> httpx.Response:
            usage = [_usage_entry(signer.key_id, n) for n in range(count)]
            return signer.request("POST", EVENTS, json.dumps({"usage": usage}).encode())

        assert report(flooder, 3).json() == {"stored": 3, "ignored": 0}
        refused = report(flooder, 3)
        assert refused.status_code == 429, refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 86400
        assert "a key may store 5 a day, and 2 more fit" in refused.json()["message"]
        assert report(flooder, 2).json() == {"stored": 2, "ignored": 0}  # what fits goes in
        assert report(flooder, 1).status_code == 429
        assert report(flooder, 1).status_code == 429  # now refused from memory
        assert report(other, 3).json() == {"stored": 3, "ignored": 0}  # the account: 8
        account_full = report(other, 1)
        assert account_full.status_code == 429
        assert "this account may store 8 a day" in account_full.json()["message"]
        assert report(outsider, 3).json() == {"stored": 3, "ignored": 0}
        with runtime.db.read() as s:
            stored = s.scalar(
                select(func.count())
                .select_from(UsageEvent)
                .where(UsageEvent.account_id == account_id)
            )
        assert stored == 8
        # The admin sees the refusals (from any server over the same database): the
        # first of each key at once, the rest within the ten seconds of a batch.
        token = admin_token(runtime, account_id, "u@acme.example")
        deadline, seen = time.monotonic() + 15, None
        while time.monotonic() < deadline:
            refusals = httpx.get(
                f"{live_server.url}/api/admin/v1/usage/refused",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert refusals.status_code == 200, refusals.text
            seen = sorted((r["api_key_name"], r["reports"], r["entries"]) for r in refusals.json())
            if seen == [("other", 1, 1), ("user", 3, 5)]:
                break
            time.sleep(0.5)
        assert seen == [("other", 1, 1), ("user", 3, 5)]
    finally:
        stop_server(server)


def test_usage_limits_count_per_clock_minute_and_utc_day_and_remember_the_room_left(
    runtime: Runtime,
) -> None:
    with runtime.db.write() as s:
        account_id = f.account(s)
        key = f.manual_key(s, account_id, runtime.master, "user").secrets.access_key_id
    wall, mono = [1_000_000 * 86400 + 10.0], [0.0]
    limits = usage_limits.UsageLimits(
        runtime.db,
        per_minute=5,
        per_day=8,
        per_account_day=100,
        clock=lambda: mono[0],
        wall=lambda: wall[0],
    )

    def store(count: int) -> int:
        def write(session: Session) -> int:
            return count

        return limits.store(account_id, key, count, write)

    def tick(seconds: float) -> None:
        wall[0] += seconds
        mono[0] += seconds

    assert store(5) == 5
    with pytest.raises(TooManyRequests) as minute:
        store(1)
    assert "5 a minute" in minute.value.message
    assert minute.value.retry_after == 50  # the minute started 10 s ago
    tick(51)
    assert store(3) == 3  # a new minute; the day holds 8 now
    with pytest.raises(TooManyRequests) as day:
        store(1)
    assert "8 a day" in day.value.message
    assert day.value.retry_after == 86400 - 61
    with runtime.db.write() as s:  # were the database asked, this one would fit
        s.execute(update(UsageCounter).values(entries=0))
    with pytest.raises(TooManyRequests):
        store(1)  # remembered: the day had no room left
    tick(86400 - 61)
    assert store(5) == 5  # a new UTC day
    limits.flush()
    with runtime.db.read() as s:
        rows = usage_limits.refusals(s, account_id=account_id)
    assert [(r.reports, r.entries) for r in rows] == [(3, 3)]


def test_creating_an_admin_does_not_reveal_another_accounts_admin_emails(
    live_server: LiveServer, runtime: Runtime, first_account: FirstAccount, admin_api: httpx.Client
) -> None:
    """Admin emails were unique across the installation, so an account admin could probe
    for another account's admins (409 'already exists'). An email is now unique within its
    account; on an installation with several accounts the sign-in names its account, and
    what it answers never depends on other accounts' admins."""
    with runtime.db.write() as s:
        other = f.account(s, name="Globex")
        theirs = accounts.create_admin(
            s, account_id=other, email="cfo@globex.example", role="admin", actor=f.ACTOR
        ).password
    created = admin_api.post("/admins", json={"email": "CFO@globex.example", "role": "viewer"})
    assert created.status_code == 201, created.text
    ours = created.json()["one_time_password"]
    again = admin_api.post("/admins", json={"email": "cfo@globex.example", "role": "viewer"})
    assert again.status_code == 409  # within the account, still one admin per email
    assert "in this account" in again.json()["message"]

    session = f"{live_server.url}/api/admin/v1/session"

    def sign_in(email: str, password: str, account: str | None = None) -> httpx.Response:
        body = {"email": email, "password": password}
        if account is not None:
            body["account"] = account
        return httpx.post(session, json=body, timeout=30)

    # Without an account, an email that exists twice and one that exists nowhere get the
    # same answer: the installation holds several accounts, so name one.
    twice, nowhere = sign_in("cfo@globex.example", ours), sign_in("x@nowhere.example", "pw")
    assert twice.status_code == nowhere.status_code == 422
    assert twice.json() == nowhere.json()
    assert twice.json()["errors"][0]["field"] == "account"
    # With it, each password opens its own account only, in the same words otherwise.
    assert sign_in("cfo@globex.example", ours, first_account.customer_id).status_code == 200
    mine_there = sign_in("cfo@globex.example", ours, str(other))
    assert mine_there.status_code == 401
    assert mine_there.json() == sign_in("x@nowhere.example", "pw", str(other)).json()
    opened = sign_in("cfo@globex.example", theirs, str(other))
    assert opened.status_code == 200
    assert opened.json()["account"]["customer_id"] == str(other)
    garbled = sign_in("cfo@globex.example", theirs, "globex")
    assert garbled.status_code == 422
    assert "not a customer id" in garbled.json()["message"]


def _ffs_status(live_server: LiveServer, runtime: Runtime, key: ApiKey, dataset: str) -> int:
    secret = runtime.master.unwrap(key.wrapped_signing_key, signing_key_context(key.id))
    app = Signer(live_server.url, key.access_key_id, secret.decode())
    return app.request(
        "GET", f"/api/v0/ffs?ffs_name={dataset}&papi={key.access_key_id}"
    ).status_code


def test_a_same_named_directory_group_cannot_hijack_a_pinned_dataset_group(
    scim: Scim, admin_api: httpx.Client, runtime: Runtime, live_server: LiveServer
) -> None:
    """Access follows the directory group named like a dataset group, so anyone who can
    make a group named "Payroll" in a directory synced with all groups gave its members
    Payroll's datasets. A second match is flagged (the dataset group's view, the
    provisioning log); pinned to the group it matches now, the dataset group gives access
    through that group only, and a group made again under the name needs pinning again."""
    created = admin_api.post(
        "/datasets", json={"name": "Salaries", "type": "structured", "template": "ssn"}
    )
    assert created.status_code == 201, created.text
    payroll = admin_api.post("/dataset-groups", json={"name": "Payroll", "datasets": ["Salaries"]})
    assert payroll.status_code == 201, payroll.text
    path = f"/dataset-groups/{payroll.json()['id']}"
    dana, mallory = create_user(scim, "dana@fab.example"), create_user(scim, "mal@fab.example")
    real = create_group(scim, "Payroll")
    assert (
        scim.patch(
            f"/Groups/{real['id']}",
            {"op": "add", "path": "members", "value": [{"value": dana["id"]}]},
        ).status_code
        == 204
    )
    dana_key, mallory_key = scim.key_of(dana["id"]), scim.key_of(mallory["id"])
    assert dana_key is not None
    assert mallory_key is not None
    assert _ffs_status(live_server, runtime, dana_key, "Salaries") == 200
    assert admin_api.get(path).json()["ambiguous"] is False

    # The attack: a same-named group (another spelling) with the attacker in it.
    rogue = create_group(scim, " PAYROLL ")
    assert (
        scim.patch(
            f"/Groups/{rogue['id']}",
            {"op": "add", "path": "members", "value": [{"value": mallory["id"]}]},
        ).status_code
        == 204
    )
    assert _ffs_status(live_server, runtime, mallory_key, "Salaries") == 200  # by name: it works
    view = admin_api.get(path).json()
    assert view["ambiguous"] is True
    assert len(view["matching_directory_groups"]) == 2
    logged = admin_api.get("/provisioning/log", params={"group": "PAYROLL"}).json()
    created_entry = next(e for e in logged if e["operation"] == "create group")
    assert "which directory group 'Payroll' matches too" in created_entry["detail"]

    pinned = admin_api.put(f"{path}/pin", json={"directory_group": real["id"]})
    assert pinned.status_code == 200, pinned.text
    body = pinned.json()
    assert body["pinned"] is True
    assert body["directory_groups"] == ["Payroll"]
    assert {m["display_name"]: m["gives_access"] for m in body["matching_directory_groups"]} == {
        "Payroll": True,
        " PAYROLL ".strip(): False,
    }
    assert _ffs_status(live_server, runtime, mallory_key, "Salaries") == 403
    assert _ffs_status(live_server, runtime, dana_key, "Salaries") == 200
    later = create_group(scim, "payroll")
    logged = admin_api.get("/provisioning/log", params={"group": later["id"]}).json()
    assert "pinned to another directory group" in logged[0]["detail"]

    # Pinning to a group not named alike is refused, saying why.
    other = create_group(scim, "Finance")
    refused = admin_api.put(f"{path}/pin", json={"directory_group": other["id"]})
    assert refused.status_code == 422
    assert "not a directory group named like 'Payroll'" in refused.json()["message"]

    # The pinned group deleted and made again in Entra: a new group, so nothing matches.
    assert scim.client.delete(f"/Groups/{real['id']}").status_code == 204
    again = create_group(scim, "Payroll")
    assert (
        scim.patch(
            f"/Groups/{again['id']}",
            {"op": "add", "path": "members", "value": [{"value": dana["id"]}]},
        ).status_code
        == 204
    )
    assert _ffs_status(live_server, runtime, dana_key, "Salaries") == 403
    assert admin_api.get(path).json()["pinned_to"]["present"] is False
    assert admin_api.delete(f"{path}/pin").json()["pinned"] is False
    assert _ffs_status(live_server, runtime, dana_key, "Salaries") == 200
    actions = [e["action"] for e in admin_api.get("/audit").json()]
    assert "dataset_group.pinned" in actions
    assert "dataset_group.unpinned" in actions


def test_a_burst_of_usage_reports_cannot_exhaust_the_connection_pool(
    live_server: LiveServer, runtime: Runtime, admin_api: httpx.Client
) -> None:
    """Each usage report held the connection of its signature check while it waited for a
    write connection: 16 at once emptied PostgreSQL's pool, so every request of every
    account waited 30 s and the reports failed with 500. Now a report holds one
    connection at a time."""
    with runtime.db.write() as s:
        account_id = f.account(s, name="Initech")
        keys = [f.manual_key(s, account_id, runtime.master, f"k{n}").secrets for n in range(8)]
    signers = [Signer(live_server.url, k.access_key_id, k.secret_signing_key) for k in keys]
    # Full reports, naming no key of the account: each takes a while to validate (while
    # it held its first connection) and stores nothing (a key's limit refuses some: 429).
    body = {"usage": [_usage_entry("nokey", n) for n in range(1000)]}
    prepared = [
        signers[n % len(signers)].prepare("POST", EVENTS, json.dumps(body).encode())
        for n in range(40)
    ]
    answers: list[int] = []
    started = threading.Barrier(41)

    def post(n: int) -> None:
        started.wait()
        answers.append(signers[n % len(signers)].send(prepared[n]).status_code)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    started.wait()
    took = time.monotonic()
    admin = admin_api.get("/account")
    took = time.monotonic() - took
    for thread in threads:
        thread.join(timeout=60)
    assert admin.status_code == 200
    assert set(answers) <= {200, 429}, answers
    assert took < 10, took  # was ~30 s, the pool's timeout


def test_a_key_set_nested_past_the_parser_is_a_503_and_not_fetched_again_at_once(
    signin: SignInAccount, entra: FakeEntra
) -> None:
    """A discovery document of 300,000 '[' made every sign-in a 500 with a stack trace in
    the log, and every one fetched it again. It is a failed fetch like any other: 503,
    and retried only after the back-off."""
    provision(signin.runtime, signin.account_id, USER)
    entra.override("discovery", body=b"[" * 300_000)
    entra.reset_counters()
    answers = [signin.exchange(entra.token_for(USER)) for _ in range(5)]
    assert {a.status_code for a in answers} == {503}, [a.text for a in answers]
    assert answers[0].json()["reason"] == "keys_unavailable"
    assert entra.discovery_fetches == 1


def test_usage_entries_tagged_with_large_or_deep_values_are_refused(
    live_server: LiveServer, runtime: Runtime
) -> None:
    """A 1 MiB user_defined value was stored as is (the limits count entries, not bytes),
    and one nested 960 levels deep passed the parser and failed as a 500 at the INSERT."""
    with runtime.db.write() as s:
        secrets = f.manual_key(s, f.account(s), runtime.master, "app").secrets
    app = Signer(live_server.url, secrets.access_key_id, secrets.secret_signing_key)
    big = _usage_entry(secrets.access_key_id, 0) | {"user_defined": {"x": "y" * 2000}}
    entry = json.dumps(_usage_entry(secrets.access_key_id, 0) | {"user_defined": "DEEP"})
    nested = entry.replace('"DEEP"', "[" * 960 + "1" + "]" * 960)
    for body, words in (
        (json.dumps({"usage": [big]}), "at most 1024"),
        ('{"usage": [' + nested + "]}", "more than 64 levels deep"),
    ):
        answer = app.request("POST", EVENTS, body.encode())
        assert answer.status_code == 400, answer.text
        assert words in answer.json()["message"]
    fine = _usage_entry(secrets.access_key_id, 0) | {"user_defined": {"team": "payroll"}}
    assert app.request("POST", EVENTS, json.dumps({"usage": [fine]}).encode()).status_code == 200


def test_a_scim_attribute_nested_past_the_models_limit_is_a_400(scim: Scim) -> None:
    """An extension attribute nested 256 levels deep passed the parser and failed as a 500
    when scim2-models rendered it."""
    deep: object = "x"
    for _ in range(300):
        deep = {"a": deep}
    answer = scim.client.post("/Users", json=entra_user("deep@fab.example", custom=deep))
    assert answer.status_code == 400, answer.text
    assert "64 levels" in answer.json()["detail"]


def test_a_usage_report_holds_one_database_connection_at_a_time(runtime: Runtime) -> None:
    """The deterministic half of the test above: while a report waits for its write
    connection it holds no other, so no number of reports can empty the pool."""
    with runtime.db.write() as s:
        secrets = f.manual_key(s, f.account(s), runtime.master, "app").secrets
    held: dict[int, int] = {}
    most = [0]

    def checkout(*_: object) -> None:
        me = threading.get_ident()
        held[me] = held.get(me, 0) + 1
        most[0] = max(most[0], held[me])

    def checkin(*_: object) -> None:
        me = threading.get_ident()
        held[me] = held.get(me, 0) - 1

    pool = runtime.db.engine.pool
    event.listen(pool, "checkout", checkout)
    event.listen(pool, "checkin", checkin)
    try:
        client = TestClient(build_app(runtime))  # no lifespan: the test's runtime stays open
        app = Signer(str(client.base_url), secrets.access_key_id, secrets.secret_signing_key)
        body = json.dumps({"usage": [_usage_entry(secrets.access_key_id, 0)]}).encode()
        prepared = app.prepare("POST", EVENTS, body)
        answer = client.request("POST", EVENTS, headers=prepared.headers, content=body)
    finally:
        event.remove(pool, "checkout", checkout)
        event.remove(pool, "checkin", checkin)
    assert answer.status_code == 200, answer.text
    assert most[0] == 1
