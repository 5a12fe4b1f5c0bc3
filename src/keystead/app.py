"""The ASGI application: every adapter mounted on one origin, errors rendered in one place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from keystead import __version__, logs
from keystead.admin.router import build_router
from keystead.console import serve as console
from keystead.crypto import passwords
from keystead.dataplane.api import DataPlaneDispatch
from keystead.dataplane.service import DataPlane
from keystead.dataplane.usage_limits import UsageLimits
from keystead.idp.keysets import KeySets
from keystead.runtime import Runtime, open_runtime
from keystead.scim import api as scim_api
from keystead.settings import Settings
from keystead.sso import api as sso_api
from keystead.sso.exchange import Exchange
from keystead.web import errors, health
from keystead.web.middleware import AccessLog, BodyLimit, RejectNonText

log = logs.get_logger("keystead.app")


def build_app(runtime: Runtime) -> ASGIApp:
    """The app for an already-open installation: the data-plane dispatcher in front of the
    admin application (FastAPI: admin API, OpenAPI, health, the console and /docs)."""

    settings = runtime.settings
    passwords.prepare()
    keysets = KeySets(
        runtime.outbound,  # the outbound policy: no redirects, no private addresses, a deadline
        ttl=settings.jwks_cache_seconds,
        cooldown=settings.jwks_refetch_cooldown_seconds,
        wait=settings.idp_http_timeout_seconds,
    )

    def flush_counts() -> None:
        sso.unverified.flush()
        usage_limits.flush()

    async def flush_every(seconds: float) -> None:
        # Counts written in batches (refused sign-in tokens, refused usage reports) reach
        # the database within this long even when no further refusal comes to carry them.
        while True:
            await asyncio.sleep(seconds)
            try:
                await run_in_threadpool(flush_counts)
            except Exception as exc:  # the next round tries again
                log.error("count_flush_failed", exc_info=exc)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        flusher = asyncio.create_task(flush_every(10.0))
        yield
        flusher.cancel()
        flush_counts()  # counts not written yet
        keysets.close()
        runtime.close()

    app = FastAPI(
        title="Keystead",
        version=__version__,
        summary="Self-hosted data keys for the Ubiq clients, with Entra ID integration",
        lifespan=lifespan,
        # /docs is the console package's own Swagger UI page (local assets, strict CSP).
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    errors.install(app)
    app.include_router(health.router)
    app.include_router(build_router())
    app.include_router(scim_api.build_router(runtime))
    console.install(app)
    app.add_middleware(RejectNonText)
    app.add_middleware(BodyLimit, limit=runtime.settings.max_body_bytes)
    app.add_middleware(AccessLog)
    app.add_middleware(console.SecurityHeaders)  # outermost: on every answer, refusals too
    plane = DataPlane(
        runtime.master,
        skew_seconds=runtime.settings.signature_skew_seconds,
        dialect=runtime.db.engine.dialect,
    )
    usage_limits = UsageLimits(
        runtime.db,
        per_minute=settings.usage_entries_per_minute,
        per_day=settings.usage_entries_per_day,
        per_account_day=settings.usage_entries_per_account_day,
    )
    sso = sso_api.SsoDispatch(app, runtime, Exchange(runtime.master, keysets))
    scim = scim_api.ScimDispatch(sso, runtime, elsewhere=(sso_api.PATH,))
    return DataPlaneDispatch(scim, runtime, plane, usage_limits)


def create_app() -> ASGIApp:
    """Factory for uvicorn (``keystead.app:create_app``): settings from the environment."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return build_app(open_runtime(settings, create=False))
