"""The web console and the API docs page, served by Keystead itself on the API's origin.

The console is static files (HTML, CSS, ES modules and vendored libraries) that talk only
to the admin API; nothing is built on the user's machine and nothing comes from a CDN.
Every answer of the admin application carries the security headers below: a strict
Content-Security-Policy (no inline script, no eval, nothing from elsewhere), no framing,
no MIME sniffing, no referrer, and ``no-store`` on the admin API so that a secret shown
once is not kept in a cache.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE = Path(__file__).with_name("static")
APIDOCS = Path(__file__).with_name("apidocs")

CONSOLE_PATH = "/console"  # the console's assets
APIDOCS_PATH = "/docs"

CONSOLE_CSP = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
# Swagger UI draws its icons from data: URIs in its stylesheet and sets style attributes.
APIDOCS_CSP = CONSOLE_CSP + "; img-src 'self' data:; style-src 'self' 'unsafe-inline'"

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class SecurityHeaders:
    """Pure ASGI: the headers every answer of the admin application carries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = APIDOCS_CSP if path.startswith(APIDOCS_PATH) else CONSOLE_CSP
        no_store = path.startswith("/api/admin/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("content-security-policy", csp)
                if no_store:
                    headers["cache-control"] = "no-store"
                elif "cache-control" not in headers:
                    # Assets are not fingerprinted: revalidate (ETag) so an upgrade shows.
                    headers["cache-control"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Serve the console at ``/`` and the API docs at ``/docs`` (local Swagger UI). The
    application adds :class:`SecurityHeaders` outermost, so that refusals made by the other
    middleware (413, a NUL) carry the headers too."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(CONSOLE / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(CONSOLE / "favicon.svg", media_type="image/svg+xml")

    @app.get(APIDOCS_PATH, include_in_schema=False)
    def apidocs() -> FileResponse:
        return FileResponse(APIDOCS / "index.html", media_type="text/html")

    @app.get(APIDOCS_PATH + "/", include_in_schema=False)
    def apidocs_slash() -> RedirectResponse:
        return RedirectResponse(APIDOCS_PATH)

    app.mount(CONSOLE_PATH, StaticFiles(directory=CONSOLE), name="console")
    app.mount(APIDOCS_PATH + "/assets", StaticFiles(directory=APIDOCS), name="apidocs")
