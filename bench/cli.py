"""CLI start-up: how long a command that does not deploy takes, against ``python -c pass``.

SPEC.md section 7: every command that does not deploy starts within 0.25 s (``--help``,
``render``, ``history``, ``status`` on a local store); issue 13 set ``--help`` ≤ 0.25 s
and ``history``/``status`` ≤ 0.5 s on this 2-core machine. Each command runs as a fresh
process (the installed ``gitswarm`` script of this interpreter), ``runs`` times,
interleaved with the baseline so that load on the machine hits both alike; figures are
medians of wall time and the peak RSS of the child (``os.wait4``).

The repository is the example of ``gitswarm init`` in a temporary folder; the store is a
SQLite file holding a few operations. ``status`` asks Docker for live state: here it is
pointed at a socket that does not exist, so the figure is start-up, the store and the
render without a Docker round trip. No lab is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.report import Section, Target, fmt, median, ratio

# (label, argv after `gitswarm`, target in seconds or None)
COMMANDS: tuple[tuple[str, tuple[str, ...], float | None], ...] = (
    ("gitswarm --help", ("--help",), 0.25),
    ("gitswarm history", ("history", "--env", "development"), 0.5),
    ("gitswarm status", ("status", "--env", "development"), 0.5),
    ("gitswarm render", ("render", "--env", "development"), 0.25),
    ("gitswarm validate", ("validate", "--env", "development"), None),
)


def _gitswarm() -> str:
    script = Path(sys.executable).with_name("gitswarm")
    if not script.exists():
        raise RuntimeError(f"{script} is missing: install gitswarm into this environment")
    return str(script)


# Runs each command and reports its wall time and peak RSS. It is a small process of its
# own because a child's ru_maxrss counts the memory of whoever forked it (the kernel keeps
# the high-water mark across exec): forked from this benchmark, every command would
# "use" the benchmark's own 80 MB.
_SPAWNER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    argv, cwd, env = json.loads(line)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    print(json.dumps([time.perf_counter() - started, usage.ru_maxrss / 1024]), flush=True)
"""


class _Spawner:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _SPAWNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def once(self, argv: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
        """Wall seconds and peak RSS (MB) of one run of ``argv``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([list(argv), str(cwd), env]) + "\n")
        self.proc.stdin.flush()
        wall, rss = json.loads(self.proc.stdout.readline())
        return float(wall), float(rss)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _compiled() -> None:
    """Byte-compile gitswarm's own modules, as installing a wheel does. This checkout is
    an editable install and the machine sets PYTHONDONTWRITEBYTECODE, so without this
    every run compiles ~60 modules from source (a quarter of ``status`` here), which no
    installed gitswarm does."""
    import compileall

    import gitswarm

    compileall.compile_dir(str(Path(gitswarm.__file__).parent), quiet=1)


def _prepare(folder: Path, env: dict[str, str]) -> None:
    _compiled()
    subprocess.run(
        [_gitswarm(), "init", str(folder / "repo")], env=env, check=True, capture_output=True
    )
    from gitswarm.store import Store

    with Store(env["GITSWARM_STATE"]) as store:
        for i in range(20):
            store.record_operation(
                "sync", "medianest", "development", "Succeeded", trigger="cli", revision=f"{i:040x}"
            )


def run(runs: int) -> Section:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gitswarm-bench-cli-") as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "GITSWARM_STATE": str(folder / "state.db"),
            "GITSWARM_KEYS_DIR": str(folder / "keys"),
            "DOCKER_HOST": f"unix://{folder}/no-docker.sock",
            "NO_COLOR": "1",
        }
        _prepare(folder, env)
        repo = folder / "repo"
        base = (sys.executable, "-c", "pass")
        samples: dict[str, list[tuple[float, float]]] = {label: [] for label, *_ in COMMANDS}
        floor: list[tuple[float, float]] = []
        spawner = _Spawner()
        try:
            for _ in range(runs):
                floor.append(spawner.once(base, repo, env))
                for label, args, _target in COMMANDS:
                    samples[label].append(spawner.once((_gitswarm(), *args), repo, env))
        finally:
            spawner.close()
    floor_wall = median(w for w, _ in floor)
    section = Section(
        title="CLI start-up",
        what=(
            "Commands that do not deploy, each a fresh process, interleaved with "
            "`python -c pass`: median wall time, its ratio to the baseline, peak RSS."
        ),
        header=("command", "wall", "ratio to python -c pass", "peak RSS"),
    )
    section.rows.append(
        ("python -c pass", fmt(floor_wall), "1.00x", fmt(median(m for _, m in floor), "MB"))
    )
    for label, _args, target in COMMANDS:
        wall = median(w for w, _ in samples[label])
        rss = median(m for _, m in samples[label])
        section.rows.append((label, fmt(wall), ratio(wall, floor_wall), fmt(rss, "MB")))
        section.data[label] = {"wall": [w for w, _ in samples[label]], "rss_mb": rss}
        if target is not None:
            section.targets.append(
                Target(
                    name=f"{label} starts",
                    goal=f"≤ {fmt(target)} ({target / floor_wall:.1f}x python -c pass here)",
                    measured=f"{fmt(wall)} ({ratio(wall, floor_wall)})",
                    met=wall <= target,
                )
            )
    section.data["python -c pass"] = {"wall": [w for w, _ in floor]}
    section.notes.append(
        "status points DOCKER_HOST at a socket that does not exist: start-up, the store "
        "and the render, without a Docker round trip."
    )
    section.seconds = time.monotonic() - started
    return section
