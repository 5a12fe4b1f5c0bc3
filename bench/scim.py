"""SCIM provisioning: an Entra-shaped workload against Keystead's SCIM endpoint and a reference
SCIM server in the same run, then a Keystead-only scale run.

    .venv/bin/pip install -c constraints.txt -e ".[test,bench]"   # the reference, scim2-server
    .venv/bin/python -m bench.scim [--users 2000] [--groups 50] [--rounds 3] [--clients 8]

The reference is scim2-server 0.8.3 (in-memory storage) wrapped by bench/scim_reference.py
with scim2-models' tolerant policy and a bearer token, under the same uvicorn settings as
`keystead serve` (one worker, httptools, uvloop). Keystead runs on its embedded default
(SQLite, WAL). Load: `--clients` threads, each with its own standard-library `http.client`
keep-alive connection (httpx costs ~1.5 ms of client CPU per request here). Every response's
status is checked and the run stops at the first unexpected one.

Comparison phases (a fresh, uniquely named set of users and groups per server and round;
each phase runs on each server in turn, the order reversed every other round; a third server,
bench/scim_ceiling.py, answers every request with a fixed answer and stores nothing: the
serving stack's own ceiling for each phase):
  1. lookup-then-create users: GET /Users?filter=userName eq "…" (0 results), POST /Users;
  2. lookup-then-create groups: GET /Groups?excludedAttributes=members&filter=displayName eq
     "…" (0 results), POST /Groups with Microsoft's extra schema URN and `members: []`;
  3. add members, 100 per PATCH (`Add`, path `members`), batches of different groups in flight;
  4. remove members one per PATCH (Entra's default shape: `Remove`, path `members`, value list);
  5. update users: PATCH with Replace ops (displayName, emails[type eq "work"].value,
     enterprise department, `active` as the string "False"/"True");
  6. reads: GET /Users/{id}; GET /Groups/{id}?excludedAttributes=members;
  7. one big group, one client: add batches of 100 members until every user is in it;
     first and last batch p50 (medians of the first and last few batches);
  8. DELETE /Users/{id}.
Scale run (Keystead only, a fresh data dir): users, groups and memberships provisioned with
`--clients` clients and timed end to end; then the extra users a `--big-size` group needs are
created (as many as `--big-budget` seconds allow) and one client fills one group with them in
batches of 100, for the first and last batch p50.
Results go to docs/PERFORMANCE.md (section "scim").
"""

# The report's typography (×, –) is deliberate; subprocesses run our own fixed commands.
# ruff: noqa: RUF003

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from urllib.parse import urlencode, urlsplit

from bench import common

TARGET_RATIO = 3.0  # Keystead ≥ 3× the reference's throughput in every phase
TARGET_FLAT = 1.5  # big group: last batch p50 ≤ 1.5× the first
TARGET_SCALE_S = 60.0  # scale run, end to end
BATCH = 100
BATCH_RESERVE_S = 0.08  # budget kept per big-group batch while creating its users
BIG_GRACE_S = 30.0  # the batches may overrun the budget by this much before they stop
REQUEST_TIMEOUT_S = 60.0

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OK_PATCH = (200, 204)  # both are allowed for PATCH (RFC 7644 §3.5.2); Entra takes either


class Unexpected(RuntimeError):
    """A response the workload did not expect: the run stops."""


# --- the client ---------------------------------------------------------------------------


class Client:
    """One keep-alive connection; every response's status is checked."""

    def __init__(self, base: str, token: str) -> None:
        parts = urlsplit(base)
        self.prefix = parts.path.rstrip("/")
        self.conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=REQUEST_TIMEOUT_S
        )
        self.conn.connect()
        self.read_headers = {"Authorization": f"Bearer {token}", "Accept": "application/scim+json"}
        self.write_headers = {**self.read_headers, "Content-Type": "application/scim+json"}

    def call(
        self, method: str, path: str, body: object = None, expect: tuple[int, ...] = (200,)
    ) -> bytes:
        payload = None if body is None else json.dumps(body).encode()
        headers = self.read_headers if payload is None else self.write_headers
        self.conn.request(method, self.prefix + path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status not in expect:
            raise Unexpected(
                f"{method} {self.prefix}{path} answered {response.status}, expected "
                f"{'/'.join(map(str, expect))}: {data[:400]!r}"
            )
        return data

    def close(self) -> None:
        self.conn.close()


Task = Callable[[Client], int]  # one operation; returns how many requests it made


# --- servers ------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    base: str  # SCIM base URL
    token: str
    server: common.Server
    log: Path
    revision: str = ""  # Keystead's code when the server started (the tree is shared and moves)

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (one uvicorn worker, so one process)."""
        stat = Path(f"/proc/{self.server.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(cmd: list[str], env: dict[str, str], port: int, probe: str, log: Path) -> common.Server:
    with log.open("wb") as sink:
        process = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        common.wait_ready(f"http://127.0.0.1:{port}{probe}", process)
    except BaseException:
        process.kill()
        raise
    return common.Server(f"http://127.0.0.1:{port}", process)


def revision() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"

    def run(*args: str) -> str:
        done = subprocess.run(
            [git, "-C", str(common.ROOT), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout.strip()

    dirty = run("status", "--porcelain", "--", "src")
    return (run("rev-parse", "--short", "HEAD") or "unknown") + (
        " + uncommitted changes in src/" if dirty else ""
    )


def start_keystead(work: Path) -> Target:
    data_dir = Path(tempfile.mkdtemp(prefix="keystead-scim-", dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env |= {"KEYSTEAD_DATA_DIR": str(data_dir)}
    common.keystead_cli(env, "init")
    common.keystead_cli(env, "idp", "enable")
    issued = common.keystead_cli(env, "idp", "scim-token")
    path = urlsplit(str(issued["scim_url"])).path  # /{customer_id}/api/v3/scim
    port = common.free_port()
    log = data_dir / "serve.log"
    cmd = [str(common.BIN / "keystead"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    code = revision()
    server = _start(cmd, env, port, "/healthz", log)
    return Target("Keystead", server.url + path, str(issued["token"]), server, log, code)


def _start_app(work: Path, name: str, module: str, token_variable: str, probe: str) -> Target:
    """A bare ASGI app of the benchmark's, under exactly `keystead serve`'s uvicorn settings."""
    token = uuid.uuid4().hex
    port = common.free_port()
    log = work / f"{name}-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(common.ROOT), token_variable: token}
    server = _start(common.bare_app(module, port), env, port, probe, log)
    return Target(name, server.url + "/v2", token, server, log)


def start_reference(work: Path) -> Target:
    return _start_app(
        work, "reference", "bench.scim_reference", "SCIM_REF_TOKEN", "/v2/ServiceProviderConfig"
    )


def start_ceiling(work: Path) -> Target:
    return _start_app(
        work, "ceiling", "bench.scim_ceiling", "SCIM_CEILING_TOKEN", "/v2/Users/probe"
    )


# --- running a phase ----------------------------------------------------------------------


@dataclass
class PhaseResult:
    ops: int
    requests: int
    seconds: float
    latencies: list[float]  # per operation, in the order one client ran them
    client_cpu: float  # share of one core used by this process (all client threads)
    server_cpu: float  # share of one core used by the server process

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_phase(target: Target, tasks: Sequence[Task], clients: int, timeout: float) -> PhaseResult:
    """Run the tasks in order on `clients` threads, each with its own connection; bounded by
    `timeout` seconds (the phase fails past it) and by the task count."""
    clients = max(1, min(clients, len(tasks)))
    connections = [Client(target.base, target.token) for _ in range(clients)]
    lock = threading.Lock()
    cursor = [0]
    stop = threading.Event()
    errors: list[BaseException] = []
    latencies: list[list[float]] = [[] for _ in range(clients)]
    requests = [0] * clients
    deadline = time.monotonic() + timeout

    def work(slot: int) -> None:
        client = connections[slot]
        try:
            while not stop.is_set():
                with lock:
                    index = cursor[0]
                    cursor[0] += 1
                if index >= len(tasks):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{target.name}: phase exceeded {timeout:.0f} s")
                started = time.perf_counter()
                requests[slot] += tasks[index](client)
                latencies[slot].append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    cpu_before, server_before = _process_cpu(), target.cpu_seconds()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic()) + REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    cpu, server_cpu = _process_cpu() - cpu_before, target.cpu_seconds() - server_before
    for connection in connections:
        connection.close()
    if any(thread.is_alive() for thread in threads):
        stop.set()
        raise TimeoutError(f"{target.name}: a client did not finish within the phase's bound")
    if errors:
        raise errors[0]
    done = sum(len(lat) for lat in latencies)
    if done != len(tasks):
        raise RuntimeError(f"{target.name}: {done} of {len(tasks)} operations ran")
    merged = [x for lat in latencies for x in lat] if clients > 1 else latencies[0]
    return PhaseResult(
        len(tasks), sum(requests), elapsed, merged, cpu / elapsed, server_cpu / elapsed
    )


# --- the workload -------------------------------------------------------------------------


def _first(data: bytes) -> dict[str, object]:
    return json.loads(data)  # type: ignore[no-any-return]


def user_body(name: str, number: int, external: str) -> dict[str, object]:
    given, family = f"Given{number}", f"Family{number}"
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": external,
        "userName": name,
        "active": True,
        "displayName": f"{given} {family}",
        "title": "Payments Engineer",
        "emails": [{"primary": True, "type": "work", "value": name}],
        "name": {"formatted": f"{given} {family}", "givenName": given, "familyName": family},
        "phoneNumbers": [{"type": "mobile", "value": f"+1 206 555 {number % 10000:04d}"}],
        ENTERPRISE: {"employeeNumber": str(40000 + number), "department": "Payments"},
        "meta": {"resourceType": "User"},
        "roles": [],
    }


def group_body(name: str) -> dict[str, object]:
    return {
        "schemas": [CORE_GROUP, MS_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": name,
        "members": [],
        "meta": {"resourceType": "Group"},
    }


def update_patch(i: int, tag: str) -> dict[str, object]:
    """Entra's update of a user: Replace ops on four attributes, `active` as a string."""
    return {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": f"Given{i} Family{i}-Ortiz"},
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": f"renamed{i}.{tag}@fabrikam.example",
            },
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Treasury"},
            {"op": "Replace", "path": "active", "value": "False" if i % 2 else "True"},
        ],
    }


def members_patch(op: str, ids: Sequence[str]) -> dict[str, object]:
    value = (
        [{"$ref": None, "value": i} for i in ids] if op == "Add" else [{"value": i} for i in ids]
    )
    return {"schemas": [PATCH_OP], "Operations": [{"op": op, "path": "members", "value": value}]}


@dataclass
class Workload:
    """One server's users and groups in one round, named uniquely by `tag`."""

    tag: str
    users: int
    groups: int
    per_group: int
    removes: int
    group_reads: int
    seed: int
    user_ids: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    members: list[list[str]] = field(default_factory=list)
    big_group: str = ""

    def __post_init__(self) -> None:
        self.user_ids = [""] * self.users
        self.group_ids = [""] * self.groups

    def user_name(self, i: int) -> str:
        return f"user{i}.{self.tag}@fabrikam.example"

    # 1
    def create_users(self) -> list[Task]:
        return [self._create_user(i) for i in range(self.users)]

    def _create_user(self, i: int) -> Task:
        def task(client: Client) -> int:
            name = self.user_name(i)
            query = urlencode({"filter": f'userName eq "{name}"'})
            found = _first(client.call("GET", f"/Users?{query}"))
            if found.get("totalResults") != 0:
                raise Unexpected(f"lookup of new user {name} found {found.get('totalResults')}")
            body = user_body(name, i, f"ext{i}.{self.tag}")
            created = _first(client.call("POST", "/Users", body, expect=(201,)))
            self.user_ids[i] = str(created["id"])
            return 2

        return task

    # 2
    def create_groups(self) -> list[Task]:
        return [self._create_group(g) for g in range(self.groups)]

    def _create_group(self, g: int) -> Task:
        def task(client: Client) -> int:
            name = f"Group {g} {self.tag}"
            query = urlencode(
                {"excludedAttributes": "members", "filter": f'displayName eq "{name}"'}
            )
            found = _first(client.call("GET", f"/Groups?{query}"))
            if found.get("totalResults") != 0:
                raise Unexpected(f"lookup of new group {name} found {found.get('totalResults')}")
            created = _first(client.call("POST", "/Groups", group_body(name), expect=(201,)))
            self.group_ids[g] = str(created["id"])
            return 2

        return task

    # 3: batches of different groups interleave, so concurrent PATCHes hit different groups
    def add_members(self) -> list[Task]:
        rng = random.Random(self.seed)
        self.members = [rng.sample(self.user_ids, self.per_group) for _ in self.group_ids]
        batches = [
            [(g, chosen[i : i + BATCH]) for i in range(0, len(chosen), BATCH)]
            for g, chosen in enumerate(self.members)
        ]
        tasks = []
        for step in range(max((len(b) for b in batches), default=0)):
            for per_group in batches:
                if step < len(per_group):
                    g, ids = per_group[step]
                    tasks.append(self._patch_group(self.group_ids[g], members_patch("Add", ids)))
        return tasks

    def _patch_group(self, group_id: str, body: dict[str, object]) -> Task:
        def task(client: Client) -> int:
            client.call("PATCH", f"/Groups/{group_id}", body, expect=OK_PATCH)
            return 1

        return task

    # 4
    def remove_members(self) -> list[Task]:
        return [
            self._patch_group(self.group_ids[g], members_patch("Remove", [self.members[g][k]]))
            for k in range(self.removes)
            for g in range(self.groups)
        ]

    # 5
    def update_users(self) -> list[Task]:
        return [self._update_user(i) for i in range(self.users)]

    def _update_user(self, i: int) -> Task:
        body = update_patch(i, self.tag)

        def task(client: Client) -> int:
            client.call("PATCH", f"/Users/{self.user_ids[i]}", body, expect=OK_PATCH)
            return 1

        return task

    # 6
    def read_users(self) -> list[Task]:
        return [self._get(f"/Users/{uid}") for uid in self.user_ids]

    def read_groups(self) -> list[Task]:
        return [
            self._get(f"/Groups/{gid}?excludedAttributes=members")
            for _ in range(self.group_reads)
            for gid in self.group_ids
        ]

    def _get(self, path: str) -> Task:
        def task(client: Client) -> int:
            client.call("GET", path)
            return 1

        return task

    # 7
    def create_big_group(self, client: Client) -> None:
        created = client.call("POST", "/Groups", group_body(f"Big {self.tag}"), expect=(201,))
        self.big_group = str(_first(created)["id"])

    def fill_big_group(self, ids: Sequence[str]) -> list[Task]:
        return [
            self._patch_group(self.big_group, members_patch("Add", ids[i : i + BATCH]))
            for i in range(0, len(ids), BATCH)
        ]

    # 8
    def delete_users(self) -> list[Task]:
        return [self._delete(f"/Users/{uid}") for uid in self.user_ids]

    def delete_groups(self) -> list[Task]:
        return [self._delete(f"/Groups/{gid}") for gid in [*self.group_ids, self.big_group] if gid]

    def _delete(self, path: str) -> Task:
        def task(client: Client) -> int:
            client.call("DELETE", path, expect=(204,))
            return 1

        return task


def window(batches: int) -> int:
    """How many batches the 'first' and 'last' batch p50s are taken over."""
    return max(1, min(10, batches // 4))


@dataclass(frozen=True)
class Phase:
    key: str
    label: str
    clients: int  # 0: --clients
    tasks: Callable[[Workload], list[Task]]


PHASES = [
    Phase("create_users", "1. lookup + create user", 0, Workload.create_users),
    Phase("create_groups", "2. lookup + create group", 0, Workload.create_groups),
    Phase("add_members", "3. add 100 members (PATCH)", 0, Workload.add_members),
    Phase("remove_members", "4. remove 1 member (PATCH)", 0, Workload.remove_members),
    Phase("update_users", "5. update user (PATCH, 4 ops)", 0, Workload.update_users),
    Phase("read_users", "6a. GET user", 0, Workload.read_users),
    Phase("read_groups", "6b. GET group (no members)", 0, Workload.read_groups),
    Phase(
        "big_group", "7. big group: add 100 (1 client)", 1, lambda w: w.fill_big_group(w.user_ids)
    ),
    Phase("delete_users", "8. delete user", 0, Workload.delete_users),
]


# --- the comparison -----------------------------------------------------------------------


def compare(
    targets: list[Target], args: argparse.Namespace, rounds: int, users: int, groups: int
) -> dict[str, dict[str, list[PhaseResult]]]:
    results: dict[str, dict[str, list[PhaseResult]]] = {
        p.key: {t.name: [] for t in targets} for p in PHASES
    }
    for round_no in range(rounds):
        order = targets if round_no % 2 == 0 else targets[::-1]
        loads = {
            t.name: Workload(
                tag=f"r{round_no}{t.name[0].lower()}{uuid.uuid4().hex[:6]}",
                users=users,
                groups=groups,
                per_group=min(args.per_group, users),
                removes=min(args.removes, args.per_group, users),
                group_reads=args.group_reads,
                seed=round_no,
            )
            for t in targets
        }
        for phase in PHASES:
            for target in order:
                load = loads[target.name]
                if phase.key == "big_group":
                    setup = Client(target.base, target.token)
                    load.create_big_group(setup)
                    setup.close()
                clients = phase.clients or args.clients
                result = run_phase(target, phase.tasks(load), clients, args.phase_timeout)
                results[phase.key][target.name].append(result)
                print(
                    f"  round {round_no + 1} {target.name:9s} {phase.label:34s} "
                    f"{result.ops_per_s:8,.0f} ops/s  p50 {result.percentile(0.5):7.2f} ms  "
                    f"p99 {result.percentile(0.99):7.2f} ms  client CPU {result.client_cpu:4.0%}",
                    flush=True,
                )
        for target in targets:  # clean up (not measured): the next round starts empty
            run_phase(target, loads[target.name].delete_groups(), args.clients, args.phase_timeout)
    return results


# --- the scale run ------------------------------------------------------------------------


@dataclass
class ScaleResult:
    stages: list[tuple[str, PhaseResult]]
    seconds: float
    big_size: int
    big_latencies: list[float]
    big_seconds: float
    fill_users: int
    fill_seconds: float
    stopped_by_budget: bool


def scale(target: Target, args: argparse.Namespace) -> ScaleResult:
    groups = args.scale_groups
    per_group = min(args.scale_users, args.scale_memberships // groups)
    load = Workload(
        tag=f"s{uuid.uuid4().hex[:6]}",
        users=args.scale_users,
        groups=groups,
        per_group=per_group,
        removes=0,
        group_reads=0,
        seed=99,
    )
    stages: list[tuple[str, PhaseResult]] = []
    started = time.perf_counter()
    for label, make in (
        (f"{args.scale_users:,} users (lookup + create)", load.create_users),
        (f"{groups:,} groups (lookup + create)", load.create_groups),
        (f"{groups * per_group:,} memberships (PATCH of 100)", load.add_members),
    ):
        stages.append((label, run_phase(target, make(), args.clients, args.phase_timeout)))
        print(f"  scale: {label}: {stages[-1][1].seconds:.1f} s", flush=True)
    seconds = time.perf_counter() - started

    # One group towards --big-size members. The users it needs are created first (POST only,
    # --clients clients), so the database's size is the same for the first and the last batch
    # and only the group's size changes; then one client adds batches of 100. User creation
    # stops early when the budget left would not cover the batches (BATCH_RESERVE_S each).
    budget_end = time.monotonic() + args.big_budget
    available = list(load.user_ids)
    fill = Workload(
        tag=f"f{uuid.uuid4().hex[:6]}", users=0, groups=0, per_group=0, removes=0,
        group_reads=0, seed=0,
    )  # fmt: skip
    fill_users, fill_seconds, chunk_seconds = 0, 0.0, 0.0
    chunk = 20 * BATCH
    stopped = False
    while len(available) < args.big_size:
        extra = min(chunk, args.big_size - len(available))
        needed = chunk_seconds + (len(available) + extra) / BATCH * BATCH_RESERVE_S
        if time.monotonic() + needed > budget_end:
            stopped = True
            break
        first = len(fill.user_ids)
        fill.users += extra
        fill.user_ids += [""] * extra
        made = run_phase(
            target, [_post_user(fill, first + i) for i in range(extra)], args.clients,
            args.phase_timeout,
        )  # fmt: skip
        fill_users += extra
        fill_seconds += made.seconds
        chunk_seconds = made.seconds
        available += fill.user_ids[first:]
        print(f"  scale: {len(available):,} users for the big group", flush=True)

    setup = Client(target.base, target.token)
    load.create_big_group(setup)
    setup.close()
    target_size = min(args.big_size, len(available)) // BATCH * BATCH
    latencies: list[float] = []
    big_seconds = 0.0
    size = 0
    while size < target_size:
        if time.monotonic() > budget_end + BIG_GRACE_S:
            stopped = True
            break
        want = min(chunk, target_size - size)
        result = run_phase(
            target, load.fill_big_group(available[size : size + want]), 1, args.phase_timeout
        )
        latencies += result.latencies
        big_seconds += result.seconds
        size += want
        print(
            f"  scale: big group at {size:,} members, this chunk's p50 "
            f"{result.percentile(0.5):.2f} ms",
            flush=True,
        )
    return ScaleResult(
        stages, seconds, size, latencies, big_seconds, fill_users, fill_seconds, stopped
    )


def _post_user(load: Workload, i: int) -> Task:
    """A plain create (the big group's extra users; their lookups were measured already)."""

    def task(client: Client) -> int:
        body = user_body(load.user_name(i), i, f"ext{i}.{load.tag}")
        load.user_ids[i] = str(_first(client.call("POST", "/Users", body, expect=(201,)))["id"])
        return 1

    return task


# --- the report ---------------------------------------------------------------------------


def _span(values: list[float], fmt: str = ",.0f") -> str:
    return f"{median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def _log_problems(target: Target) -> int:
    """Lines of the server's log at error level (or tracebacks)."""
    try:
        text = target.log.read_text(errors="replace")
    except OSError:
        return 0
    return sum(
        1
        for line in text.splitlines()
        if '"level": "error"' in line or '"level":"error"' in line or "Traceback" in line
    )


def report(
    args: argparse.Namespace,
    results: dict[str, dict[str, list[PhaseResult]]],
    scaled: ScaleResult | None,
    problems: dict[str, int],
    revisions: dict[str, str],
) -> str:
    rows, short, beyond = [], [], []
    for phase in PHASES:
        k, r = results[phase.key]["Keystead"], results[phase.key]["reference"]
        c = results[phase.key]["ceiling"]
        wanted = TARGET_RATIO * median(x.ops_per_s for x in r)
        ceiling = median(x.ops_per_s for x in c)
        ratio = median(x.ops_per_s for x in k) / median(x.ops_per_s for x in r)
        if ratio < TARGET_RATIO:
            short.append(
                f"{phase.label.split(' ', 1)[1]} ×{ratio:.1f}, where 3× is "
                f"{wanted / ceiling:.0%} of the ceiling"
            )
        if wanted > ceiling:
            beyond.append(
                f"{phase.label.split(' ', 1)[1]} (needs {wanted:,.0f}/s, ceiling {ceiling:,.0f}/s)"
            )
        rows.append(
            f"| {phase.label} | {_span([x.ops_per_s for x in k])} | "
            f"{_span([x.ops_per_s for x in r])} | ×{ratio:.1f} | {wanted:,.0f} | "
            f"{_span([x.ops_per_s for x in c])} ({median(x.ops_per_s for x in k) / ceiling:.0%}) | "
            f"{median(x.percentile(0.5) for x in k):.2f} / "
            f"{median(x.percentile(0.99) for x in k):.2f} | "
            f"{median(x.percentile(0.5) for x in r):.2f} / "
            f"{median(x.percentile(0.99) for x in r):.2f} | "
            f"{median(x.client_cpu for x in k):.0%} / {median(x.client_cpu for x in r):.0%} | "
            f"{median(x.server_cpu for x in k):.0%} / {median(x.server_cpu for x in r):.0%} |"
        )
    ratio_verdict = (
        f"Target: Keystead ≥ {TARGET_RATIO:.0f}× the reference's throughput in every phase — "
        + (
            "**met** in all phases."
            if not short
            else f"**not met** in {len(short)} of {len(PHASES)} phases ({'; '.join(short)})."
        )
        + (
            f" In {len(beyond)} of them three times the reference is more than the bare stack "
            f"itself answers ({'; '.join(beyond)}): there no server on this stack and this "
            "client could meet it."
            if beyond
            else ""
        )
    )

    big_rows = []
    for name in ("Keystead", "reference"):
        runs = results["big_group"][name]
        w = window(len(runs[0].latencies))
        first = median(median(x.latencies[:w]) * 1000 for x in runs)
        last = median(median(x.latencies[-w:]) * 1000 for x in runs)
        big_rows.append(
            f"| {name}, comparison | {len(runs[0].latencies) * BATCH:,} | {w} | {first:.2f} | "
            f"{last:.2f} | ×{last / first:.2f} |"
        )
    flat_verdict = ""
    if scaled is not None and scaled.big_latencies:
        lat = scaled.big_latencies
        w = window(len(lat))
        first, last = median(lat[:w]) * 1000, median(lat[-w:]) * 1000
        big_rows.append(
            f"| Keystead, scale run | {scaled.big_size:,} | {w} | {first:.2f} | {last:.2f} | "
            f"×{last / first:.2f} |"
        )
        reached = f"reached {scaled.big_size:,} of {args.big_size:,} members" + (
            f" (stopped by the {args.big_budget:.0f} s budget)" if scaled.stopped_by_budget else ""
        )
        flat_verdict = (
            f"Target: big group's last batch p50 ≤ {TARGET_FLAT}× the first — Keystead "
            f"{first:.2f} → {last:.2f} ms (×{last / first:.2f}), {reached}: "
            + ("**met**." if last <= TARGET_FLAT * first else "**not met**.")
        )
    else:
        runs = results["big_group"]["Keystead"]
        w = window(len(runs[0].latencies))
        first = median(median(x.latencies[:w]) for x in runs)
        last = median(median(x.latencies[-w:]) for x in runs)
        flat_verdict = (
            f"Target: big group's last batch p50 ≤ {TARGET_FLAT}× the first — measured only to "
            f"{len(runs[0].latencies) * BATCH:,} members (no scale run): ×{last / first:.2f}, "
            + ("**met** at that size." if last <= TARGET_FLAT * first else "**not met**.")
        )

    scale_text = "Scale run: skipped (`--no-scale`)."
    if scaled is not None:
        stage_rows = "\n".join(
            f"| {label} | {res.ops:,} | {res.requests:,} | {res.seconds:.1f} | "
            f"{res.ops_per_s:,.0f} | {res.percentile(0.5):.2f} / {res.percentile(0.99):.2f} | "
            f"{res.client_cpu:.0%} | {res.server_cpu:.0%} |"
            for label, res in scaled.stages
        )
        fill = (
            f"The {scaled.fill_users:,} extra users it needed were created first ("
            f"{scaled.fill_seconds:.0f} s, {scaled.fill_users / scaled.fill_seconds:,.0f}/s, POST "
            f"only, {args.clients} clients), so the database had the same size for every batch"
            if scaled.fill_users
            else "Its users were the scale run's"
        ) + f"; the {len(scaled.big_latencies):,} batches took {scaled.big_seconds:.1f} s."
        scale_text = f"""### Scale run (Keystead only, fresh data dir, {args.clients} clients)

| stage | operations | requests | seconds | ops/s | p50 / p99 ms | client CPU | server CPU |
|---|---|---|---|---|---|---|---|
{stage_rows}

End to end: **{scaled.seconds:.1f} s**. Then one group was filled with batches of 100 (one
client) to {scaled.big_size:,} members. {fill}

Target: scale run < {TARGET_SCALE_S:.0f} s — measured {scaled.seconds:.1f} s: """ + (
            "**met**." if scaled.seconds < TARGET_SCALE_S else "**not met**."
        )

    log_line = ", ".join(f"{name}: {count}" for name, count in problems.items())
    return f"""
## SCIM provisioning (Entra-shaped workload)

Command: `{" ".join([".venv/bin/python -m bench.scim", *args.argv])}`
Date: {common.now()}. Machine: {common.machine()}.
Keystead's code: {"; ".join(f"commit {rev} ({when})" for when, rev in revisions.items())}.
Setup: Keystead on its embedded default (SQLite, WAL), `keystead serve` with one uvicorn worker
(httptools, uvloop); the reference is scim2-server 0.8.3 (in-memory storage) as an ASGI app
with scim2-models' tolerant policy and a bearer token (bench/scim_reference.py), under the
same uvicorn settings. The ceiling is the serving stack alone (bench/scim_ceiling.py): a bare
Starlette app under the same settings that checks the token, parses each body and answers
every request with a fixed SCIM answer, storing nothing. Load: {args.clients} threads in one process, each with its own
`http.client` keep-alive connection; every response's status is checked (none was
unexpected, or there would be no table). Workload per server and round: {args.users:,} users,
{args.groups} groups of {min(args.per_group, args.users)} members (batches of 100, different
groups in flight), {args.removes} single-member removals per group, {args.group_reads} reads per
group, a big group filled by one client with every user ({args.users:,} members: the
reference's per-batch cost grows with the group, so its big group stops there; Keystead's goes
further in the scale run), then deletes. {args.rounds} rounds, each phase run on each server in turn,
the order reversed every other round. Medians of the rounds, with min–max;
latency is per operation (lookup + create counts as one); client CPU is this process's share of
one core (all {args.clients} client threads), server CPU the server process's.

| phase | Keystead ops/s | reference ops/s | ratio | 3× reference | ceiling ops/s (Keystead's share) | Keystead p50 / p99 ms | reference p50 / p99 ms | client CPU K / R | server CPU K / R |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{ratio_verdict}

Big group, batches of 100 added by one client: p50 of the first and of the last batches (over
the first and last `window` batches).

| server | members reached | window | first p50 ms | last p50 ms | last / first |
|---|---|---|---|---|---|
{chr(10).join(big_rows)}

{flat_verdict}

{scale_text}

Server log lines at error level during the run — {log_line}.
"""  # noqa: E501


# --- main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--per-group", type=int, default=400, help="members per group")
    parser.add_argument("--removes", type=int, default=10, help="single removals per group")
    parser.add_argument("--group-reads", type=int, default=10, help="GETs per group")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scale-users", type=int, default=10_000)
    parser.add_argument("--scale-groups", type=int, default=100)
    parser.add_argument("--scale-memberships", type=int, default=30_000)
    parser.add_argument("--big-size", type=int, default=50_000)
    parser.add_argument("--big-budget", type=float, default=240, help="seconds for the big group")
    parser.add_argument("--phase-timeout", type=float, default=300, help="seconds per phase")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale run")
    parser.add_argument("--no-report", action="store_true", help="don't write PERFORMANCE.md")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and server logs")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    if min(args.users, args.groups, args.per_group, args.removes, args.rounds, args.clients) < 1:
        parser.error("sizes, rounds and clients must be at least 1")
    return args


def main() -> None:
    args = parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-scim-"))
    targets: list[Target] = []
    scaled: ScaleResult | None = None
    problems: dict[str, int] = {}
    revisions: dict[str, str] = {}
    try:
        targets = [start_keystead(work), start_reference(work), start_ceiling(work)]
        revisions["comparison"] = targets[0].revision
        print("warm-up (not measured)", flush=True)
        compare(targets, args, 1, min(100, args.users), min(4, args.groups))
        print(f"comparison: {args.rounds} rounds", flush=True)
        results = compare(targets, args, args.rounds, args.users, args.groups)
        for target in targets:
            problems[target.name] = _log_problems(target)
            target.server.stop()
        targets = []
        if not args.no_scale:
            fresh = start_keystead(work)
            targets = [fresh]
            revisions["scale run"] = fresh.revision
            scaled = scale(fresh, args)
            problems["Keystead (scale run)"] = _log_problems(fresh)
    finally:
        for target in targets:
            target.server.stop()
        if args.keep:
            print(f"data dirs and server logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    text = report(args, results, scaled, problems, revisions)
    common.record_metrics(
        "scim",
        {
            phase.label: median(x.ops_per_s for x in results[phase.key]["Keystead"])
            / median(x.ops_per_s for x in results[phase.key]["ceiling"])
            for phase in PHASES
        },
    )
    if not args.no_report:
        common.write_section("scim", text)
    print(text)


if __name__ == "__main__":
    main()
