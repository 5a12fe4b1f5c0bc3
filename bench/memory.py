"""The server's memory with a large directory: 100,000 synced users (each with its
auto-provisioned key), 1,000 groups and 300,000 memberships, while SCIM lists are paged
through and the admin lists are read.

    .venv/bin/python -m bench.memory [--engine sqlite|postgresql] [--users 100000]
                                     [--groups 1000] [--members 300] [--no-report]

The installation is seeded through the directory service (`bench/console.py`'s seeding,
the code SCIM runs), then `keystead serve` (one worker) starts on it. Its resident set
size (VmRSS in /proc) is sampled every 50 ms from just after start-up until the walks end:
every page of `GET /Users` (100 a page), every page of `GET /Groups` (10 groups a page, with
their members), and every page of the admin API's API keys, directory users and directory
groups (50 a page), each with one client. Results go to docs/PERFORMANCE.md (section
"memory").
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import httpx

from bench import common
from bench.console import installation, serve

TARGET_MB = 300.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.05)


def walk(client: httpx.Client, path: str, size_param: str, size: int, first: int) -> int:
    """Every page of a listing; the requests made."""
    requests, start = 0, first
    while True:
        params = {size_param: size, "startIndex" if first else "offset": start}
        response = client.get(path, params=params)
        response.raise_for_status()
        requests += 1
        page = response.json()
        items = page.get("Resources", page.get("items", []))
        total = page.get("totalResults", page.get("total", 0))
        start += len(items)
        if not items or start - first >= total:
            return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--no-report", action="store_true", help="don't write PERFORMANCE.md")
    args = parser.parse_args()
    print(f"seeding {args.users:,} users, {args.groups:,} groups of {args.members} members")
    install = installation(args.engine, args.users, args.groups, args.members)
    try:
        server = serve(install)
        try:
            at_start = rss_mb(server.process.pid)
            sampler = Sampler(server.process.pid)
            sampler.start()
            admin = httpx.Client(
                base_url=f"{server.url}/api/admin/v1",
                headers={"Authorization": f"Bearer {install.token}"},
                timeout=120,
            )
            issued = admin.post("/idp/scim-token").json()
            scim = httpx.Client(
                base_url=issued["scim_url"],
                headers={"Authorization": f"Bearer {issued['token']}"},
                timeout=120,
            )
            started = time.monotonic()
            walks = {
                "SCIM GET /Users (100 a page)": walk(scim, "/Users", "count", 100, 1),
                "SCIM GET /Groups (10 a page, members included)": walk(
                    scim, "/Groups", "count", 10, 1
                ),
                "admin API keys (50 a page)": walk(admin, "/api-keys", "limit", 50, 0),
                "admin directory users (50 a page)": walk(
                    admin, "/directory/users", "limit", 50, 0
                ),
                "admin directory groups (50 a page)": walk(
                    admin, "/directory/groups", "limit", 50, 0
                ),
            }
            elapsed = time.monotonic() - started
            sampler.stop.set()
            sampler.join()
            at_end = rss_mb(server.process.pid)
        finally:
            server.stop()
    finally:
        install.cleanup()
    peak = sampler.peak
    rows = "\n".join(f"| {name} | {count:,} |" for name, count in walks.items())
    text = f"""
## Memory with a large directory (`bench/memory.py`)

Command: `.venv/bin/python -m bench.memory --engine {args.engine} --users {args.users} --groups {args.groups} --members {args.members}`
Date: {common.now()}. Machine: {common.machine()}.
Setup: {args.users:,} synced users, each with its auto-provisioned key, {args.groups:,} groups of
{args.members} members ({args.groups * args.members:,} memberships), seeded through the directory
service on {"the embedded default (SQLite)" if args.engine == "sqlite" else "PostgreSQL"};
`keystead serve` with one worker. Every page of each listing below was read, one client,
in {elapsed:.0f} s; the server's RSS sampled every 50 ms.

| listing walked | requests |
|---|---|
{rows}

RSS after start-up {at_start:.0f} MB, peak {peak:.0f} MB, at the end {at_end:.0f} MB.

Target: RSS under {TARGET_MB:.0f} MB throughout — peak {peak:.0f} MB: **{"met" if peak < TARGET_MB else "not met"}**.
"""  # noqa: E501
    if not args.no_report:
        common.write_section("memory", text)
    print(text)


if __name__ == "__main__":
    main()
