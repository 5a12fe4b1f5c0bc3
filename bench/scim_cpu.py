"""SCIM: CPU per operation in process, two versions of Keystead side by side in one run.

    .venv/bin/python -m bench.scim_cpu --baseline GIT_REF [--users 2000] [--rounds 5]

The live SCIM benchmark (bench/scim.py) runs eight clients and a server on two shared
cores; its phases move by 10-30 % between runs, more than the change it is asked to judge.
This one takes the network, the clients and the other threads out: each version answers
Entra-shaped requests through its ASGI application in one process, one at a time, on its
embedded default (a fresh SQLite data dir), and the process's CPU time per operation is
read for each phase. The baseline is checked out into a temporary git worktree and runs
with its `src/` first on PYTHONPATH (same dependencies, same driver); the two versions run
in turn, ABBA. Each phase's figure is the best of `--rounds` rounds in a run (the least
disturbed), then the median over the runs of that version. The result goes to
docs/PERFORMANCE.md (section "scim-cpu").
"""

# The report's typography (×, –) is deliberate.
# ruff: noqa: RUF003

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench import common
from bench.dataplane_profile import scope_of
from bench.scim import group_body, members_patch, update_patch, user_body

TOLERANCE = 0.05
PHASES = {
    "create_user": "1. lookup + create user",
    "create_group": "2. lookup + create group",
    "add_members": "3. add 100 members (PATCH)",
    "remove_member": "4. remove 1 member (PATCH)",
    "update_user": "5. update user (PATCH, 4 ops)",
    "get_user": "6a. GET user",
    "get_group": "6b. GET group (no members)",
    "delete_user": "8. delete user",
}

# --- one version, in its own process ------------------------------------------------------

Call = Callable[[str, str, "dict[str, Any] | None"], Awaitable[tuple[int, bytes]]]


def _asgi_caller(app: Any, token: str) -> Call:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/scim+json",
        "Accept": "application/scim+json",
    }

    async def call(method: str, target: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        raw = json.dumps(body).encode() if body is not None else b""
        scope = scope_of(method, target, {**headers, "Content-Length": str(len(raw))})
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:  # nothing more comes: the client waits for the answer
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        answer: dict[str, Any] = {"body": b""}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            else:
                answer["body"] += message.get("body", b"")

        await app(scope, receive, send)
        return int(answer["status"]), bytes(answer["body"])

    return call


class Workload:
    """The phases, each a batch of requests whose CPU time is divided by its operations."""

    def __init__(self, call: Call, base: str, users: int) -> None:
        self.call, self.base, self.users = call, base, users
        self.user_ids: list[str] = []
        self.groups: list[str] = []
        self.filled: list[tuple[str, list[str]]] = []  # groups add_members filled
        self.serial = 0

    async def expect(self, method: str, target: str, body: Any, ok: tuple[int, ...]) -> bytes:
        status, data = await self.call(method, self.base + target, body)
        if status not in ok:
            raise RuntimeError(f"{method} {target}: {status} {data[:300]!r}")
        return data

    async def create_user(self, n: int) -> int:
        for _ in range(n):
            self.serial += 1
            name = f"u{self.serial}@contoso.example"
            query = urlencode({"filter": f'userName eq "{name}"'})
            await self.expect("GET", f"/Users?{query}", None, (200,))
            made = await self.expect(
                "POST", "/Users", user_body(name, self.serial, str(uuid.uuid4())), (201,)
            )
            self.user_ids.append(json.loads(made)["id"])
        return n

    async def create_group(self, n: int) -> int:
        for _ in range(n):
            self.serial += 1
            name = f"Group {self.serial}"
            query = urlencode(
                {"excludedAttributes": "members", "filter": f'displayName eq "{name}"'}
            )
            await self.expect("GET", f"/Groups?{query}", None, (200,))
            made = await self.expect("POST", "/Groups", group_body(name), (201,))
            self.groups.append(json.loads(made)["id"])
        return n

    async def add_members(self, batches: int) -> int:
        """Batches of 100 members, each to one of the groups create_group made last (kept
        for remove_member)."""
        for group in self.groups[-batches:]:
            start = (len(self.filled) * 100) % (self.users - 100)
            chosen = self.user_ids[start : start + 100]
            await self.expect("PATCH", f"/Groups/{group}", members_patch("Add", chosen), (200, 204))
            self.filled.append((group, chosen))
        return batches

    async def remove_member(self, n: int) -> int:
        """One member per PATCH (Entra's shape), from the groups add_members filled last."""
        for i in range(n):
            group, members = self.filled[-1 - i % 10]
            body = members_patch("Remove", [members.pop()])
            await self.expect("PATCH", f"/Groups/{group}", body, (200, 204))
        return n

    async def update_user(self, n: int) -> int:
        for i in range(n):
            self.serial += 1
            body = update_patch(i, str(self.serial))
            await self.expect("PATCH", f"/Users/{self.user_ids[i]}", body, (200, 204))
        return n

    async def get_user(self, n: int) -> int:
        for i in range(n):
            await self.expect("GET", f"/Users/{self.user_ids[i]}", None, (200,))
        return n

    async def get_group(self, n: int) -> int:
        for i in range(n):
            group = self.groups[i % len(self.groups)]
            await self.expect("GET", f"/Groups/{group}?excludedAttributes=members", None, (200,))
        return n

    async def delete_user(self, n: int) -> int:
        for _ in range(n):
            await self.expect("DELETE", f"/Users/{self.user_ids.pop()}", None, (204,))
        return n


async def _measure(work: Workload, rounds: int) -> dict[str, float]:
    await work.create_user(work.users)  # the directory the phases work in
    await work.create_group(20)
    steps: dict[str, tuple[Callable[[int], Awaitable[int]], int]] = {
        "create_user": (work.create_user, 200),
        "create_group": (work.create_group, 200),
        "add_members": (work.add_members, 10),
        "remove_member": (work.remove_member, 100),
        "update_user": (work.update_user, 200),
        "get_user": (work.get_user, 400),
        "get_group": (work.get_group, 400),
        "delete_user": (work.delete_user, 100),
    }
    best: dict[str, float] = {}
    gc.collect()
    gc.freeze()  # as `keystead serve` does after start-up
    for _ in range(rounds):
        for phase, (step, count) in steps.items():
            started = time.process_time()
            done = await step(count)
            seconds = (time.process_time() - started) / done
            best[phase] = min(best.get(phase, seconds), seconds)
    return best


def worker(users: int, rounds: int) -> None:
    """One version's measurement (the `keystead` on sys.path), printed as JSON."""
    data = Path(tempfile.mkdtemp(prefix="bench-scim-cpu-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env |= {"KEYSTEAD_DATA_DIR": str(data), "KEYSTEAD_LOG_LEVEL": "warning"}
    try:
        common.keystead_cli(env, "init")
        common.keystead_cli(env, "idp", "enable")
        issued = common.keystead_cli(env, "idp", "scim-token")
        os.environ.update({k: v for k, v in env.items() if k.startswith("KEYSTEAD_")})
        from keystead.app import create_app

        call = _asgi_caller(create_app(), str(issued["token"]))
        work = Workload(call, urlsplit(str(issued["scim_url"])).path, users)
        best = asyncio.run(_measure(work, rounds))
        import keystead

        print(json.dumps({"source": keystead.__file__, "seconds": best}))
    finally:
        shutil.rmtree(data, ignore_errors=True)


# --- the comparison -----------------------------------------------------------------------


def _run(source: Path | None, users: int, rounds: int) -> dict[str, float]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    argv = ["--worker", "--users", str(users), "--rounds", str(rounds)]
    out = subprocess.run(
        [sys.executable, "-m", "bench.scim_cpu", *argv],
        cwd=common.ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    answer = json.loads(out.strip().splitlines()[-1])
    expected = source if source is not None else common.ROOT / "src"
    if not str(answer["source"]).startswith(str(expected)):
        raise RuntimeError(f"measured {answer['source']}, not the code under {expected}")
    return dict(answer["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="git ref of the version before")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per run (the best counts)")
    parser.add_argument("--repeats", type=int, default=4, help="runs per version (ABBA…)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-report", action="store_true", help="don't write PERFORMANCE.md")
    args = parser.parse_args()
    if args.users < 200 or min(args.rounds, args.repeats) < 1:
        parser.error("--users must be at least 200, --rounds and --repeats positive")
    if args.worker:
        worker(args.users, args.rounds)
        return
    if not args.baseline:
        parser.error("--baseline is required")
    base_rev, head_rev = (
        common.git("rev-parse", "--short", args.baseline),
        common.git("rev-parse", "--short", "HEAD"),
    )
    work = Path(tempfile.mkdtemp(prefix="bench-scim-cpu-"))
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    try:
        with common.checkout(base_rev, work) as baseline:
            for n in range(args.repeats):
                for which in ("before", "after") if n % 2 == 0 else ("after", "before"):
                    print(f"== run {n + 1}: {which}", flush=True)
                    source = baseline if which == "before" else None
                    runs[which].append(_run(source, args.users, args.rounds))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows, slower = [], []
    for phase, label in PHASES.items():
        before = median(r[phase] for r in runs["before"]) * 1e6
        after = median(r[phase] for r in runs["after"]) * 1e6
        change = after / before - 1
        if change > TOLERANCE:
            slower.append(f"{label} ({change:+.1%})")
        each = {w: " / ".join(f"{r[phase] * 1e6:,.0f}" for r in runs[w]) for w in runs}
        rows.append(
            f"| {label} | {before:,.0f} ({each['before']}) | {after:,.0f} ({each['after']}) "
            f"| {change:+.1%} |"
        )
    verdict = (
        f"Target: no phase more than {TOLERANCE:.0%} more CPU per operation than before — "
        + ("**met**." if not slower else f"**not met**: {'; '.join(slower)}.")
    )
    command = " ".join([".venv/bin/python -m bench.scim_cpu", *sys.argv[1:]])
    text = f"""
## SCIM: CPU per operation in process, before and after (same run)

Command: `{command}`
Date: {common.now()}. Machine: {common.machine()}.
Before: commit {base_rev}; after: commit {head_rev} (the working tree). Each version answers
Entra-shaped SCIM requests through its own ASGI application in one process (no network, no
client threads, one request at a time), on a fresh embedded data dir with {args.users:,}
users; CPU time of the process per operation, the best of {args.rounds} rounds in a run,
the median over {args.repeats} runs per version in ABBA order. Phases as in
`bench/scim.py` (phase 7, one big group, is left to it). What this
leaves out, the serving stack and the clients, is the same code for both versions.

| phase | before µs (each run) | after µs (each run) | change |
|---|---|---|---|
{chr(10).join(rows)}

{verdict}
"""
    if not args.no_report:
        common.write_section_after("scim-cpu", text, after="before-after-the-request-path")
    print(text)


if __name__ == "__main__":
    main()
