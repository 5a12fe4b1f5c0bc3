"""The live server answers on both engines."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer


def test_readyz_reports_the_engine(live_server: LiveServer, engine_name: str) -> None:
    """/readyz names the database engine it reached."""
    body = httpx.get(f"{live_server.url}/readyz").json()
    assert body == {"status": "ok", "database": engine_name}


def test_admin_api_lists_datasets_of_a_fresh_account(admin_api: httpx.Client) -> None:
    """A fresh account has no datasets."""
    response = admin_api.get("/datasets")
    assert response.status_code == 200
    assert response.json() == []
