"""Data-plane throughput: `fpe/def_keys`, `fpe/key` and `encryption/key` against the same
run's bare Starlette "hello" (the ceiling), on the embedded default (SQLite).

    .venv/bin/python -m bench.dataplane [--seconds 10] [--rounds 3] [--metrics] [--no-report]

Each request is signed once by the official client's own signer (ubiq_security.auth) and
replayed by wrk with 8 keep-alive connections; endpoints alternate within each round so
the noisy machine affects all alike. Results go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import requests
from ubiq_security.auth import http_auth

from bench import common

TARGET_SHARE = 0.40
TARGET_P99_MS = 25.0


def signed(method: str, url: str, papi: str, sapi: str, body: bytes = b"") -> dict[str, str]:
    prepared = requests.Request(
        method, url, data=body or None, auth=http_auth(papi, sapi)
    ).prepare()
    return {k: v if isinstance(v, str) else v.decode() for k, v in prepared.headers.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-report", action="store_true", help="don't write PERFORMANCE.md")
    parser.add_argument(
        "--metrics", action="store_true", help="serve with KEYSTEAD_METRICS=true (its overhead)"
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="keystead-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env |= {"KEYSTEAD_DATA_DIR": str(data_dir)}
    if args.metrics:
        env |= {"KEYSTEAD_METRICS": "true"}
    common.keystead_cli(env, "init")
    common.keystead_cli(
        env, "dataset", "create", "SSN", "--type", "structured", "--template", "ssn"
    )
    common.keystead_cli(env, "dataset", "rotate-key", "SSN")  # def_keys then wraps two keys
    common.keystead_cli(env, "dataset", "create", "Notes", "--type", "unstructured")
    key = common.keystead_cli(
        env, "api-key", "create", "bench", "--dataset", "SSN", "--dataset", "Notes"
    )
    papi, sapi = str(key["access_key_id"]), str(key["secret_signing_key"])

    port = common.free_port()
    server = common.start(
        [str(common.BIN / "keystead"), "serve", "--port", str(port)], env, port, "/healthz"
    )
    hello = common.start_hello()
    base = server.url
    query = f"ffs_name=SSN&papi={papi}"
    body = json.dumps({"uses": 1}).encode()
    cases: dict[str, Callable[[], tuple[str, str, dict[str, str], bytes]]] = {
        "hello (ceiling)": lambda: (f"{hello.url}/hello", "GET", {}, b""),
        "GET /api/v0/fpe/def_keys": lambda: (
            f"{base}/api/v0/fpe/def_keys?{query}",
            "GET",
            signed("GET", f"{base}/api/v0/fpe/def_keys?{query}", papi, sapi),
            b"",
        ),
        "GET /api/v0/fpe/key": lambda: (
            f"{base}/api/v0/fpe/key?{query}",
            "GET",
            signed("GET", f"{base}/api/v0/fpe/key?{query}", papi, sapi),
            b"",
        ),
        "POST /api/v0/encryption/key": lambda: (
            f"{base}/api/v0/encryption/key",
            "POST",
            signed("POST", f"{base}/api/v0/encryption/key", papi, sapi, body),
            body,
        ),
    }
    results: dict[str, list[common.Result]] = {name: [] for name in cases}
    try:
        for make in cases.values():  # warm-up: caches, connection pools, JIT-free paths
            url, method, headers, payload = make()
            common.wrk(url, method=method, headers=headers, body=payload, seconds=2)
        for _ in range(args.rounds):
            for name, make in cases.items():
                url, method, headers, payload = make()  # fresh signature: `created` stays in window
                results[name].append(
                    common.wrk(
                        url, method=method, headers=headers, body=payload, seconds=args.seconds
                    )
                )
    finally:
        server.stop()
        hello.stop()

    summary = {name: common.summarise(r) for name, r in results.items()}
    ceiling = summary["hello (ceiling)"]["rps"]
    rows = []
    for name, s in summary.items():
        share = s["rps"] / ceiling
        rows.append(
            f"| {name} | {s['rps']:,.0f} ({s['rps_min']:,.0f}–{s['rps_max']:,.0f}) | "
            f"{share:.0%} | {s['p50']:.2f} | {s['p99']:.2f} | {s['client_cpu']:.0%} |"
        )
    def_keys = summary["GET /api/v0/fpe/def_keys"]
    verdict = (
        f"Target: `fpe/def_keys` ≥ {TARGET_SHARE:.0%} of the ceiling and p99 < {TARGET_P99_MS} ms"
        f" — measured {def_keys['rps'] / ceiling:.0%} and {def_keys['p99']:.2f} ms: "
        + (
            "**met**."
            if def_keys["rps"] / ceiling >= TARGET_SHARE and def_keys["p99"] < TARGET_P99_MS
            else "**not met**."
        )
    )
    text = f"""
## Data plane (Ubiq client API)

Command: `.venv/bin/python -m bench.dataplane --seconds {args.seconds} --rounds {args.rounds}`
Date: {common.now()}. Machine: {common.machine()}.
Setup: embedded default (SQLite, WAL), `keystead serve` with one uvicorn worker (httptools,
uvloop); the ceiling is a bare Starlette app answering `{{"hello": "world"}}` under the same
uvicorn settings. Load: wrk, 2 threads, 8 keep-alive connections, each request signed once
by the official client's signer and replayed; {args.rounds} rounds of {args.seconds} s per
endpoint, alternating. The dataset has two key versions, so `def_keys` returns two wrapped
keys (RSA-OAEP, done once per API key and version, then served from memory).
Medians of the rounds, with min–max; client CPU is wrk's share of one core.

| endpoint | requests/s | share of ceiling | p50 ms | p99 ms | client CPU |
|---|---|---|---|---|---|
{chr(10).join(rows)}

{verdict}
"""
    common.record_metrics(
        "dataplane",
        {name: s["rps"] / ceiling for name, s in summary.items() if name != "hello (ceiling)"},
    )
    if not args.no_report:
        common.write_section("dataplane", text)
    print(text)


if __name__ == "__main__":
    main()
