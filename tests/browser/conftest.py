"""The console in a real browser: Debian's Chromium driven by Playwright against the live
server, with axe-core's accessibility checks on every page.

Never ``playwright install``: it downloads a browser build, which cannot be fetched here;
Playwright drives the system's ``chromium`` instead (``.ci/run`` installs it). Each test
gets a fresh browser context; anything the page reports as an error (a script exception,
a Content-Security-Policy refusal) fails the test, except a failed request that the test
itself provoked (a 401 before signing in, a refused write).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.conftest import LiveServer

CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",  # this machine refuses outbound connections
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Path(__file__).resolve().parent.parent / "support" / "vendor" / "axe.min.js"
# Chromium logs every failed fetch as a console error; a test that expects a refusal
# provokes one on purpose. Script errors and CSP refusals are never expected.
EXPECTED = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@dataclass
class Console:
    """One browser tab on the console, and what it has seen go wrong."""

    page: Page
    base: str
    shots: Path
    engine: str
    problems: list[str] = field(default_factory=list)

    def open(self, route: str = "") -> None:
        self.page.goto(f"{self.base}/#{route}" if route else f"{self.base}/")

    def go(self, route: str) -> None:
        """Follow an in-app link (a hash change), as a click would."""
        self.page.evaluate("(route) => { window.location.hash = route; }", route)

    def sign_in(self, email: str, password: str) -> None:
        self.page.get_by_label("Email", exact=True).fill(email)
        self.page.get_by_label("Password", exact=True).fill(password)
        self.page.get_by_role("button", name="Sign in").click()

    def choose_password(self, password: str) -> None:
        self.page.get_by_role("heading", name="Choose a new password").wait_for()
        self.page.get_by_label("New password", exact=True).fill(password)
        self.page.get_by_label("New password again", exact=True).fill(password)
        self.page.get_by_role("button", name="Save password").click()

    def heading(self, name: str) -> None:
        self.page.get_by_role("heading", name=name, exact=True, level=1).wait_for()

    def axe(self, what: str) -> None:
        """axe-core on the page as it is now: no serious or critical WCAG 2 A/AA violation."""
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            self.page.evaluate(AXE.read_text())
        result: dict[str, Any] = self.page.evaluate(
            "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', "
            "'wcag21a', 'wcag21aa']}})"
        )
        bad = [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"][:5]],
            }
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, f"axe on {what}:\n{json.dumps(bad, indent=2)}"

    def shot(self, name: str, *, full_page: bool = True) -> None:
        """A screenshot for the README's tour (written on one engine only: the same page)."""
        if self.engine == "sqlite":
            self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=full_page)

    def csrf_free_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A write from the page's own origin with the session cookie but no CSRF token."""
        answer: dict[str, Any] = self.page.evaluate(
            """async ([path, body]) => {
                const r = await fetch(path, {method: 'POST', credentials: 'same-origin',
                  headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
                return {status: r.status, body: await r.json()};
            }""",
            [path, body],
        )
        return answer


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """KEYSTEAD_SCREENSHOTS=docs/screenshots writes the README's pictures; else a tmp dir."""
    wanted = os.environ.get("KEYSTEAD_SCREENSHOTS")
    target = Path(wanted) if wanted else tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


def _open_console(
    request: pytest.FixtureRequest,
    browser: Browser,
    live_server: LiveServer,
    screenshots: Path,
    engine: str,
    viewport: ViewportSize,
) -> Iterator[Console]:
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = Console(page, live_server.url, screenshots, engine)

    def noted(message: Any) -> None:
        if message.type == "error" and not EXPECTED.search(message.text):
            console.problems.append(f"console: {message.text}")

    page.on("console", noted)
    page.on("pageerror", lambda error: console.problems.append(f"page error: {error}"))
    yield console
    if request.node.stash.get(FAILED, False):
        # What the page looked like when the test failed, for whoever reads the report.
        where = Path(request.config.rootpath) / ".pytest_cache" / "browser-failures"
        where.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]", "_", request.node.name)
        page.screenshot(path=str(where / f"{name}.png"), full_page=True)
        print(f"screenshot of the failure: {where / name}.png")
    context.close()
    assert not console.problems, "\n".join(console.problems)


@pytest.fixture
def console(
    request: pytest.FixtureRequest,
    browser: Browser,
    live_server: LiveServer,
    screenshots: Path,
    engine_name: str,
) -> Iterator[Console]:
    yield from _open_console(request, browser, live_server, screenshots, engine_name, DESKTOP)


@pytest.fixture
def phone(
    request: pytest.FixtureRequest,
    browser: Browser,
    live_server: LiveServer,
    screenshots: Path,
    engine_name: str,
) -> Iterator[Console]:
    yield from _open_console(request, browser, live_server, screenshots, engine_name, PHONE)
