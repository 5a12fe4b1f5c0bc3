"""The SCIM conformance suite scim2-tester (through scim2-cli) against the live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keystead.accounts import service as accounts
from keystead.idp import service as idp
from keystead.runtime import Runtime
from tests import factories as f
from tests.conftest import LiveServer
from tests.factories import ACTOR


def test_scim2_tester_passes_every_check(live_server: LiveServer, runtime: Runtime) -> None:
    """Every check of `scim test` succeeds (discovery, CRUD, PUT, PATCH add/remove/replace,
    attribute filtering, .search, error objects), and the command exits 0."""
    with runtime.db.write() as s:
        account = accounts.get_account(s, f.account(s))
        idp.set_enabled(s, account, True, actor=ACTOR, master=runtime.master)
        token = idp.rotate_scim_token(s, account, actor=ACTOR).token
    scim = Path(sys.executable).parent / "scim"
    result = subprocess.run(
        [str(scim), "--url", f"{live_server.url}/{account.id}/api/v3/scim", "test"],
        env={**os.environ, "SCIM_CLI_HEADERS": f"Authorization: Bearer {token}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = result.stdout.splitlines()
    statuses = [line.split()[0] for line in lines if line and not line.startswith((" ", "Perf"))]
    problems = [
        line for line in lines if line.startswith(("ERROR", "FAILED", "SKIPPED", "CRITICAL"))
    ]
    assert problems == [], result.stdout[-4000:]
    assert statuses.count("SUCCESS") >= 130, result.stdout[-2000:]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
