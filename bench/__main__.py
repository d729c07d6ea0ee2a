"""``python -m bench [BENCHMARK ...] [--quick]`` (``make bench``, ``make bench ARGS=--quick``).

Runs the benchmarks of SPEC.md section 7 on a private lab of their own (started here,
torn down at the end, nothing left behind) and prints figures, ratios and targets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import cli, dashboard, dora, drift, latency, noop, scale
from bench.lab import BenchLab
from bench.report import Machine, Section, loadavg
from bench.turns import Turns

BENCHMARKS = ("latency", "drift", "noop", "scale", "cli", "dora", "dashboard")
NEEDS_LAB = frozenset({"latency", "drift", "noop"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="gitswarm's benchmarks (SPEC.md section 7), side by side in one run.",
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"which to run: {', '.join(BENCHMARKS)} (default: all, in that order)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (3 runs, 3 rounds)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (default 7, quick 3)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="polling interval of the pollers (s)"
    )
    parser.add_argument(
        "--stacks",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=None,
        help="no-op benchmark: stack counts (default 20,50,100)",
    )
    parser.add_argument(
        "--services",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=None,
        help="scale curve: services in one stack (default 10,100,500)",
    )
    parser.add_argument(
        "--operations",
        type=int,
        default=1_000_000,
        help="dora benchmark: synthetic operations in the store (default 1000000)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="dora benchmark: a source tree of another gitswarm (`git archive main | tar -x "
        "-C DIR`) whose `gitswarm dora` is timed beside this one's",
    )
    parser.add_argument(
        "--rego",
        action="store_true",
        help="no-op benchmark: the repository has a policies/*.rego file (every sync evaluates it)",
    )
    parser.add_argument(
        "--no-status",
        action="store_true",
        help="no-op benchmark: do not time `gitswarm status` (minutes at 1,000 apps)",
    )
    parser.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="no-op benchmark: hold this flock only while measuring (set-up runs without "
        "it), e.g. /tmp/gitswarm-realswarm.lock",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the set-up (the lab, deploying stacks) this much nicer; measured parts "
        "run at the priority the bench started with",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    unknown = [b for b in args.benchmarks if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (choose from {', '.join(BENCHMARKS)})")
    chosen = [b for b in BENCHMARKS if b in args.benchmarks] or list(BENCHMARKS)
    runs = args.runs or (3 if args.quick else 7)
    stacks = args.stacks or (20, 50, 100)
    sizes = args.services or (10, 100, 500)

    started = time.monotonic()
    turns = Turns(args.lock, args.nice)  # before the lab: its processes inherit the nice
    sections: list[Section] = []
    lab: BenchLab | None = BenchLab.open() if NEEDS_LAB.intersection(chosen) else None
    machine = Machine.describe(lab.docker_host if lab else None)
    print(machine.text())
    print(f"runs: {runs}{' (quick)' if args.quick else ''}\n")
    left: list[str] = []
    try:
        plan: dict[str, Callable[[], Section]] = {
            "latency": lambda: latency.run(_need(lab), runs, args.interval),
            "drift": lambda: drift.run(_need(lab), runs, args.interval),
            "noop": lambda: noop.run(
                _need(lab),
                stacks,
                rounds=3 if args.quick else 5,
                rego=args.rego,
                status=not args.no_status,
                turns=turns,
            ),
            "scale": lambda: scale.run(sizes, repeats=3 if args.quick else 5),
            "cli": lambda: cli.run(runs=5 if args.quick else 11, baseline=args.baseline),
            "dora": lambda: dora.run(
                args.operations, runs=3 if args.quick else 5, baseline=args.baseline
            ),
            "dashboard": lambda: dashboard.run(runs=5 if args.quick else 15),
        }
        for name in chosen:
            section = plan[name]()
            sections.append(section)
            one, five, _ = loadavg()
            print(section.render())
            print(f"(load average after: {one:.2f} {five:.2f})\n", flush=True)
    finally:
        if lab is not None:
            left = lab.close()
    total = time.monotonic() - started
    print("== Targets (SPEC.md section 7) ==")
    for section in sections:
        for target in section.targets:
            print(target.line())
    print(f"\n{machine.text()}")
    print(f"total {total:.0f} s; left behind: {', '.join(left) if left else 'nothing'}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine.as_dict(),
                    "runs": runs,
                    "quick": args.quick,
                    "seconds": total,
                    "sections": {
                        s.title: {
                            "rows": s.rows,
                            "notes": s.notes,
                            "targets": [t.__dict__ for t in s.targets],
                            "data": s.data,
                        }
                        for s in sections
                    },
                },
                indent=2,
                default=str,
            )
        )
    return 1 if left else 0


def _need(lab: BenchLab | None) -> BenchLab:
    if lab is None:
        raise RuntimeError("this benchmark needs the lab")
    return lab


if __name__ == "__main__":
    sys.exit(main())
