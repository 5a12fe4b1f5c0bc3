"""Two versions of Keystead under the same benchmarks, in one run: a change must not make
any phase slower.

    .venv/bin/python -m bench.before_after --baseline GIT_REF [--benches dataplane,scim,sso]

The baseline is checked out into a temporary git worktree; each benchmark then runs once
with that checkout's `src/` first on PYTHONPATH (the installed dependencies and the
benchmark code are the current ones) and once on the working tree, then again in the
other order when `--repeats 2` (ABBA: a drifting machine favours neither). Every phase is
compared by its throughput as a share of the same run's ceiling (the bare serving stack
under the same load), which the machine's drift moves far less than raw rates. The
result goes to docs/PERFORMANCE.md ("Before and after").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from bench import common

ROOT = Path(__file__).resolve().parent.parent
ARGS = {
    "dataplane": ["--no-report"],
    "scim": ["--no-report", "--no-scale"],
    "sso": ["--no-report", "--ttl-seconds", "0"],
}
TOLERANCE = 0.05


def run(bench: str, extra: list[str], source: Path | None, out: Path) -> dict[str, float]:
    env = {**os.environ, "KEYSTEAD_BENCH_METRICS": str(out)}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    label = "baseline" if source is not None else "working tree"
    print(f"== {bench} on the {label}", flush=True)
    subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *ARGS[bench], *extra],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return dict(json.loads(out.read_text())["metrics"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", required=True, help="git ref of the version before")
    parser.add_argument("--benches", default="dataplane,scim,sso")
    parser.add_argument("--repeats", type=int, default=1, choices=(1, 2))
    parser.add_argument("--no-report", action="store_true", help="don't write PERFORMANCE.md")
    parser.add_argument(
        "--title",
        default="",
        help="what the comparison is of: each title gets its own section in PERFORMANCE.md",
    )
    parser.add_argument(
        "--bench-args", default="", help="extra arguments for every benchmark (quoted)"
    )
    args = parser.parse_args()
    benches = [b.strip() for b in args.benches.split(",") if b.strip()]
    unknown = set(benches) - set(ARGS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    base_rev = common.git("rev-parse", "--short", args.baseline)
    head_rev = common.git("rev-parse", "--short", "HEAD")
    work = Path(tempfile.mkdtemp(prefix="bench-before-after-"))
    shares: dict[str, dict[str, dict[str, list[float]]]] = {}
    try:
        with common.checkout(base_rev, work) as baseline:
            for bench in benches:
                per = shares.setdefault(bench, {"before": {}, "after": {}})
                orders = [("before", "after"), ("after", "before")][: args.repeats]
                for n, order in enumerate(orders):
                    for which in order:
                        source = baseline if which == "before" else None
                        out = work / f"{bench}-{which}-{n}.json"
                        measured = run(bench, args.bench_args.split(), source, out)
                        for phase, share in measured.items():
                            per[which].setdefault(phase, []).append(share)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows, slower = [], []
    for bench, per in shares.items():
        for phase, before in per["before"].items():
            after = per["after"].get(phase)
            if not after:
                continue
            b, a = median(before), median(after)
            change = a / b - 1
            if change < -TOLERANCE:
                slower.append(f"{bench} {phase} ({change:+.1%})")
            rows.append(f"| {bench} | {phase} | {b:.1%} | {a:.1%} | {change:+.1%} |")
    verdict = f"Target: no phase more than {TOLERANCE:.0%} slower than before — " + (
        "**met**." if not slower else f"**not met**: {'; '.join(slower)}."
    )
    command = " ".join([".venv/bin/python -m bench.before_after", *sys.argv[1:]])
    heading = f"Before and after: {args.title}" if args.title else "Before and after"
    text = f"""
## {heading} (same run)

Command: `{command}`
Date: {common.now()}. Machine: {common.machine()}.
Before: commit {base_rev}; after: commit {head_rev} (the working tree). Each benchmark ran
on both in one run ({"ABBA order, " if args.repeats == 2 else ""}the same machine, the same
benchmark code and dependencies; the baseline's `src/` first on PYTHONPATH). Figures are
each phase's throughput as a share of that run's ceiling (the bare serving stack under the
same load){", medians of the two runs" if args.repeats == 2 else ""}; the benchmarks' own
sections give the full tables.

| benchmark | phase | before | after | change |
|---|---|---|---|---|
{chr(10).join(rows)}

{verdict}
"""
    if not args.no_report:
        slug = "-".join(args.title.lower().split())
        common.write_section("before-after" + (f"-{slug}" if slug else ""), text)
    print(text)


if __name__ == "__main__":
    main()
