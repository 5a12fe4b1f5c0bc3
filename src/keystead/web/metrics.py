"""Prometheus metrics at ``/metrics`` (``KEYSTEAD_METRICS=true``; off, the path is unknown).

The series are listed in the README (Metrics); all of them are this process's own (each
uvicorn worker has its registry). Requests are counted by the route's *pattern*, never the
path asked, so no id becomes a label value. Counts kept as plain numbers where they happen
(key-set fetches, the pool, caches) are read only when scraped.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from pydantic import SecretStr
from sqlalchemy import Engine
from starlette.routing import BaseRoute

from keystead import caching
from keystead.crypto import tokens
from keystead.errors import KeysteadError, MethodNotAllowed, Unauthenticated
from keystead.idp.jwks import JwksStats
from keystead.web.edge import METHODS, UNMATCHED, Answer, Incoming, Route, fixed
from keystead.web.executor import Cost

PATH = "/metrics"
_METHODS = frozenset(METHODS)
# From a data-plane answer (a fraction of a millisecond) to a large SCIM listing.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS = [*(repr(bound) for bound in BUCKETS), "+Inf"]  # as Prometheus writes `le`
_REASON = re.compile(r"[a-z_]{1,40}")


def surface(route: str) -> str:
    """Which of Keystead's surfaces a route pattern belongs to."""
    if route.endswith("/api/v3/scim/sso"):
        return "sso"
    if "/api/v3/scim" in route:
        return "scim"
    if route.startswith("/api/admin/"):
        return "admin"
    if route.startswith(("/api/v0/", "/api/v3/")):
        return "dataplane"
    return "other"  # the console, /docs, health, /metrics, unknown paths


def outcome(status: int) -> str:
    return "succeeded" if status < 400 else "refused" if status < 500 else "failed"


@dataclass(slots=True)
class _Latency:
    """One (route, method)'s histogram: a count per bucket (not cumulative) and their sum."""

    # The last bucket: above every bound.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0


@dataclass(slots=True)
class _Series:
    """One (route, method, status): its count, its histogram, what else it counts."""

    surface: str
    latency: _Latency
    scim: tuple[str, str] | None  # (operation, outcome) when a SCIM operation
    sso: bool  # an SSO exchange (its outcome read from the answer)
    count: int = 0


class Metrics(Collector):
    """This process's registry, and the requests' series as plain numbers: the edge adds to
    them on the event loop (no lock, no call into the client library), a scrape reads them
    (from a thread: it copies each table first, which the interpreter does at once)."""

    def __init__(self, *, scim_operations: Mapping[tuple[str, str], str]) -> None:
        # No `_created` sample beside each series: Prometheus does not need them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=False)
        self._scim_operations = scim_operations
        self._series: dict[tuple[str, str, int], _Series] = {}
        self._latencies: dict[tuple[str, str], _Latency] = {}
        self._scim: dict[tuple[str, str], int] = {}
        self._sso: dict[tuple[str, str], int] = {}
        self._admin_routes: dict[int, str] = {}
        self.registry.register(self)
        ProcessCollector(registry=self.registry)

    def name_routes(self, routes: Sequence[BaseRoute]) -> None:
        """Learn the admin application's route patterns in full: FastAPI keeps an included
        router's routes under their own path, without the prefixes they are served at."""
        try:
            from fastapi.routing import iter_route_contexts
        except ImportError:  # a FastAPI that copies included routes, prefix and all
            return
        self._admin_routes = {
            id(found.original_route): found.path_format or ""
            for found in iter_route_contexts(routes)
        }

    def route_of(self, route: object) -> str:
        """The pattern of the admin application's route that answered (``scope["route"]``)."""
        named = self._admin_routes.get(id(route))
        if named:
            return named
        path = getattr(route, "path", None)  # a mount: its prefix
        return path if isinstance(path, str) and path else UNMATCHED

    def watch(self, collector: Collector) -> None:
        """Add a collector read at scrape time."""
        self.registry.register(collector)

    def observe(self, route: str, method: str, status: int, seconds: float, body: bytes) -> None:
        """One answered request (on the event loop only). ``body`` is read for an SSO
        exchange's refusal reason only."""
        if method not in _METHODS:
            method = "other"
        key = (route, method, status)
        series = self._series.get(key) or self._new_series(key)
        series.count += 1
        latency = series.latency
        latency.buckets[bisect_left(BUCKETS, seconds)] += 1
        latency.total += seconds
        if series.scim is not None:
            self._scim[series.scim] += 1
        elif series.sso:
            self._exchange(status, body)

    def _new_series(self, key: tuple[str, str, int]) -> _Series:
        route, method, status = key
        where = surface(route)
        latency = self._latencies.setdefault((route, method), _Latency())
        operation = self._scim_operations.get((route, method)) if where == "scim" else None
        scim = None if operation is None else (operation, outcome(status))
        if scim is not None:
            self._scim.setdefault(scim, 0)
        sso = where == "sso" and method == "POST"
        series = self._series[key] = _Series(where, latency, scim, sso)
        return series

    def _exchange(self, status: int, body: bytes) -> None:
        key = ("granted", "none") if status < 400 else (outcome(status), _reason(body))
        self._sso[key] = self._sso.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "keystead_http_requests",
            "HTTP requests answered, by surface, route pattern, method and status.",
            labels=["surface", "route", "method", "status"],
        )
        for (route, method, status), series in self._series.copy().items():
            requests.add_metric([series.surface, route, method, str(status)], series.count)
        yield requests
        latency = HistogramMetricFamily(
            "keystead_http_request_duration_seconds",
            "Time from the request's routing to its answer sent, by route pattern.",
            labels=["surface", "route", "method"],
        )
        for (route, method), found in self._latencies.copy().items():
            cumulative = accumulate(found.buckets.copy())
            buckets = [(bound, float(n)) for bound, n in zip(_BOUNDS, cumulative, strict=True)]
            latency.add_metric([surface(route), route, method], buckets, found.total)
        yield latency
        yield _counted(
            "keystead_scim_operations",
            "SCIM operations by operation and outcome (succeeded, refused: 4xx, failed: 5xx).",
            ["operation", "outcome"],
            self._scim,
        )
        yield _counted(
            "keystead_sso_exchanges",
            "SSO exchanges by outcome (granted, refused, failed) and the reason given.",
            ["outcome", "reason"],
            self._sso,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _reason(body: bytes) -> str:
    """The ``reason`` of an SSO refusal's ``{message, reason}``: one of the exchange's own
    words, or ``other`` (a label value never comes from the caller)."""
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return "other"
    return reason if isinstance(reason, str) and _REASON.fullmatch(reason) else "other"


# --- read at scrape time --------------------------------------------------------------------


class CacheCounts(Collector):
    """Every cache's hits, misses and size (``caching.py``), summed by name and kind."""

    def collect(self) -> Iterator[Metric]:
        totals: dict[tuple[str, str], list[int]] = {}
        for cache in caching.every_cache():
            found = totals.setdefault((cache.name, cache.kind), [0, 0, 0])
            found[0] += cache.hits
            found[1] += cache.misses
            found[2] += cache.size()
        labels = ["cache", "kind"]
        hits = CounterMetricFamily("keystead_cache_hits", "Cache lookups answered.", labels=labels)
        misses = CounterMetricFamily(
            "keystead_cache_misses", "Cache lookups that had to load.", labels=labels
        )
        entries = GaugeMetricFamily("keystead_cache_entries", "Entries held.", labels=labels)
        for (name, kind), (hit, miss, size) in sorted(totals.items()):
            hits.add_metric([name, kind], hit)
            misses.add_metric([name, kind], miss)
            entries.add_metric([name, kind], size)
        yield from (hits, misses, entries)


class KeySetFetches(Collector):
    """The identity providers' key-set fetches (``idp/jwks.py``), this process's totals."""

    def __init__(self, stats: JwksStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "keystead_idp_keyset_fetches",
            "Key-set fetches from identity providers that succeeded.",
            value=self.stats.fetches,
        )
        yield CounterMetricFamily(
            "keystead_idp_keyset_fetch_failures",
            "Key-set fetches from identity providers that failed.",
            value=self.stats.failures,
        )
        yield CounterMetricFamily(
            "keystead_idp_keyset_unknown_kid_refreshes",
            "Successful key-set fetches made for a token naming an unknown key id.",
            value=self.stats.unknown_kid_refreshes,
        )


class DatabasePool(Collector):
    """The SQLAlchemy connection pool: its size, connections in use and idle in it. (On
    SQLite the data plane's reads use each thread's own reader, not the pool.)"""

    def __init__(self, engine: Engine) -> None:
        self.pool = engine.pool

    def collect(self) -> Iterator[Metric]:
        for name, help_text, read in (
            ("keystead_db_pool_size", "Connections the pool keeps open.", "size"),
            ("keystead_db_pool_checked_out", "Pooled connections in use.", "checkedout"),
            ("keystead_db_pool_checked_in", "Open pooled connections idle.", "checkedin"),
        ):
            method = getattr(self.pool, read, None)
            if method is not None:  # a QueuePool has all three
                yield GaugeMetricFamily(name, help_text, value=float(method()))


# --- the scrape -----------------------------------------------------------------------------


class Plain:
    """``{"message": …}``, as the admin API answers, with the header a 401 or 405 needs."""

    def refusal(self, exc: KeysteadError) -> Answer:
        headers: list[tuple[bytes, bytes]] = []
        if exc.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="metrics"'))
        elif isinstance(exc, MethodNotAllowed):
            headers.append((b"allow", ", ".join(exc.allowed).encode()))
        return Answer(exc.status, json.dumps({"message": exc.message}).encode(), headers=headers)


PLAIN = Plain()
SCRAPE_REFUSED = (
    "a scrape of /metrics needs the metrics token (KEYSTEAD_METRICS_TOKEN) as "
    "`Authorization: Bearer <token>`"
)


def scrape_route(metrics: Metrics, token: SecretStr | None) -> Route:
    """``GET /metrics``, behind ``token`` when one is set (compared in constant time)."""
    expected = token.get_secret_value() if token is not None else None

    def scrape(incoming: Incoming) -> Answer:
        if expected is not None:
            scheme, _, presented = (incoming.header("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not tokens.same(presented.strip(), expected):
                raise Unauthenticated(SCRAPE_REFUSED)
        return Answer(200, metrics.render(), CONTENT_TYPE_LATEST.encode())

    # Rendering grows with the series: on a thread, never holding the event loop.
    return Route(("GET",), PATH, PLAIN, scrape, fixed(Cost.GROWS))


def _counted(
    name: str, documentation: str, labels: list[str], counts: dict[tuple[str, str], int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in sorted(counts.copy().items()):
        family.add_metric(list(values), count)
    return family
