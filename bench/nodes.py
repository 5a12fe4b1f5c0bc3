"""Keystead on PostgreSQL with one and two uvicorn workers, beside the embedded default
(SQLite) and the same run's bare-stack ceiling: the data plane (`fpe/def_keys`,
`encryption/key`) under wrk, SCIM provisioning (`POST /Users`, new users) and the SSO
exchange (against the stand-in Entra of tests/support/fake_entra.py) under 8 client
threads, with PostgreSQL's own CPU per request.

    .venv/bin/python -m bench.nodes [--seconds 8] [--rounds 2] [--no-report]

PostgreSQL is the one at KEYSTEAD_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test); each configuration gets a fresh schema of its
own, dropped afterwards. PostgreSQL's CPU is the sum of every `postgres` process's user and
system time over the measured seconds (read from /proc: the whole server, so other work on
it counts too), divided by the requests answered. Results go to docs/PERFORMANCE.md
(section "nodes").
"""

# The report's typography is deliberate; subprocesses run our own fixed commands.

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from cryptography.hazmat.primitives.asymmetric import rsa
from tests.support.fake_entra import FakeEntra
from tests.support.postgres import private_schema
from tests.support.signin import csr_pem

from bench import common
from bench import sso as sso_bench
from bench.dataplane import signed
from bench.scim import Client as ScimClient
from bench.scim import group_body, members_patch, user_body

PG_URL = os.environ.get("KEYSTEAD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TARGET_PG_SHARE = 0.60  # one PostgreSQL node's def_keys against the embedded default's
TARGET_WORKERS_P50_MS = 2.0  # 2 workers' p50 at most this much above 1 worker's
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _pg(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def postgres_cpu() -> float:
    """CPU seconds every `postgres` process has used so far, counting those that have
    ended (a closed connection's process) through their parent's children's times."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLK_TCK


@dataclass
class Setup:
    label: str
    env: dict[str, str]
    workers: int
    papi: str = ""
    sapi: str = ""
    scim_path: str = ""
    scim_token: str = ""
    created: int = 0  # users whose creation was acknowledged (201)


@dataclass(frozen=True)
class SignIn:
    """The stand-in Entra, its users (with their tokens) and the CSRs exchanges send."""

    entra: FakeEntra
    users: list[sso_bench.BenchUser]
    bodies: list[bytes]


def prepare(setup: Setup, sign_in: SignIn) -> None:
    env = setup.env
    common.keystead_cli(env, "init")
    common.keystead_cli(
        env, "dataset", "create", "SSN", "--type", "structured", "--template", "ssn"
    )
    common.keystead_cli(env, "dataset", "create", "Notes", "--type", "unstructured")
    key = common.keystead_cli(
        env, "api-key", "create", "bench", "--dataset", "SSN", "--dataset", "Notes"
    )
    setup.papi, setup.sapi = str(key["access_key_id"]), str(key["secret_signing_key"])
    common.keystead_cli(env, "idp", "enable")
    entra = sign_in.entra
    common.keystead_cli(
        env, "idp", "configure", "--discovery-url", entra.discovery_url, "--issuer",
        entra.issuer, "--audience", entra.audience,
    )  # fmt: skip
    issued = common.keystead_cli(env, "idp", "scim-token")
    setup.scim_path = "/" + str(issued["scim_url"]).split("/", 3)[3]
    setup.scim_token = str(issued["token"])


@dataclass
class Measured:
    rps: float
    p50: float
    p99: float
    db_ms: float | None  # PostgreSQL CPU per request, ms


def wrk_case(url: str, method: str, headers: dict[str, str], body: bytes, seconds: int) -> Measured:
    before = postgres_cpu()
    result = common.wrk(url, method=method, headers=headers, body=body, seconds=seconds)
    used = postgres_cpu() - before
    return Measured(result.rps, result.p50_ms, result.p99_ms, used / (result.rps * seconds) * 1000)


Step = Callable[[], None]


def clients_case(
    seconds: int, steps: Callable[[int], tuple[Step, Step]], clients: int = 8
) -> Measured:
    """``clients`` threads, each with the (step, close) pair ``steps(slot)`` gives it,
    repeating its step for ``seconds``; any failure stops the run."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    stop = time.monotonic() + seconds

    def work(slot: int) -> None:
        step, close = steps(slot)
        try:
            while time.monotonic() < stop and not errors:
                started = time.perf_counter()
                step()
                latencies.append((time.perf_counter() - started) * 1000)
            close()
        except BaseException as exc:
            errors.append(exc)

    before = postgres_cpu()
    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    used = postgres_cpu() - before
    if errors:
        raise errors[0]
    latencies.sort()
    return Measured(
        len(latencies) / elapsed,
        latencies[len(latencies) // 2],
        latencies[int(len(latencies) * 0.99)],
        used / len(latencies) * 1000,
    )


def scim_create_case(setup: Setup, base: str, seconds: int) -> Measured:
    """POST /Users, a new user each time; every 201 is counted in ``setup.created``."""
    counter = iter(range(10**9))
    lock = threading.Lock()

    def steps(slot: int) -> tuple[Step, Step]:
        client = ScimClient(base, setup.scim_token)

        def step() -> None:
            with lock:
                n = next(counter)
            name = f"bench{n}-{secrets.token_hex(3)}@example.com"
            client.call("POST", "/Users", user_body(name, n, secrets.token_hex(8)), (201,))
            with lock:
                setup.created += 1

        return step, client.close

    return clients_case(seconds, steps)


def scim_members_case(setup: Setup, base: str, seconds: int) -> Measured:
    """PATCH /Groups/{id}: each client adds 100 members to a group of its own, then removes
    them, in turn (every request changes 100 memberships); the group's members are checked
    against the last change when the client stops."""
    listed = json.loads(ScimClient(base, setup.scim_token).call("GET", "/Users?count=100"))
    ids = [str(user["id"]) for user in listed["Resources"]]

    def steps(slot: int) -> tuple[Step, Step]:
        client = ScimClient(base, setup.scim_token)
        body = group_body(f"bench-members-{slot}-{secrets.token_hex(4)}")
        group = json.loads(client.call("POST", "/Groups", body, (201,)))["id"]
        full = [False]

        def step() -> None:
            patch = members_patch("Remove" if full[0] else "Add", ids)
            client.call("PATCH", f"/Groups/{group}", patch, (200, 204))
            full[0] = not full[0]

        def close() -> None:
            shown = json.loads(client.call("GET", f"/Groups/{group}"))
            if len(shown.get("members", [])) != (len(ids) if full[0] else 0):
                raise RuntimeError(f"group {group} lost or doubled a membership: {shown}")
            client.close()

        return step, close

    return clients_case(seconds, steps)


def sso_case(server: common.Server, path: str, sign_in: SignIn, seconds: int) -> Measured:
    make = sso_bench.sso_maker(path, sign_in.users, sign_in.bodies)
    before = postgres_cpu()
    run = sso_bench.load(
        "sso", server, make, clients=8, seconds=seconds, check=sso_bench.check_exchange
    )
    used = postgres_cpu() - before
    return Measured(
        run.rps, run.percentile(0.5), run.percentile(0.99), used / max(run.requests, 1) * 1000
    )


def run_setup(
    setup: Setup, sign_in: SignIn, seconds: int, rounds: int
) -> dict[str, list[Measured]]:
    port = common.free_port()
    cmd = [
        str(common.BIN / "keystead"),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(setup.workers),
    ]
    log = Path(setup.env["KEYSTEAD_DATA_DIR"]) / "serve.log"
    server = common.start(cmd, setup.env, port, "/healthz", log)
    base = server.url
    sso_bench.scim_users(base + setup.scim_path, setup.scim_token, sign_in.users, 8)
    sso_path = setup.scim_path + "/sso"
    query = f"ffs_name=SSN&papi={setup.papi}"
    body = json.dumps({"uses": 1}).encode()
    cases: dict[str, Callable[[int], Measured]] = {
        "GET fpe/def_keys": lambda s: wrk_case(
            f"{base}/api/v0/fpe/def_keys?{query}",
            "GET",
            signed("GET", f"{base}/api/v0/fpe/def_keys?{query}", setup.papi, setup.sapi),
            b"",
            s,
        ),
        "POST encryption/key": lambda s: wrk_case(
            f"{base}/api/v0/encryption/key",
            "POST",
            signed("POST", f"{base}/api/v0/encryption/key", setup.papi, setup.sapi, body),
            body,
            s,
        ),
        "SCIM POST /Users": lambda s: scim_create_case(setup, base + setup.scim_path, s),
        "SCIM PATCH group ±100 members": lambda s: scim_members_case(
            setup, base + setup.scim_path, s
        ),
        "SSO exchange": lambda s: sso_case(server, sso_path, sign_in, s),
    }
    results: dict[str, list[Measured]] = {name: [] for name in cases}
    try:
        for case in cases.values():
            case(2)  # warm-up
        for _ in range(rounds):
            for name, case in cases.items():
                try:
                    measured = case(seconds)
                except RuntimeError:
                    # What the server said besides its access log (a worker restarted?).
                    lines = log.read_text(errors="replace").splitlines()
                    print("\n".join(x for x in lines if "keystead.access" not in x)[-4000:])
                    raise
                print(f"{setup.label}, {name}: {measured}", flush=True)
                results[name].append(measured)
        # No lost or doubled write: every acknowledged user is there, once.
        users = json.loads(
            ScimClient(base + setup.scim_path, setup.scim_token).call("GET", "/Users?count=0")
        )["totalResults"]
        expected = len(sign_in.users) + setup.created
        if users != expected:
            raise RuntimeError(f"{setup.label}: {users} users stored, {expected} acknowledged")
    finally:
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-report", action="store_true", help="don't write PERFORMANCE.md")
    args = parser.parse_args()
    loads = os.getloadavg()
    master = base64.b64encode(os.urandom(32)).decode()
    plain = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    plain["KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES"] = "true"  # the stand-in Entra is on loopback
    entra = FakeEntra().start()
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=4096) for _ in range(4)]
    sign_in = SignIn(
        entra,
        sso_bench.entra_users(entra, 100),
        [json.dumps({"csr": csr_pem(key)}).encode() for key in keys],
    )
    try:
        table: dict[str, dict[str, list[Measured]]] = {}
        hello = common.start_hello()
        try:
            ceiling = [
                wrk_case(f"{hello.url}/hello", "GET", {}, b"", args.seconds)
                for _ in range(args.rounds)
            ]
        finally:
            hello.stop()
        sqlite = Setup(
            "SQLite (embedded), 1 worker",
            plain | {"KEYSTEAD_DATA_DIR": tempfile.mkdtemp(prefix="keystead-nodes-")},
            1,
        )
        prepare(sqlite, sign_in)
        table[sqlite.label] = run_setup(sqlite, sign_in, args.seconds, args.rounds)
        for workers in (1, 2):
            with private_schema(PG_URL, "ks_bench") as url:
                setup = Setup(
                    f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}",
                    plain
                    | {
                        "KEYSTEAD_DATABASE_URL": url,
                        "KEYSTEAD_MASTER_KEY": master,
                        "KEYSTEAD_DATA_DIR": tempfile.mkdtemp(prefix="keystead-nodes-"),
                    },
                    workers,
                )
                prepare(setup, sign_in)
                table[setup.label] = run_setup(setup, sign_in, args.seconds, args.rounds)
    finally:
        entra.stop()

    hello_rps = median(m.rps for m in ceiling)
    rows = [
        f"| bare Starlette hello (ceiling) | GET /hello | {hello_rps:,.0f} | 100% | "
        f"{median(m.p50 for m in ceiling):.2f} | {median(m.p99 for m in ceiling):.2f} | – |"
    ]
    for label, cases in table.items():
        for name, runs in cases.items():
            rps = median(m.rps for m in runs)
            db = [m.db_ms for m in runs if m.db_ms is not None]
            db_text = f"{median(db):.3f}" if label.startswith("PostgreSQL") and db else "–"
            rows.append(
                f"| {label} | {name} | {rps:,.0f} ({min(m.rps for m in runs):,.0f}–"
                f"{max(m.rps for m in runs):,.0f}) | {rps / hello_rps:.0%} | "
                f"{median(m.p50 for m in runs):.2f} | {median(m.p99 for m in runs):.2f} | "
                f"{db_text} |"
            )

    def rate(label: str, case: str) -> float:
        return median(m.rps for m in table[label][case])

    def p50(label: str, case: str) -> float:
        return median(m.p50 for m in table[label][case])

    pg_share = rate("PostgreSQL, 1 worker", "GET fpe/def_keys") / rate(
        "SQLite (embedded), 1 worker", "GET fpe/def_keys"
    )
    pg_host = PG_URL.rsplit("@", 1)[-1]
    one = p50("PostgreSQL, 1 worker", "GET fpe/def_keys")
    two = p50("PostgreSQL, 2 workers", "GET fpe/def_keys")
    acks = "met" if two - one <= TARGET_WORKERS_P50_MS else "not met"
    worker_gap = p50("PostgreSQL, 2 workers", "GET fpe/def_keys") - p50(
        "PostgreSQL, 1 worker", "GET fpe/def_keys"
    )
    text_out = f"""
## Several workers on PostgreSQL (`bench/nodes.py`)

Command: `.venv/bin/python -m bench.nodes --seconds {args.seconds} --rounds {args.rounds}`
Date: {common.now()}. Machine: {common.machine()}; load average at start {loads[0]:.2f} /
{loads[1]:.2f} / {loads[2]:.2f} (other work shared the machine).
Setup: `keystead serve` (httptools, uvloop) on a fresh data dir (SQLite) or a fresh schema
of the local PostgreSQL ({pg_host}), with 1 or 2 uvicorn workers; one API key with two
datasets; SCIM with IDP integration enabled. Data plane: wrk, 2 threads, 8 keep-alive
connections, one signed request replayed (one key, kept hot); SCIM: 8 threads with a
keep-alive connection each: new users, and member batches (each client adds 100 users to
a group of its own, then removes them, in turn; 100 membership changes per request); SSO:
8 threads exchanging tokens of 100 provisioned users from the stand-in Entra, with 4 CSRs
(4096-bit) reused. {args.rounds} rounds of {args.seconds} s per case, medians with min–max.
PostgreSQL CPU: all `postgres` processes' CPU (ended ones' too) over the case divided by
its requests (the server is shared, so other sessions' work counts too). After each setup
the users stored are counted against the creations acknowledged, and each member-batch
group against its last change: a lost or doubled write stops the run.

| setup | case | requests/s | share of ceiling | p50 ms | p99 ms | PostgreSQL CPU ms/request |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Target: one PostgreSQL worker's `fpe/def_keys` at least {TARGET_PG_SHARE:.0%} of the embedded
default's rate — measured {pg_share:.0%}: **{"met" if pg_share >= TARGET_PG_SHARE else "not met"}**.

Target: no delayed-ACK stall with several workers — `fpe/def_keys` p50 with 2 workers
{two:.2f} ms against {one:.2f} ms with 1 (difference {worker_gap:+.2f} ms, at most
{TARGET_WORKERS_P50_MS:.0f} ms allowed): **{acks}**.
"""
    if not args.no_report:
        common.write_section("nodes", text_out)
    print(text_out)


if __name__ == "__main__":
    main()
