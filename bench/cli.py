"""CLI start-up: how long a `keystead` command takes from exec to exit, against the floor of
the libraries every command needs, and optionally against an older version, in one run.

    .venv/bin/python -m bench.cli [--runs 15] [--baseline GIT_REF] [--no-report]

Every command of the CLI is a fresh Python process, and most of its time is imports. Each
variant runs the same commands on one embedded installation (made by `keystead init` on a
fresh data dir), interleaved round by round so that the machine's drift falls on every
variant alike; the floor is `python -c "import sqlalchemy.orm, pydantic, typer"` (the
database toolkit, the validation library and the command framework every command loads).
With --baseline, that git ref is checked out into a temporary worktree and run from its
`src/` in the same rounds. Results go to docs/PERFORMANCE.md (section "cli").
"""

# The report's typography (×, –) is deliberate; subprocesses run our own fixed commands.
# ruff: noqa: RUF003

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from bench import common
from bench.scim import revision

COMMANDS = (("dataset", "list"), ("api-key", "list"), ("--help",))
FLOOR = "import sqlalchemy.orm, pydantic, typer"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(
    variants: dict[str, dict[str, str]], env: dict[str, str], runs: int
) -> dict[tuple[str, str], list[float]]:
    """Seconds per command and variant (and of the floor, under ``("floor", "")``) over
    ``runs`` rounds on one installation made with ``env``, the order alternating."""
    keystead = str(common.BIN / "keystead")
    times: dict[tuple[str, str], list[float]] = {}
    common.keystead_cli(env, "init")
    for variant_env in variants.values():  # compiled once, before the clock
        timed([keystead, *COMMANDS[0]], variant_env)
    for round_no in range(runs):
        order = list(variants.items())
        if round_no % 2:
            order.reverse()
        times.setdefault(("floor", ""), []).append(timed([sys.executable, "-c", FLOOR], env))
        for name, variant_env in order:
            for command in COMMANDS:
                took = timed([keystead, *command], variant_env)
                times.setdefault((name, " ".join(command)), []).append(took)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="rounds (every variant once each)")
    parser.add_argument("--baseline", help="git ref of an older version to run alongside")
    parser.add_argument("--no-report", action="store_true", help="don't write PERFORMANCE.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env["KEYSTEAD_DATA_DIR"] = str(work / "data")
    variants: dict[str, dict[str, str]] = {"Keystead": env}
    try:
        with contextlib.ExitStack() as stack:
            if args.baseline:
                base_rev = common.git("rev-parse", "--short", args.baseline)
                source = stack.enter_context(common.checkout(base_rev, work))
                variants[f"Keystead at {base_rev}"] = {**env, "PYTHONPATH": str(source)}
            times = measure(variants, env, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    floor = median(times[("floor", "")])
    lines = [f'| the floor: `python -c "{FLOOR}"` | {floor:.2f} | 1.0× |']
    for name in variants:
        for command in COMMANDS:
            runs = times[(name, " ".join(command))]
            lines.append(
                f"| {name}: `keystead {' '.join(command)}` | {median(runs):.2f} "
                f"({min(runs):.2f}–{max(runs):.2f}) | {median(runs) / floor:.1f}× |"
            )
    text = f"""
## CLI start-up (`bench/cli.py`)

Command: `{" ".join([".venv/bin/python -m bench.cli", *sys.argv[1:]])}`
Date: {common.now()}. Machine: {common.machine()}. Keystead's code: commit {revision()}.
Each command from exec to exit on a fresh embedded installation (`keystead init`, SQLite),
{args.runs} rounds, every variant once per round, the order alternating; median seconds
(min–max) and the ratio to the floor, the libraries every command loads imported alone.

| command | seconds | × floor |
|---|---|---|
{chr(10).join(lines)}
"""
    if not args.no_report:
        common.write_section_after("cli", text, after="memory")
    print(text)


if __name__ == "__main__":
    main()
