"""HTTP methods and paths on a live server: HEAD is GET without its body (health
probes ask with it), a 405 says in ``Allow`` which methods the path takes, and no answer
points at a URL built from what the caller sent (its Host header, its spelling of an id)."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from keystead.storage.models import ProvisioningEvent
from tests.conftest import LiveServer
from tests.support.scim import CORE_GROUP, ERROR, Scim


def test_health_probes_may_ask_with_head(live_server: LiveServer) -> None:
    for path in ("/healthz", "/readyz"):
        head = httpx.head(live_server.url + path, timeout=10)
        assert head.status_code == 200, path
        assert head.content == b""
        assert int(head.headers["content-length"]) == len(httpx.get(live_server.url + path).content)


def test_an_admin_api_405_names_the_allowed_methods(live_server: LiveServer) -> None:
    refused = httpx.delete(live_server.url + "/healthz", timeout=10)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    assert refused.json()["message"] == "method DELETE is not allowed on /healthz"
    listing = httpx.put(live_server.url + "/api/admin/v1/api-keys", timeout=10)
    assert listing.status_code == 405
    assert listing.headers["allow"] == "GET, HEAD, POST"
    post_only = httpx.head(live_server.url + "/api/admin/v1/me/password", timeout=10)
    assert post_only.status_code == 405
    assert post_only.headers["allow"] == "POST"


def test_the_admin_api_answers_head_as_get(
    live_server: LiveServer, admin_api: httpx.Client
) -> None:
    get, head = admin_api.get("/datasets"), admin_api.head("/datasets")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == get.headers["content-length"]
    assert httpx.head(live_server.url + "/api/admin/v1/datasets", timeout=10).status_code == 401
    logged = [r for r in live_server.records() if r.get("event") == "request"]
    assert any(r["method"] == "HEAD" and r["path"] == "/api/admin/v1/datasets" for r in logged)


def test_scim_answers_head_as_get_and_its_read_only_paths_name_get(scim: Scim) -> None:
    get = scim.client.get("/ServiceProviderConfig")
    head = scim.client.head("/ServiceProviderConfig")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]

    refused = scim.client.post("/Schemas", json={})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    assert refused.json()["schemas"] == [ERROR]
    with scim.runtime.db.read() as session:
        statuses = session.scalars(
            select(ProvisioningEvent.status).where(ProvisioningEvent.account_id == scim.account_id)
        )
        assert 405 in list(statuses)  # the refused attempt is in the provisioning log


def test_an_edge_405_lists_head_beside_get(scim: Scim) -> None:
    refused = scim.client.delete("/ServiceProviderConfig")
    assert refused.status_code == 405
    assert {"GET", "HEAD"} <= {m.strip() for m in refused.headers["allow"].split(",")}


def test_a_slash_too_many_is_404_never_a_redirect_to_the_callers_host(
    live_server: LiveServer,
) -> None:
    answer = httpx.get(
        live_server.url + "/api/admin/v1/me/", headers={"Host": "evil.example"}, timeout=10
    )
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.json()["message"] == "no such endpoint: GET /api/admin/v1/me/"


def test_scim_locations_name_the_account_as_keystead_writes_its_id(scim: Scim) -> None:
    """Any spelling of the customer id names the account; the answer's URLs use one."""
    spelled = scim.account_id.hex.upper()
    base = scim.base.replace(str(scim.account_id), spelled)
    created = scim.client.post(
        f"{base}/Groups",
        json={"schemas": [CORE_GROUP], "displayName": "Spelled"},
    )
    assert created.status_code == 201, created.text
    canonical = f"/{scim.account_id}/api/v3/scim/Groups/{created.json()['id']}"
    assert created.headers["location"].endswith(canonical)
    assert created.json()["meta"]["location"].endswith(canonical)
