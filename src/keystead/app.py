"""The ASGI application: every adapter mounted on one origin, errors rendered in one place."""

from __future__ import annotations

import asyncio
import gc
import random
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from keystead import __version__, logs, retention
from keystead.admin.router import build_router
from keystead.audit import Actor
from keystead.console import serve as console
from keystead.crypto import passwords
from keystead.dataplane.api import DataPlaneEndpoints
from keystead.dataplane.service import DataPlane
from keystead.dataplane.usage_limits import UsageLimits
from keystead.idp.keysets import KeySets
from keystead.runtime import Runtime, open_runtime
from keystead.scim import api as scim_api
from keystead.settings import Settings
from keystead.sso import api as sso_api
from keystead.sso.exchange import Exchange
from keystead.sso.unverified import UnverifiedRefusals
from keystead.web import errors, health
from keystead.web.edge import Edge
from keystead.web.executor import Executor
from keystead.web.middleware import AdminRequests

log = logs.get_logger("keystead.app")


async def every(
    seconds: float, work: Callable[[], None], failed: str, *, first: float | None = None
) -> None:
    """Run ``work`` on a thread every ``seconds`` (the first time after ``first``); a
    failure is logged as ``failed`` and the next round tries again."""
    await asyncio.sleep(seconds if first is None else first)
    while True:
        try:
            await run_in_threadpool(work)
        except Exception as exc:
            log.error(failed, exc_info=exc)
        await asyncio.sleep(seconds)


def build_app(runtime: Runtime) -> ASGIApp:
    """The app for an already-open installation: the edge (the data plane, SCIM and the SSO
    exchange) in front of the admin application (FastAPI: admin API, OpenAPI, health, the
    console and /docs)."""

    settings = runtime.settings
    passwords.prepare()
    keysets = KeySets(
        runtime.outbound,  # the outbound policy: no redirects, no private addresses, a deadline
        ttl=settings.jwks_cache_seconds,
        cooldown=settings.jwks_refetch_cooldown_seconds,
        wait=settings.idp_http_timeout_seconds,
    )

    def flush_counts() -> None:
        unverified.flush()
        usage_limits.flush()

    def prune() -> None:
        deleted = retention.prune(runtime.db, settings, actor=Actor.system(), pause=0.05)
        if deleted:
            log.info("pruned", **deleted)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Counts written in batches (refused sign-in tokens, refused usage reports) reach
        # the database within 10 s even when no further refusal comes to carry them.
        chores = [asyncio.create_task(every(10.0, flush_counts, "count_flush_failed"))]
        if interval := settings.prune_interval_seconds:
            # Nodes started together prune at different moments; pruning twice is harmless.
            first = interval * random.uniform(0.1, 1.0)  # noqa: S311
            chores.append(asyncio.create_task(every(interval, prune, "prune_failed", first=first)))
        # What exists at start-up (modules, the app, compiled statements) lives as long as
        # the process: out of the collector's sight, a full collection, which holds every
        # thread, scans only what requests made since.
        gc.collect()
        gc.freeze()
        # Work that grows runs on threads; the event loop, answering point requests, waits
        # for the interpreter lock at most this long each time it wants it back (the
        # default is 5 ms, paid several times per request while a thread computes).
        sys.setswitchinterval(0.001)
        yield
        for chore in chores:
            chore.cancel()
        flush_counts()  # counts not written yet
        runtime.close()

    app = FastAPI(
        title="Keystead",
        version=__version__,
        summary="Self-hosted data keys for the Ubiq clients, with Entra ID integration",
        lifespan=lifespan,
        # /docs is the console package's own Swagger UI page (local assets, strict CSP).
        docs_url=None,
        redoc_url=None,
        # A path with a slash too many is a 404, not a redirect: Starlette would build the
        # Location from the caller's Host header, and send a POST there again.
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    errors.install(app)
    app.include_router(health.router)
    app.include_router(build_router())
    console.install(app)
    app.add_middleware(AdminRequests, limit=settings.max_body_bytes)
    app.add_middleware(console.SecurityHeaders)  # outermost: on every answer, refusals too
    dialect = runtime.db.engine.dialect
    plane = DataPlane(runtime.master, skew_seconds=settings.signature_skew_seconds, dialect=dialect)
    usage_limits = UsageLimits(
        runtime.db,
        per_minute=settings.usage_entries_per_minute,
        per_day=settings.usage_entries_per_day,
        per_account_day=settings.usage_entries_per_account_day,
    )
    unverified = UnverifiedRefusals(runtime.db)
    exchange = Exchange(runtime.master, keysets, runtime.sign_in_log, dialect=dialect)
    # One table for every non-admin surface; the SSO exchange's path comes before SCIM's
    # patterns (a path belongs to the first pattern that matches it).
    table = [
        *sso_api.routes(runtime, exchange, unverified),
        *scim_api.routes(runtime),
        *DataPlaneEndpoints(runtime, plane, usage_limits).routes(),
    ]
    metrics = None
    if settings.metrics:
        from keystead.web import metrics as prometheus  # imported only when switched on

        metrics = prometheus.Metrics(scim_operations=scim_api.operations())
        metrics.name_routes(app.routes)
        metrics.watch(prometheus.CacheCounts())
        metrics.watch(prometheus.KeySetFetches(keysets.stats))
        metrics.watch(prometheus.DatabasePool(runtime.db.engine))
        table.append(prometheus.scrape_route(metrics, settings.metrics_token))
    return Edge(app, table, Executor(runtime.db), limit=settings.max_body_bytes, metrics=metrics)


def create_app() -> ASGIApp:
    """Factory for uvicorn (``keystead.app:create_app``): settings from the environment."""
    settings = Settings.load()
    logs.configure(settings.log_level, settings.log_format)
    return build_app(open_runtime(settings, create=False))
