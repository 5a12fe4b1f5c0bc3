"""In-process cost of one data-plane request: the ASGI app called directly (no sockets, no
HTTP parsing), with a request signed once by the official client's signer and replayed.

    .venv/bin/python -m bench.dataplane_profile [--requests 20000] [--profile]

Prints microseconds per request (wall and CPU) for each endpoint and, beside them, the
bare Starlette "hello" app (bench/hello_app.py) called the same way. With ``--profile``
it also prints the top of a cProfile of ``fpe/def_keys``. Logs go to /dev/null, as in
bench/dataplane.py; the embedded default (SQLite) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

from bench.common import keystead_cli as keystead
from bench.dataplane import signed

HOST = "127.0.0.1:8000"


def scope_of(method: str, url_path: str, headers: dict[str, str]) -> dict[str, Any]:
    path, _, query = url_path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        # as uvicorn's httptools protocol hands them over: names lower-cased
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def measure(app: ASGIApp, scope: dict[str, Any], body: bytes, n: int) -> tuple[float, float, int]:
    """(wall µs, CPU µs, last status) per request over ``n`` calls."""
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run(min(n, 500)))  # warm caches
        wall, cpu = time.perf_counter(), time.process_time()
        loop.run_until_complete(run(n))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        loop.close()
    return wall / n * 1e6, cpu / n * 1e6, statuses[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="keystead-profile-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env |= {"KEYSTEAD_DATA_DIR": str(data_dir)}
    keystead(env, "init")
    keystead(env, "dataset", "create", "SSN", "--type", "structured", "--template", "ssn")
    keystead(env, "dataset", "rotate-key", "SSN")
    keystead(env, "dataset", "create", "Notes", "--type", "unstructured")
    key = keystead(env, "api-key", "create", "bench", "--dataset", "SSN", "--dataset", "Notes")
    papi, sapi = str(key["access_key_id"]), str(key["secret_signing_key"])

    os.environ["KEYSTEAD_DATA_DIR"] = str(data_dir)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the log handler writes here
    from bench.hello_app import app as hello
    from keystead.app import create_app

    app = create_app()
    base = f"http://{HOST}"
    query = f"ffs_name=SSN&papi={papi}"
    body = json.dumps({"uses": 1}).encode()
    cases: dict[str, tuple[ASGIApp, str, str, bytes]] = {
        "hello (bare Starlette)": (hello, "GET", "/hello", b""),
        "GET /api/v0/fpe/def_keys": (app, "GET", f"/api/v0/fpe/def_keys?{query}", b""),
        "GET /api/v0/fpe/key": (app, "GET", f"/api/v0/fpe/key?{query}", b""),
        "POST /api/v0/encryption/key": (app, "POST", "/api/v0/encryption/key", body),
    }
    for name, (target, method, url_path, payload) in cases.items():
        headers = {"host": HOST}
        if target is app:
            headers |= signed(method, base + url_path, papi, sapi, payload)
            headers["host"] = HOST
        n = args.requests if method == "GET" else args.requests // 10
        wall, cpu, status = measure(target, scope_of(method, url_path, headers), payload, n)
        print(f"{name:32} {wall:8.1f} µs wall {cpu:8.1f} µs CPU  (status {status}, n={n})")

    if args.profile:
        url_path = f"/api/v0/fpe/def_keys?{query}"
        headers = signed("GET", base + url_path, papi, sapi) | {"host": HOST}
        scope = scope_of("GET", url_path, headers)
        profiler = cProfile.Profile()
        profiler.enable()
        measure(app, scope, b"", args.requests)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(
            os.environ.get("PROFILE_SORT", "tottime")
        ).print_stats(30)
        print(out.getvalue())


if __name__ == "__main__":
    main()
