"""Prometheus metrics at /metrics and X-Request-Id, against live `keystead serve` processes:
off by default (404), every surface counted under its route pattern (never an id), SCIM
operations and SSO refusals by their own labels, the scrape behind its token when one is
set; every kind of answer carries a request id, a caller's safe id is kept, an unsafe one
replaced, and the id is in the access-log line and is a 500's reference."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from keystead.accounts import service as accounts
from keystead.idp import service as idp
from keystead.runtime import Runtime
from keystead.settings import Settings
from keystead.storage.models import ApiKey
from tests import factories as f
from tests.conftest import LiveServer, start_server, stop_server
from tests.factories import ACTOR
from tests.functional.test_dataplane_signatures import Signer
from tests.support import accounts as support_accounts
from tests.support.accounts import FirstAccount

TOKEN = "scrape-" + uuid.uuid4().hex
FRESH_ID = re.compile(r"[0-9a-f]{32}")
BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def metrics_server(
    settings: Settings, session_runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {"KEYSTEAD_METRICS": "true", "KEYSTEAD_MAX_BODY_BYTES": str(BODY_LIMIT)}
    server = start_server(settings, tmp_path_factory.mktemp("metrics") / "server.log", env)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def guarded_server(
    settings: Settings, session_runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {"KEYSTEAD_METRICS": "true", "KEYSTEAD_METRICS_TOKEN": TOKEN}
    server = start_server(settings, tmp_path_factory.mktemp("guarded") / "server.log", env)
    yield server
    stop_server(server)


@dataclass
class Setup:
    """The first account with a SCIM token and a key that may use SSN, on one server."""

    server: LiveServer
    runtime: Runtime
    account: FirstAccount
    scim_token: str
    signer: Signer

    @property
    def scim_base(self) -> str:
        return f"{self.server.url}/{self.account.customer_id}/api/v3/scim"

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.server.url}/api/admin/v1",
            headers={"Authorization": f"Bearer {self.account.admin_token}"},
            timeout=30,
        )

    def scim(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.scim_token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.scim_base + path, headers=headers, timeout=30, **kwargs)

    def def_keys(self) -> httpx.Response:
        target = f"/api/v0/fpe/def_keys?ffs_name=SSN&papi={self.signer.key_id}"
        return self.signer.request("GET", target)


def _setup(server: LiveServer, runtime: Runtime) -> Setup:
    account = support_accounts.first_account(runtime)
    account_id = uuid.UUID(account.customer_id)
    with runtime.db.write() as s:
        found = accounts.get_account(s, account_id)
        token = idp.rotate_scim_token(s, found, actor=ACTOR).token
        idp.set_enabled(s, found, True, actor=ACTOR, master=runtime.master)
        f.dataset(s, account_id, "SSN", runtime.master, template="ssn")
        key = f.manual_key(s, account_id, runtime.master, "app", datasets=("SSN",)).secrets
    signer = Signer(server.url, key.access_key_id, key.secret_signing_key)
    return Setup(server, runtime, account, token, signer)


@pytest.fixture
def setup(metrics_server: LiveServer, runtime: Runtime) -> Setup:
    return _setup(metrics_server, runtime)


# --- reading a scrape -----------------------------------------------------------------------


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one sample named ``name`` with exactly ``labels`` (0 if absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(server: LiveServer, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/metrics", timeout=30, **kwargs)


def scrape_until(server: LiveServer, ready: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``ready`` holds (a request is counted once its answer has gone)."""
    deadline = time.monotonic() + 5
    while True:
        response = scrape(server)
        assert response.status_code == 200, response.text
        samples = _parse(response.text)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def requests_of(route: str, surface: str, method: str, status: int) -> Callable[[Samples], float]:
    labels = {"route": route, "surface": surface, "method": method, "status": str(status)}
    return lambda samples: value(samples, "keystead_http_requests_total", **labels)


def log_records(server: LiveServer) -> list[dict[str, Any]]:
    return server.records()


def logged(server: LiveServer, request_id: str) -> list[dict[str, Any]]:
    """The server's log records naming ``request_id``, polled until its access line is in."""
    deadline = time.monotonic() + 5
    while True:
        records = [
            r
            for r in log_records(server)
            if request_id in (r.get("request_id"), r.get("reference"))
        ]
        if any(r.get("event") == "request" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


# --- off, on, guarded -----------------------------------------------------------------------


def test_metrics_are_off_unless_switched_on(live_server: LiveServer) -> None:
    """Without KEYSTEAD_METRICS /metrics is an unknown path, like any other."""
    response = scrape(live_server)
    assert response.status_code == 404
    assert response.json() == {"message": "no such endpoint: GET /metrics"}
    assert FRESH_ID.fullmatch(response.headers["x-request-id"])


def test_a_scrape_counts_every_surface_under_its_route_pattern(setup: Setup) -> None:
    server = setup.server
    before = _parse(scrape(server).text)
    customer_id = setup.account.customer_id
    missing = str(uuid.uuid4())

    # The data plane: granted twice (the second from the caches), refused once.
    assert setup.def_keys().status_code == 200
    assert setup.def_keys().status_code == 200
    unsigned = httpx.get(f"{server.url}/api/v0/fpe/def_keys?ffs_name=SSN&papi=x", timeout=30)
    assert unsigned.status_code == 401
    # SCIM: a user created, one that does not exist read.
    created = setup.scim("POST", "/Users", json={"userName": "ada@contoso.example"})
    assert created.status_code == 201, created.text
    assert setup.scim("GET", f"/Users/{missing}").status_code == 404
    # The SSO exchange, refused (no sign-in settings).
    refusal = httpx.post(f"{setup.scim_base}/sso", json={"csr": "x"}, timeout=30)
    assert refusal.status_code in (400, 401, 403), refusal.text
    reason = refusal.json()["reason"]
    # The admin API: a key that does not exist.
    with setup.admin() as admin:
        assert admin.get(f"/api-keys/{missing}").status_code == 404

    dataplane = requests_of("/api/v0/fpe/def_keys", "dataplane", "GET", 200)
    samples = scrape_until(server, lambda s: dataplane(s) - dataplane(before) >= 2)

    def grew(probe: Callable[[Samples], float], by: float = 1) -> bool:
        return probe(samples) - probe(before) == by

    assert grew(dataplane, 2)
    assert grew(requests_of("/api/v0/fpe/def_keys", "dataplane", "GET", 401))
    scim_users = "/{customer_id}/api/v3/scim/Users"
    assert grew(requests_of(scim_users, "scim", "POST", 201))
    assert grew(requests_of(scim_users + "/{resource_id}", "scim", "GET", 404))
    sso = "/{customer_id}/api/v3/scim/sso"
    assert grew(requests_of(sso, "sso", "POST", refusal.status_code))
    assert grew(requests_of("/api/admin/v1/api-keys/{ref}", "admin", "GET", 404))

    def scim_op(operation: str, outcome: str) -> Callable[[Samples], float]:
        labels = {"operation": operation, "outcome": outcome}
        return lambda s: value(s, "keystead_scim_operations_total", **labels)

    assert grew(scim_op("create user", "succeeded"))
    assert grew(scim_op("read user", "refused"))

    def exchanges(s: Samples) -> float:
        labels = {"outcome": "refused", "reason": reason}
        return value(s, "keystead_sso_exchanges_total", **labels)

    assert grew(exchanges)
    # Latency: a histogram per route pattern, its count the requests answered.
    assert (
        value(
            samples,
            "keystead_http_request_duration_seconds_count",
            route="/api/v0/fpe/def_keys",
            surface="dataplane",
            method="GET",
        )
        >= 3
    )
    # Read when scraped: the data plane's caches, the pool, the key-set fetches.
    hits = {"cache": "dataplane.service", "kind": "immutable"}
    assert value(samples, "keystead_cache_hits_total", **hits) > value(
        before, "keystead_cache_hits_total", **hits
    )
    assert value(samples, "keystead_cache_misses_total", **hits) > 0
    assert value(samples, "keystead_db_pool_size") > 0
    assert ("keystead_idp_keyset_fetches_total", frozenset()) in samples
    assert ("keystead_idp_keyset_fetch_failures_total", frozenset()) in samples
    # No id, customer id or user name is ever a label value.
    text = scrape(server).text
    for raw in (customer_id, missing, setup.signer.key_id, "ada@contoso.example"):
        assert raw not in text


def test_unknown_paths_and_methods_keep_the_labels_bounded(setup: Setup) -> None:
    server = setup.server
    for method in ("PROPFIND", "MKCOL", "UNLOCK"):  # methods HTTP parsers know, no route takes
        assert httpx.get(f"{server.url}/no/such/path/{uuid.uuid4()}", timeout=30).status_code == 404
        odd = httpx.request(method, f"{server.url}/api/v0/fpe/def_keys", timeout=30)
        assert odd.status_code == 405
    samples = scrape_until(server, lambda s: True)
    names = {labels for name, labels in samples if name == "keystead_http_requests_total"}
    routes = {dict(labels)["route"] for labels in names}
    methods = {dict(labels)["method"] for labels in names}
    assert "unmatched" in routes
    assert not [r for r in routes if r.startswith("/no/")]
    assert "other" in methods
    assert not methods & {"PROPFIND", "MKCOL", "UNLOCK"}


def test_a_token_guards_the_scrape_when_one_is_set(guarded_server: LiveServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = scrape(guarded_server, headers=headers)
        assert refused.status_code == 401
        assert "KEYSTEAD_METRICS_TOKEN" in refused.json()["message"]
        assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert "keystead_http_requests_total" not in refused.text
    granted = scrape(guarded_server, headers={"Authorization": f"Bearer {TOKEN}"})
    assert granted.status_code == 200
    assert granted.headers["content-type"].startswith("text/plain")
    assert "keystead_http_requests_total" in granted.text
    time.sleep(0.2)  # the access line of the last scrape
    assert TOKEN not in guarded_server.log()


# --- request ids ----------------------------------------------------------------------------


def test_every_kind_of_answer_carries_a_request_id(setup: Setup) -> None:
    server, base = setup.server, setup.server.url
    too_large = b"{" + b" " * BODY_LIMIT + b"}"
    with setup.admin() as admin:
        answers = {
            "data plane": setup.def_keys(),
            "data plane refusal": httpx.get(f"{base}/api/v0/fpe/def_keys", timeout=30),
            "data plane 405": httpx.put(f"{base}/api/v0/fpe/def_keys", timeout=30),
            "data plane 413": httpx.post(
                f"{base}/api/v0/encryption/key", content=too_large, timeout=30
            ),
            "scim": setup.scim("GET", "/Users"),
            "scim refusal": httpx.get(f"{setup.scim_base}/Users", timeout=30),
            "sso refusal": httpx.post(f"{setup.scim_base}/sso", json={}, timeout=30),
            "admin": admin.get("/api-keys"),
            "admin 413": admin.post("/datasets", content=too_large),
            "console": httpx.get(f"{base}/", timeout=30),
            "health": httpx.get(f"{base}/healthz", timeout=30),
            "unknown path": httpx.get(f"{base}/no/such/path", timeout=30),
            "metrics": scrape(server),
        }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses["data plane"] == 200
    assert statuses["data plane 413"] == 413
    assert statuses["admin 413"] == 413
    assert statuses["unknown path"] == 404
    assert statuses["data plane 405"] == 405
    ids = [response.headers.get("x-request-id") for response in answers.values()]
    assert all(rid is not None and FRESH_ID.fullmatch(rid) for rid in ids), ids
    assert len(set(ids)) == len(ids), "each request has its own id"


def test_a_failure_is_a_500_whose_reference_is_the_request_id_in_the_log(setup: Setup) -> None:
    """A key whose stored signing secret is corrupt cannot be verified: Keystead's own
    fault, a 500 whose reference is the request id that the log's lines carry."""
    with setup.runtime.db.write() as s:
        key = s.scalars(select(ApiKey).where(ApiKey.access_key_id == setup.signer.key_id)).one()
        key.wrapped_signing_key = b"corrupt" * 8
    response = setup.def_keys()
    assert response.status_code == 500, response.text
    request_id = response.headers["x-request-id"]
    assert FRESH_ID.fullmatch(request_id)
    assert f"reference {request_id}" in response.text
    records = logged(setup.server, request_id)
    access = [r for r in records if r.get("event") == "request"]
    assert [(r["path"], r["status"]) for r in access] == [("/api/v0/fpe/def_keys", 500)]
    failures = [r for r in records if r.get("event") == "unexpected_error"]
    assert len(failures) == 1
    assert failures[0]["reference"] == request_id
    assert "corrupt" not in response.text


def test_a_safe_caller_id_is_kept_and_an_unsafe_one_replaced(setup: Setup) -> None:
    base = setup.server.url
    safe = ["a", "trace-1.2:3_X", "x" * 128, "0af7651916cd43dd8448eb211c80319c"]
    unsafe = ["x" * 129, "has space", 'quote"d', "semi;colon", "slash/ed", "ünï"]
    for sent in safe:
        for url in (f"{base}/healthz", f"{base}/api/v0/fpe/def_keys"):
            response = httpx.get(url, headers={"X-Request-Id": sent}, timeout=30)
            assert response.headers["x-request-id"] == sent
    for sent in unsafe:
        for url in (f"{base}/healthz", f"{base}/api/v0/fpe/def_keys"):
            headers = {b"X-Request-Id": sent.encode()}
            response = httpx.get(url, headers=headers, timeout=30)
            assert FRESH_ID.fullmatch(response.headers["x-request-id"]), sent
    # An empty one is no id either.
    empty = httpx.get(f"{base}/healthz", headers={"X-Request-Id": ""}, timeout=30)
    assert FRESH_ID.fullmatch(empty.headers["x-request-id"])


def test_the_request_id_is_in_the_access_log_line(setup: Setup) -> None:
    """Each surface's access line names its request id: the caller's, or the one made."""
    caller = "probe-" + uuid.uuid4().hex
    answered = httpx.get(
        f"{setup.server.url}/healthz", headers={"X-Request-Id": caller}, timeout=30
    )
    assert answered.headers["x-request-id"] == caller
    made = setup.scim("GET", "/Users")
    for request_id, path in (
        (caller, "/healthz"),
        (made.headers["x-request-id"], f"/{setup.account.customer_id}/api/v3/scim/Users"),
    ):
        access = [r for r in logged(setup.server, request_id) if r.get("event") == "request"]
        assert [r["path"] for r in access] == [path]
