"""Shared benchmark plumbing: servers on loopback, wrk runs, machine facts, the report."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
BIN = Path(sys.executable).parent

LUA_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "status_errors": %d, '
    .. '"socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def keystead_cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run one `keystead … --json` command in ``env`` and return its JSON answer."""
    out = subprocess.run(
        [str(BIN / "keystead"), *args, "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early ({process.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(
    cmd: list[str], env: dict[str, str], port: int, probe: str, log: Path | None = None
) -> Server:
    with open(log or os.devnull, "wb") as sink:
        process = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + probe, process)
    return Server(url, process)


def bare_app(module: str, port: int) -> list[str]:
    """The command serving a benchmark's own ASGI app (``module:app``) under exactly
    `keystead serve`'s uvicorn settings (httptools, uvloop, one worker)."""
    return [
        str(BIN / "uvicorn"), f"{module}:app", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def start_hello() -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return start(bare_app("bench.hello_app", port), env, port, "/hello")


def start_floor(key_pem: Path) -> Server:
    """The cryptographic floor of the SSO exchange on the bare stack (bench/floor_app.py),
    verifying tokens with the identity provider's public key in ``key_pem``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_FLOOR_KEY": str(key_pem)}
    return start(bare_app("bench.floor_app", port), env, port, "/")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@contextmanager
def checkout(ref: str, parent: Path) -> Iterator[Path]:
    """``ref`` checked out in a temporary git worktree under ``parent``, removed afterwards;
    yields its ``src/``, to put first on PYTHONPATH (the installed dependencies and the
    benchmark code stay the current ones)."""
    tree = parent / "baseline"
    git("worktree", "add", "--detach", str(tree), ref)
    try:
        yield tree / "src"
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # share of one core used by wrk


def wrk(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    seconds: int = 10,
    connections: int = 8,
) -> Result:
    """Run wrk (2 threads, `connections` keep-alive connections) replaying one request."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    lines = [f"wrk.method = {json.dumps(method)}", f"wrk.body = {json.dumps(body.decode())}"]
    for name, value in (headers or {}).items():
        if name.lower() == "content-length":
            continue  # wrk writes it from the body
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n" + LUA_DONE)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(script.name)
    data = json.loads(re.findall(r"^\{.*\}$", out, re.M)[-1])
    if data["status_errors"] or data["socket_errors"]:
        raise RuntimeError(f"wrk saw errors against {url}: {data}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / elapsed
    return Result(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        client_cpu=cpu,
    )


def summarise(results: list[Result]) -> dict[str, float]:
    rps = [r.rps for r in results]
    return {
        "rps": median(rps),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "p50": median(r.p50_ms for r in results),
        "p99": median(r.p99_ms for r in results),
        "client_cpu": median(r.client_cpu for r in results),
    }


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def record_metrics(bench: str, metrics: dict[str, float]) -> None:
    """Each phase's throughput as a share of the same run's ceiling, written as JSON to
    $KEYSTEAD_BENCH_METRICS when it is set: bench.before_after compares two versions of
    Keystead by these shares, which the machine's drift moves far less than raw rates."""
    target = os.environ.get("KEYSTEAD_BENCH_METRICS")
    if target:
        Path(target).write_text(json.dumps({"bench": bench, "metrics": metrics}, indent=1))


def write_section(name: str, text: str) -> None:
    """Replace (or append) the section between this benchmark's markers."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    current = PERFORMANCE_MD.read_text() if PERFORMANCE_MD.exists() else "# Performance\n"
    block = f"{begin}\n{text.strip()}\n{end}"
    if begin in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    PERFORMANCE_MD.write_text(current)


def write_section_after(name: str, text: str, after: str) -> None:
    """Like write_section, but a new section goes right after section `after`'s end marker
    (or at the end when that section is absent); an existing one is replaced in place."""
    begin, anchor = f"<!-- {name}:begin -->", f"<!-- {after}:end -->"
    current = PERFORMANCE_MD.read_text() if PERFORMANCE_MD.exists() else "# Performance\n"
    if begin in current or anchor not in current:
        write_section(name, text)
        return
    head, rest = current.split(anchor, 1)
    block = f"<!-- {name}:begin -->\n{text.strip()}\n<!-- {name}:end -->"
    PERFORMANCE_MD.write_text(head + anchor + "\n\n" + block + rest)
