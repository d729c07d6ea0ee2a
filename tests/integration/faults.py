"""Tools of the fault suite (tests/integration/test_faults_*.py): put a real agent in a
real bad spot at a chosen moment.

- ``DockerTap``: a unix-socket proxy in front of a real engine. The agent (and the
  ``docker stack deploy`` it runs) talks to the engine through it; every byte is passed
  on, and when a request line matches a trigger (``POST /configs/create``, the third
  ``GET /tasks``...), the trigger's action runs — before the request reaches the engine,
  or once the engine's answer came back. That is how a test kills the agent exactly
  "after its config was created" or "in the middle of the stack deploy", without any
  hook in the product.
- ``AgentProcess``: ``gitswarm serve`` in a session of its own, so ``kill_9()`` kills it
  and its children (the Docker CLI of a deploy) at once, as when its container dies.
- ``FlakyRemote``: a Git server that answers garbage, slowly, or not at all.
- ``tiny_disk`` / ``fill``: a 4 MB tmpfs for the state store, and a file that fills it
  (the store's disk full: every write refused).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gitswarm.store import AGENT_LOCK, Store
from tests.gitops import _dump

_LISTENING = re.compile(r"HTTP API listening on 127\.0\.0\.1:(\d+)")
_REQUEST = re.compile(rb"(?:^|\n)(GET|POST|PUT|DELETE|HEAD) (?:/v[0-9.]+)?(/[^ ?]*)[^ ]* HTTP/1")


def serve_connections(
    server: socket.socket, closed: Callable[[], bool], handle: Callable[[socket.socket], None]
) -> None:
    """Accept on ``server`` until it is closed, handing each connection to ``handle``
    (the accept loop of both proxies here; run it in a thread)."""
    while not closed():
        try:
            client, _ = server.accept()
        except OSError:
            return
        handle(client)


@dataclass
class Trigger:
    method: str
    path: re.Pattern[str]
    action: Callable[[], object]
    after: bool  # run once the engine answered (the request took effect), else before
    nth: int = 1  # on the nth matching request
    seen: int = 0
    fired: threading.Event = field(default_factory=threading.Event)


class DockerTap:
    """A pass-through proxy from ``path`` (a unix socket) to the engine at ``upstream``."""

    def __init__(self, upstream: str, path: Path) -> None:
        self.upstream = upstream.removeprefix("unix://")
        self.path = path
        self._triggers: list[Trigger] = []
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._closed = False
        threading.Thread(
            target=serve_connections,
            args=(self._server, lambda: self._closed, self._connect),
            name="docker-tap",
            daemon=True,
        ).start()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def on(
        self,
        method: str,
        path: str,
        action: Callable[[], object],
        *,
        after: bool = False,
        nth: int = 1,
    ) -> threading.Event:
        """Run ``action`` on the ``nth`` request ``method path`` (a regex of the path
        without the API version); returns an event set once it ran."""
        trigger = Trigger(method, re.compile(path), action, after, nth)
        with self._lock:
            self._triggers.append(trigger)
        return trigger.fired

    def count(self, method: str, path: str) -> int:
        pattern = re.compile(path)
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and pattern.fullmatch(p))

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # --- the proxy ---------------------------------------------------------------------

    def _connect(self, client: socket.socket) -> None:
        """One connection: a pair of pumps to and from the engine."""
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.upstream)
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns += [client, upstream]
        pending: list[Trigger] = []  # "after" triggers waiting for the engine's answer
        threading.Thread(
            target=self._pump_requests, args=(client, upstream, pending), daemon=True
        ).start()
        threading.Thread(
            target=self._pump_answers, args=(upstream, client, pending), daemon=True
        ).start()

    def _matches(self, chunk: bytes) -> list[Trigger]:
        due: list[Trigger] = []
        for match in _REQUEST.finditer(chunk):
            method, path = match.group(1).decode(), match.group(2).decode()
            with self._lock:
                self.requests.append((method, path))
                for trigger in self._triggers:
                    if trigger.fired.is_set() or trigger.method != method:
                        continue
                    if trigger.path.fullmatch(path):
                        trigger.seen += 1
                        if trigger.seen == trigger.nth:
                            due.append(trigger)
        return due

    @staticmethod
    def _fire(trigger: Trigger) -> None:
        trigger.action()
        trigger.fired.set()

    def _pump_requests(
        self, src: socket.socket, dst: socket.socket, pending: list[Trigger]
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                due = self._matches(chunk)
                before = [t for t in due if not t.after]
                for trigger in before:
                    self._fire(trigger)
                if before:  # the request never reaches the engine
                    src.close()
                    dst.close()
                    return
                pending.extend(due)
                dst.sendall(chunk)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _pump_answers(self, src: socket.socket, dst: socket.socket, pending: list[Trigger]) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                with contextlib.suppress(OSError):
                    dst.sendall(chunk)
                while pending:
                    self._fire(pending.pop(0))
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def docker_tap(upstream: str, folder: Path) -> Iterator[DockerTap]:
    tap = DockerTap(upstream, folder / "docker-tap.sock")
    try:
        yield tap
    finally:
        tap.close()


class AgentProcess:
    """``gitswarm serve`` as a real process (its own session), configured by a file."""

    def __init__(
        self,
        tmp: Path,
        name: str,
        settings: dict[str, Any],
        docker_host: str,
        env: dict[str, str] | None = None,
    ) -> None:
        # Port 0: the agent binds a free port itself and logs it. A port picked here and
        # bound by the agent a moment later could be taken meanwhile (another xdist
        # worker's process, any outgoing connection's ephemeral port).
        self._port: int | None = None
        self.config = tmp / f"{name}.yml"
        self.config.write_text(_dump({**settings, "listen": "127.0.0.1:0"}))
        self.log_path = tmp / f"{name}.log"
        self.log = self.log_path.open("w")
        environ = dict(
            os.environ, DOCKER_HOST=docker_host, GITSWARM_KEYS_DIR=str(tmp / "keys"), **(env or {})
        )
        exe = str(Path(sys.executable).with_name("gitswarm"))
        self.proc = subprocess.Popen(
            [exe, "serve", "--config", str(self.config)], env=environ, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    @property
    def port(self) -> int:
        """The port the agent's HTTP API listens on (0 until its log says)."""
        if self._port is None:
            found = _LISTENING.search(self.output())
            if found is None:
                return 0
            self._port = int(found.group(1))
        return self._port

    def ready(self) -> dict[str, Any] | None:
        if not self.port:
            return None
        try:
            data: dict[str, Any] = httpx.get(
                f"http://127.0.0.1:{self.port}/readyz", timeout=2
            ).json()
        except (httpx.HTTPError, ValueError):
            return None
        return data

    def leader(self) -> bool:
        data = self.ready()
        return bool(data and data["checks"]["leader"]["detail"] == "active")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def kill_9(self) -> None:
        """SIGKILL to the agent and every process it started (its session)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill_9()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # a child it left (a deploy's CLI)
        self.log.close()


def kill_leader(leader: AgentProcess, store: Store) -> tuple[str, dt.datetime]:
    """``kill_9()`` the agent that holds the agent lease: (its holder id, when it died)."""
    info = store.lock_holder(AGENT_LOCK)
    assert info is not None, "no agent holds the lease"
    killed = dt.datetime.now(dt.UTC)
    leader.kill_9()
    return info.holder, killed


def takeover_seconds(store: Store, dead: str, killed: dt.datetime) -> float:
    """Seconds from the leader's death to another agent's taking the lease, as the store
    dated it (``acquired_at``, the clock leases run on): the standby's latency, not that
    of the test's polling of its /readyz (each look an HTTP request to a loaded process)."""
    info = store.lock_holder(AGENT_LOCK)
    assert info is not None and info.holder != dead, info
    return (info.acquired_at - killed).total_seconds()


class FlakyRemote:
    """A TCP proxy in front of a Git HTTP server whose behaviour a test switches:
    ``mode`` "pass" (forward), "garbage" (answer every request with bytes that are no Git
    protocol), "slow" (hold each answer ``delay`` seconds) or "down" (refuse: close)."""

    def __init__(self, upstream_url: str) -> None:
        parsed = httpx.URL(upstream_url)
        self.upstream = (parsed.host, parsed.port or 80)
        self.mode = "pass"
        self.delay = 0.0
        self.requests = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = str(parsed.copy_with(port=self.port))
        self._closed = False
        threading.Thread(
            target=serve_connections,
            args=(self._server, lambda: self._closed, self._count_and_serve),
            name="flaky-remote",
            daemon=True,
        ).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.close()

    def _count_and_serve(self, client: socket.socket) -> None:
        self.requests += 1
        threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        mode = self.mode
        with client:
            if mode == "down":
                return
            if mode == "garbage":
                with contextlib.suppress(OSError):
                    client.recv(65536)
                    body = b"\x00\x01 this is not the git protocol \xff\xfe" * 4
                    client.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-"
                        b"advertisement\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (len(body), body)
                    )
                return
            with socket.create_connection(self.upstream) as upstream:
                done = threading.Event()

                def answers() -> None:
                    with contextlib.suppress(OSError):
                        while chunk := upstream.recv(65536):
                            if self.mode == "slow":
                                time.sleep(self.delay)
                            client.sendall(chunk)
                    done.set()
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_WR)

                threading.Thread(target=answers, daemon=True).start()
                with contextlib.suppress(OSError):
                    while chunk := client.recv(65536):
                        upstream.sendall(chunk)
                    upstream.shutdown(socket.SHUT_WR)
                done.wait(120)


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str = "4m") -> Iterator[Path]:
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "gitswarm-faults", str(folder)],
                   check=True)  # fmt: skip
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler
