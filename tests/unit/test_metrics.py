"""The metrics' own arithmetic, in process: histogram buckets and their bounds, labels kept
bounded (methods, SSO reasons), SCIM operations named by route and method, the surfaces,
cache counts summed by name, the pool read when scraped."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from keystead.caching import Expiring, Immutable
from keystead.idp.jwks import JwksStats
from keystead.web.metrics import CacheCounts, DatabasePool, KeySetFetches, Metrics, surface

SSO = "/{customer_id}/api/v3/scim/sso"
USERS = "/{customer_id}/api/v3/scim/Users"


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def test_the_histogram_counts_each_duration_in_its_bucket_and_above() -> None:
    metrics = Metrics(scim_operations={})
    for seconds in (0.0004, 0.0005, 0.0006, 0.3, 20.0):
        metrics.observe("/api/v0/fpe/key", "GET", 200, seconds, b"")
    samples = _samples(metrics)
    where = {"surface": "dataplane", "route": "/api/v0/fpe/key", "method": "GET"}

    def bucket(le: str) -> float:
        return samples[("keystead_http_request_duration_seconds_bucket", _labels(**where, le=le))]

    assert [bucket(le) for le in ("0.0005", "0.001", "0.25", "0.5", "10.0", "+Inf")] == [
        2,
        3,
        3,
        4,
        4,
        5,
    ]
    assert samples[("keystead_http_request_duration_seconds_count", _labels(**where))] == 5
    total = samples[("keystead_http_request_duration_seconds_sum", _labels(**where))]
    assert abs(total - 20.3015) < 1e-9
    requests = ("keystead_http_requests_total", _labels(**where, status="200"))
    assert samples[requests] == 5


def test_statuses_are_counted_apart_and_share_the_routes_histogram() -> None:
    metrics = Metrics(scim_operations={})
    metrics.observe("/api/v0/fpe/key", "GET", 200, 0.001, b"")
    metrics.observe("/api/v0/fpe/key", "GET", 401, 0.001, b"")
    samples = _samples(metrics)
    where = {"surface": "dataplane", "route": "/api/v0/fpe/key", "method": "GET"}
    assert samples[("keystead_http_requests_total", _labels(**where, status="401"))] == 1
    assert samples[("keystead_http_request_duration_seconds_count", _labels(**where))] == 2


def test_methods_outside_the_usual_few_are_one_label() -> None:
    metrics = Metrics(scim_operations={})
    for method in ("PROPFIND", "MKCOL", "GET"):
        metrics.observe("unmatched", method, 404, 0.001, b"")
    methods = {
        dict(labels)["method"]
        for name, labels in _samples(metrics)
        if name == "keystead_http_requests_total"
    }
    assert methods == {"other", "GET"}


def test_scim_operations_are_named_by_route_and_method() -> None:
    metrics = Metrics(scim_operations={(USERS, "POST"): "create user", (USERS, "GET"): "list"})
    metrics.observe(USERS, "POST", 201, 0.01, b"")
    metrics.observe(USERS, "POST", 409, 0.01, b"")
    metrics.observe(USERS, "POST", 500, 0.01, b"")
    metrics.observe(USERS, "DELETE", 405, 0.01, b"")  # no operation: counted as a request only
    samples = _samples(metrics)
    name = "keystead_scim_operations_total"
    assert {dict(labels)["outcome"]: v for (n, labels), v in samples.items() if n == name} == {
        "succeeded": 1,
        "refused": 1,
        "failed": 1,
    }


def test_sso_exchanges_count_outcomes_with_the_reason_given_and_never_a_callers_text() -> None:
    metrics = Metrics(scim_operations={})
    metrics.observe(SSO, "POST", 200, 0.01, b'{"public_value": "x"}')
    metrics.observe(SSO, "POST", 401, 0.01, b'{"message": "m", "reason": "expired"}')
    metrics.observe(SSO, "POST", 401, 0.01, b'{"message": "m", "reason": "expired"}')
    metrics.observe(SSO, "POST", 400, 0.01, b'{"reason": "Robert\'); DROP TABLE"}')
    metrics.observe(SSO, "POST", 500, 0.01, b"not json")
    metrics.observe(SSO, "GET", 405, 0.01, b'{"reason": "method_not_allowed"}')  # no exchange
    samples = _samples(metrics)
    counted = {
        (dict(labels)["outcome"], dict(labels)["reason"]): v
        for (name, labels), v in samples.items()
        if name == "keystead_sso_exchanges_total"
    }
    assert counted == {
        ("granted", "none"): 1,
        ("refused", "expired"): 2,
        ("refused", "other"): 1,
        ("failed", "other"): 1,
    }


def test_surfaces() -> None:
    assert surface(SSO) == "sso"
    assert surface(USERS + "/{resource_id}") == "scim"
    assert surface("/api/v0/fpe/def_keys") == "dataplane"
    assert surface("/api/v3/tracking/events") == "dataplane"
    assert surface("/api/admin/v1/api-keys/{ref}") == "admin"
    for other in ("/", "/healthz", "/metrics", "/console/{path}", "unmatched"):
        assert surface(other) == "other"


def test_caches_are_counted_by_the_module_that_made_them() -> None:
    first: Immutable[str, int] = Immutable(10)
    second: Immutable[str, int] = Immutable(10)
    named: Expiring[str, int] = Expiring(10, lambda: 0.0, name="unit-test-expiring")
    for cache in (first, second):
        cache.get_or_load("a", lambda: 1)
        cache.get_or_load("a", lambda: 1)
        cache.get_or_load("b", lambda: 2)
    named.put("a", 1, until=5.0)
    assert named.get("a") == 1
    assert named.get("b") is None
    families = {family.name: family for family in CacheCounts().collect()}

    def value(name: str, cache: str, kind: str) -> float:
        for sample in families[name].samples:
            if sample.labels == {"cache": cache, "kind": kind}:
                return sample.value
        raise AssertionError(f"no {name} for {cache}")

    here = "tests.unit.test_metrics"
    assert value("keystead_cache_hits", here, "immutable") == 2
    assert value("keystead_cache_misses", here, "immutable") == 4
    assert value("keystead_cache_entries", here, "immutable") == 4
    assert value("keystead_cache_hits", "unit-test-expiring", "expiring") == 1
    assert value("keystead_cache_misses", "unit-test-expiring", "expiring") == 1


def test_the_pool_and_key_set_fetches_are_read_when_scraped(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'pool.db'}", pool_size=3)
    metrics = Metrics(scim_operations={})
    stats = JwksStats()
    metrics.watch(DatabasePool(engine))
    metrics.watch(KeySetFetches(stats))
    with engine.connect():
        samples = _samples(metrics)
        assert samples[("keystead_db_pool_checked_out", frozenset())] == 1
    stats.fetches, stats.failures = 3, 2
    samples = _samples(metrics)
    assert samples[("keystead_db_pool_checked_out", frozenset())] == 0
    assert samples[("keystead_idp_keyset_fetches_total", frozenset())] == 3
    assert samples[("keystead_idp_keyset_fetch_failures_total", frozenset())] == 2
