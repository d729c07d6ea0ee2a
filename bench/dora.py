"""DORA and history at a million operations (issue 16): `gitswarm dora` and `gitswarm
history --env` over 1 M synthetic operations, on SQLite and on a throwaway PostgreSQL
(harness/postgres.py). Target: `gitswarm dora` answers in < 1 s on both.

The history is what a busy agent writes in a year: 1 M operations over 365 days in three
environments of ten applications, each with its service changes, deployments with the
commits they brought. The mix: 60 % syncs that changed nothing, 15 % deployments, 1.5 %
failed deploys, 1 % rollbacks, 6 % drift records (naming the drifted service) and 2 %
DriftResolved records, 6 % heals, 5 % policy violations, 3.5 % skipped syncs. Rows go
in with the store's own schema (a Store opened first migrates), in bulk, so that
generating them takes minutes, not the hours of a million single syncs. Timed:
``Store.dora`` in this process (the query plus the computation) and
the `gitswarm dora --json` and `gitswarm history` commands as fresh processes, median
of ``runs``: wall time, and the CPU time the process used (user + system), which a
loaded machine stretches less than the wall time; the load average is noted beside.
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.report import Section, Target, fmt, median
from gitswarm.store import Store, resolve_url
from gitswarm.store.schema import operation_changes, operation_commits, operations

ENVS = ("development", "staging", "production")
APPS = tuple(f"app{i}" for i in range(10))
END = datetime(2026, 12, 1, tzinfo=UTC)
MIX = (  # (weight, kind, result, reason, changed)
    (60.0, "sync", "Succeeded", None, False),
    (15.0, "sync", "Succeeded", None, True),
    (1.5, "sync", "Failed", "HealthTimeout", False),
    (1.0, "rollback", "Succeeded", None, True),
    (6.0, "drift", "Succeeded", "Drift", True),  # naming the drifted service
    (2.0, "drift", "Succeeded", "DriftResolved", False),
    (6.0, "heal", "Succeeded", None, True),
    (5.0, "policy-violation", "Failed", "PolicyViolation", False),
    (3.5, "sync", "Skipped", "RevisionMarkedBad", False),
)


def _rows(
    count: int, seed: int = 16
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
    rng = random.Random(seed)
    weights = [m[0] for m in MIX]
    start = END - timedelta(days=365)
    step = (END - start) / count
    for i in range(1, count + 1):
        _, kind, result, reason, changed = rng.choices(MIX, weights)[0]
        began = start + step * i
        sha = f"{i:040x}"
        op = {
            "id": i, "kind": kind, "app": rng.choice(APPS), "env": rng.choice(ENVS),
            "trigger": "poll", "actor": None, "holder": "agent-1", "revision": sha,
            "previous_revision": None, "author": "Dev", "commit_time": began - timedelta(hours=2),
            "started_at": began, "finished_at": began + timedelta(seconds=rng.randint(2, 90)),
            "result": result, "reason": reason, "message": "", "dry_run": False,
            "changed": 1 if changed else 0,  # as the store sets it (migration 0007)
        }  # fmt: skip
        action, fields = ("changed", ["image"]) if changed else ("unchanged", [])
        changes = [{"operation_id": i, "service": "web", "action": action, "fields": fields}]
        commits = []
        if changed and kind == "sync":
            for n in range(rng.randint(1, 2)):
                commits.append(
                    {"operation_id": i, "sha": f"{i:038x}{n:02x}", "subject": "feat: change",
                     "committed_at": began - timedelta(minutes=rng.randint(5, 600))}
                )  # fmt: skip
        yield op, changes, commits


def populate(url: str, count: int, batch: int = 20000) -> float:
    """Write ``count`` operations into the store at ``url``; seconds taken."""
    Store(url).close()  # create and migrate
    engine = sa.create_engine(resolve_url(url))
    started = time.monotonic()
    try:
        ops: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        commits: list[dict[str, Any]] = []

        def flush() -> None:
            with engine.begin() as conn:
                conn.execute(sa.insert(operations), ops)
                conn.execute(sa.insert(operation_changes), changes)
                if commits:
                    conn.execute(sa.insert(operation_commits), commits)
            ops.clear()
            changes.clear()
            commits.clear()

        for op, chg, com in _rows(count):
            ops.append(op)
            changes.extend(chg)
            commits.extend(com)
            if len(ops) >= batch:
                flush()
        if ops:
            flush()
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                serial = "SELECT setval(pg_get_serial_sequence('operations', 'id'), :n)"
                conn.execute(sa.text(serial), {"n": count})
                conn.execute(sa.text("ANALYZE"))
            else:
                conn.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()
    return time.monotonic() - started


def _cli(args: list[str], url: str, source: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (the child's user + system) of one `gitswarm` command; with
    ``source``, of the gitswarm in that source tree (the baseline) instead."""
    env = {**os.environ, "GITSWARM_STATE": url}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    script = Path(sys.executable).with_name("gitswarm")
    return _process([str(script), *args], env)


def _process(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    subprocess.run(argv, env=env, check=True, capture_output=True, cwd=tempfile.gettempdir())
    wall = time.monotonic() - began
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)


def _walls(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return median(w for w, _ in samples), median(c for _, c in samples)


def measure(url: str, runs: int, baseline: Path | None = None) -> dict[str, Any]:
    from gitswarm.dora import DoraSettings
    from gitswarm.store import quick

    since = END - timedelta(days=30)
    settings = DoraSettings(since, END)
    inproc: list[float] = []
    quick_read: list[float] = []
    with Store(url, clock=lambda: END) as store:
        in_window = len(store.dora_rows("production", None, since - timedelta(hours=1), END))
        for _ in range(runs):
            began = time.monotonic()
            report = store.dora("production", since=since, until=END)
            inproc.append(time.monotonic() - began)
            began = time.monotonic()
            mine = quick.dora(url, "production", None, settings)
            quick_read.append(time.monotonic() - began)
    assert mine is not None and mine.as_dict() == report.as_dict(), "the two reads differ"
    iso = since.isoformat()
    load = [os.getloadavg()[0]]
    dora_args = ["dora", "--env", "production", "--since", iso, "--json"]
    after: list[tuple[float, float]] = []
    before: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    driver: list[tuple[float, float]] = []
    history_cli: list[tuple[float, float]] = []
    python = [sys.executable, "-c"]
    module = "psycopg2" if "://" in url else "sqlite3"
    for _ in range(runs):  # interleaved, so that the load moves all alike
        bare.append(_process([*python, "pass"]))
        driver.append(_process([*python, f"import {module}"]))
        if baseline is not None:
            before.append(_cli(dora_args, url, baseline))
        after.append(_cli(dora_args, url))
        history_cli.append(_cli(["history", "--env", "production", "--json"], url))
    load.append(os.getloadavg()[0])
    return {
        "rows_read": in_window,
        "deployments": report.deployments,
        "report": report.as_dict(),
        "store_dora": median(inproc),
        "quick_dora": median(quick_read),
        "cli_dora": _walls(after)[0],
        "cli_dora_cpu": _walls(after)[1],
        "cli_dora_before": _walls(before)[0] if before else float("nan"),
        "cli_dora_before_cpu": _walls(before)[1] if before else float("nan"),
        "python": _walls(bare)[0],
        "driver_import": _walls(driver)[0],
        "driver": module,
        "cli_history": _walls(history_cli)[0],
        "cli_history_cpu": _walls(history_cli)[1],
        "load": (min(load), max(load)),
    }


def run(count: int = 1_000_000, runs: int = 5, baseline: Path | None = None) -> Section:
    """``baseline``: a source tree of another gitswarm (``git archive main``), whose
    `gitswarm dora` is timed interleaved with this one's: before and after."""
    from harness import postgres

    started = time.monotonic()
    section = Section(
        title=f"DORA and history at {count:,} operations",
        what="`gitswarm dora --env production --since 30d` and `gitswarm history --env "
        "production` over a year of synthetic history (three environments, ten apps), on "
        "SQLite and on PostgreSQL; medians of fresh processes, and of Store.dora in-process.",
        header=(
            "store",
            "generate",
            "rows read",
            "Store.dora",
            "quick.dora",
            "gitswarm dora before (CPU)",
            "gitswarm dora (CPU)",
            "gitswarm history (CPU)",
            "python -c pass",
            "import driver",
            "load",
        ),
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="gitswarm-bench-dora-") as tmp:
        sqlite_url = str(Path(tmp) / "state.db")
        server = postgres.start()
        try:
            pg_url = server.create_database("bench_dora")
            for name, url in (("SQLite", sqlite_url), ("PostgreSQL", pg_url)):
                generated = populate(url, count)
                results[name] = {"generate": generated, **measure(url, runs, baseline)}
        finally:
            server.stop()
    for name, r in results.items():
        section.rows.append(
            (name, fmt(r["generate"]), f"{r['rows_read']:,}", fmt(r["store_dora"]),
             fmt(r["quick_dora"]),
             f"{fmt(r['cli_dora_before'])} ({fmt(r['cli_dora_before_cpu'])})",
             f"{fmt(r['cli_dora'])} ({fmt(r['cli_dora_cpu'])})",
             f"{fmt(r['cli_history'])} ({fmt(r['cli_history_cpu'])})",
             fmt(r["python"]), f"{fmt(r['driver_import'])} ({r['driver']})",
             "{:.1f}..{:.1f}".format(*r["load"]))
        )  # fmt: skip
        section.targets.append(
            Target(f"gitswarm dora at {count:,} operations ({name})", "< 1 s",
                   fmt(r["cli_dora"]), r["cli_dora"] < 1.0)
        )  # fmt: skip
    section.notes.append(
        "The index plan (migration 0004): operations(env, started_at) serves the DORA "
        "window, operations(env, id) `history --env` newest first, operations(started_at) "
        "retention and export; changes and commits are read by operation id (their "
        "primary keys). Whether an operation changed something is its own column "
        "(migration 0007), so the window is read once without probing any changes."
    )
    if len(results) == 2:
        same = results["SQLite"]["report"] == results["PostgreSQL"]["report"]
        section.targets.append(
            Target("SQLite and PostgreSQL give the same report", "equal",
                   "equal" if same else "DIFFERENT", same)
        )  # fmt: skip
    section.notes.append(
        "quick.dora: the read `gitswarm dora` makes (sqlite3, or psycopg2 directly; no "
        "SQLAlchemy) and the computation, in this process; Store.dora: the same through "
        "the Store (the API's). import driver: `python -c 'import psycopg2'` (or sqlite3) "
        "as a process, beside `python -c pass`."
    )
    section.notes.append(
        "load: the 1-minute load average while the commands ran (the machine has "
        f"{os.cpu_count()} CPUs); wall times stretch with it, CPU times much less."
    )
    section.data = results
    section.seconds = time.monotonic() - started
    return section
