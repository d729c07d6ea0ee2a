"""The benchmark's side of an agent process (bench/agentproc.py): start it, send it
signed webhooks and commands, wait for the events it reports."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from harness.system import owned_env, stop_pid

WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway secret for the lab
ROOT = Path(__file__).resolve().parent.parent

Event = dict[str, Any]


class AgentFailed(RuntimeError):
    pass


class AgentProcess:
    """A gitswarm agent in a child process, following ``repo``."""

    def __init__(self, workdir: Path, repo: str, settings: Mapping[str, Any]) -> None:
        self.workdir = workdir
        self.repo = repo
        self.settings = dict(settings)
        self.events: list[Event] = []
        self.url = ""
        self.pid = 0
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log: IO[bytes] | None = None
        # One client for every webhook, made before any is timed: a forge's sender is a
        # running service, it does not pay for building an HTTP client per delivery.
        self._http = httpx.Client(timeout=30.0)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Event:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "repo": self.repo,
            "workdir": str(self.workdir),
            "webhook_secret": WEBHOOK_SECRET,
            "settings": self.settings,
        }
        env = owned_env(os.getpid(), dict(os.environ))
        env["GITSWARM_KEYS_DIR"] = str(self.workdir / "keys")
        env["PYTHONPATH"] = str(ROOT)
        self._log = (self.workdir / "agent.log").open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.agentproc", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        self.pid = self._proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.wait(lambda e: e["event"] == "ready", timeout, since=0)
        if not ready.get("leader"):
            raise AgentFailed("the agent did not become leader: " + self.log_tail())
        self.url = str(ready["url"])
        return ready

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"event": "exit", "t": time.monotonic()})
            self._cond.notify_all()

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        try:
            if proc.stdin is not None:
                proc.stdin.write('{"cmd": "stop"}\n')
                proc.stdin.close()
            proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            stop_pid(proc.pid, grace=5.0)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self._log is not None:
            self._log.close()
        self._http.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.workdir / "agent.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- events ------------------------------------------------------------------------

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def wait(self, match: Callable[[Event], bool], timeout: float, *, since: int) -> Event:
        """The first event from index ``since`` on that ``match``es; waits for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[since:]:
                    if match(event):
                        return event
                    if event["event"] == "exit":
                        raise AgentFailed("the agent process ended: " + self.log_tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AgentFailed(f"no matching event within {timeout:.0f}s")
                self._cond.wait(left)

    def after(self, since: int) -> list[Event]:
        with self._cond:
            return list(self.events[since:])

    def wait_new(self, since: int, timeout: float) -> list[Event]:
        """The events from index ``since`` on, once there is at least one; waits for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events) <= since:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AgentFailed(f"no event within {timeout:.0f}s")
                self._cond.wait(left)
            fresh = list(self.events[since:])
        if any(e["event"] == "exit" for e in fresh):
            raise AgentFailed("the agent process ended: " + self.log_tail())
        return fresh

    # --- talking to it -----------------------------------------------------------------

    def command(self, cmd: str, timeout: float = 900.0, **args: Any) -> Event:
        assert self._proc is not None and self._proc.stdin is not None
        ident = next(self._ids)
        since = self.mark()
        self._proc.stdin.write(json.dumps({"cmd": cmd, "id": ident, **args}) + "\n")
        self._proc.stdin.flush()
        return self.wait(
            lambda e: e["event"] == "reply" and e.get("id") == ident, timeout, since=since
        )

    def webhook(self, sha: str) -> float:
        """A signed GitHub push webhook for ``sha`` on main; returns when it was answered."""
        body = json.dumps(
            {"ref": "refs/heads/main", "after": sha, "pusher": {"name": "bench"}}
        ).encode()
        digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": f"sha256={digest}",
            "Content-Type": "application/json",
        }
        response = self._http.post(f"{self.url}/webhooks/github", content=body, headers=headers)
        if response.status_code != 202:
            raise AgentFailed(f"webhook answered {response.status_code}: {response.text}")
        return time.monotonic()
