"""The naive contender: the seed document's bash sync agent (bench/naive-agent.sh), run
as a process of its own against the served remote, timestamped as its lines arrive."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from bench.gitops import ENV
from harness.gitserve import git_env
from harness.system import owned_env, stop_group

SCRIPT = Path(__file__).resolve().parent / "naive-agent.sh"


class NaiveAgent:
    def __init__(self, workdir: Path, repo: str, stack: str, interval: float) -> None:
        self.workdir = workdir
        self.repo = repo
        self.stack = stack
        self.interval = interval
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = git_env(self.workdir / "git-config", owned_env(os.getpid()))
        env.update(
            REPO_URL=self.repo,
            REPO_DIR=str(self.workdir / "checkout"),
            ENVIRONMENT=ENV,
            SYNC_INTERVAL=f"{self.interval:g}",
            STACK=self.stack,
            STATE_FILE=str(self.workdir / "last-applied-commit"),
        )
        self._proc = subprocess.Popen(
            ["bash", str(SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_line(self, prefix: str, timeout: float, *, since: int) -> float:
        """When a line starting with ``prefix`` was read (from index ``since`` on)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for stamp, line in self.lines[since:]:
                    if line.startswith(prefix):
                        return stamp
                left = deadline - time.monotonic()
                if left <= 0 or (self._proc is not None and self._proc.poll() is not None):
                    tail = "\n".join(line for _, line in self.lines[-10:])
                    raise RuntimeError(f"naive agent: no {prefix!r} line; it said:\n{tail}")
                self._cond.wait(min(left, 1.0))

    def stop(self) -> None:
        if self._proc is not None:
            stop_group(self._proc.pid, grace=5.0)
            self._proc.wait(timeout=10)
            self._proc = None
        if self._reader is not None:
            self._reader.join(timeout=5)
