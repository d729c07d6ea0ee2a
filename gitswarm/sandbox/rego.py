"""Rego evaluation in a bounded child process: the RegoEvaluator the CLI and the agent use.

policy/gate.py evaluates ``policies/*.rego`` through a :class:`~gitswarm.policy.rego.
RegoEvaluator`; :class:`RegoSandbox` is the one for real use (reconcile/sync.py's
Reconciler and cli/policy.py's PolicyGate create it). It runs policy/rego.py's
``evaluate_rego`` in ``python -I -m gitswarm.sandbox.worker`` children, so a policy from
a commit can neither read the agent's environment (the child's is empty: ``opa.runtime``
is refused at compile time anyway) nor exhaust it:

- memory: the child's resident set is read every 10 ms while it works; over
  ``Limits.memory`` (256 MiB) it is killed. (rego-cpp's allocator reserves 256 GB of
  address space when it loads, so RLIMIT_AS cannot bound it.)
- time: RLIMIT_CPU of ``Limits.cpu`` seconds per evaluation in the child, and a wall
  clock deadline of ``Limits.wall`` seconds here.
- output: each deny/warn rule's messages at most ``Limits.messages`` bytes, the whole
  answer at most ``Limits.answer`` bytes.
- a crash of the engine (rego-cpp aborts on some inputs) ends the child, not the caller.

Exceeding a bound is not an exception: it comes back as a RegoFailure naming the file(s)
being evaluated at the time, which the gate turns into a blocking policy error (and
raise_for_violations into a PolicyError). Only a child that cannot be started at all
raises SandboxError (retryable: the machine is at fault, not the commit).

Children are kept between evaluations (a start costs 0.1-0.5 s of Python and rego-cpp
imports, an evaluation of a small stack a few ms more than in-process): at most
``workers`` at once, each replaced after a failure, after ``MAX_REQUESTS`` evaluations,
or when it has grown past half the memory limit; ~30 MB each. They exit by themselves
when this process goes away (their stdin closes), even after a kill -9.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitswarm.errors import SandboxError
from gitswarm.policy.rego import (
    ALLOWED_BUILTINS,
    MAX_MESSAGE_BYTES,
    RegoFailure,
    RegoMessage,
    RegoOutcome,
)

MiB = 1024 * 1024
MAX_REQUESTS = 500  # evaluations per child before a fresh one
POLL = 0.01  # seconds between looks at a working child's memory
STARTUP = 30.0  # seconds for a child to import the engine, on a very busy machine
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class Limits:
    memory: int = 256 * MiB  # resident set of the child
    cpu: int = 5  # CPU seconds per evaluation
    wall: float = 10.0  # seconds per evaluation, from sending it to the answer
    messages: int = MAX_MESSAGE_BYTES  # per deny/warn rule
    answer: int = 8 * MiB  # the child's whole answer


class RegoSandbox:
    """``sandbox(sources, document, params) -> RegoOutcome`` in a bounded child process.
    Thread-safe; ``close()`` (or ``with``) ends the children, which are started lazily."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        workers: int = 2,
        allowed: frozenset[str] = ALLOWED_BUILTINS,
        command: tuple[str, ...] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.allowed = allowed
        self.command = command or (sys.executable, "-I", "-m", "gitswarm.sandbox.worker")
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        weakref.finalize(self, _stop_all, self._idle)

    def __call__(
        self, sources: Mapping[str, str], document: Mapping[str, Any], params: Mapping[str, Any]
    ) -> RegoOutcome:
        if not sources:
            return RegoOutcome()
        request = {
            "sources": dict(sources),
            "document": document,
            "params": params,
            "allowed": sorted(self.allowed),
            "cpu": self.limits.cpu,
            "max_message_bytes": self.limits.messages,
        }
        payload = json.dumps(request, separators=(",", ":"), default=str).encode() + b"\n"
        with self._slots:
            worker = self._take()
            keep = False
            try:
                outcome, keep = worker.evaluate(payload, sorted(sources))
            finally:
                fresh = worker.requests < MAX_REQUESTS and worker.rss() < self.limits.memory // 2
                if keep and fresh:
                    with self._lock:
                        self._idle.append(worker)
                else:
                    worker.stop()
        return outcome

    def prestart(self) -> None:
        """Start a child now, without waiting for it: the caller has work to do meanwhile
        (its ~0.1 s of start-up then overlaps rendering)."""
        with self._lock:
            if self._idle:
                return
        worker = _Worker.spawn(self.command, self.limits)
        with self._lock:
            self._idle.append(worker)

    def _take(self) -> _Worker:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker.spawn(self.command, self.limits)
        worker.wait_ready()
        return worker

    def close(self) -> None:
        _stop_all(self._idle)

    def __enter__(self) -> RegoSandbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _stop_all(workers: list[_Worker]) -> None:
    while workers:
        workers.pop().stop()


class _Dead(Exception):
    """The child is gone, or must go; ``args[0]`` says why, for the policy files."""


class _Worker:
    def __init__(self, process: subprocess.Popen[bytes], limits: Limits) -> None:
        self.process = process
        self.limits = limits
        self.requests = 0
        self._ready = False
        self._buffer = bytearray()
        if process.stdin is None or process.stdout is None:
            raise SandboxError("the Rego sandbox has no pipes")
        self._in = process.stdin.fileno()
        self._out = process.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)

    @classmethod
    def spawn(cls, command: tuple[str, ...], limits: Limits) -> _Worker:
        """A child, started; :meth:`wait_ready` before the first request."""
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},  # Rego must not see the agent's environment (age identities)
                cwd="/",
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the Rego sandbox: {exc}") from exc
        return cls(process, limits)

    def wait_ready(self) -> None:
        """Until the child says it is ready; SandboxError if it never does."""
        if self._ready:
            return
        stderr = self.process.stderr
        try:
            ready = self._line(time.monotonic() + STARTUP)
            if ready != b'{"ready":true}':
                raise _Dead(f"said {ready[:200]!r} instead of ready")
        except _Dead as exc:
            text = b""
            if stderr is not None:  # why Python could not start it, if it says
                with contextlib.suppress(OSError, ValueError):
                    os.set_blocking(stderr.fileno(), False)
                    text = stderr.read(4096) or b""
            self.stop()
            detail = text.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
            raise SandboxError(f"the Rego sandbox did not start: {detail[0]}") from None
        self._ready = True
        if stderr is not None:
            stderr.close()  # the child's stderr is /dev/null from here on

    def evaluate(self, payload: bytes, files: list[str]) -> tuple[RegoOutcome, bool]:
        """The outcome, and whether this child may serve again."""
        self.requests += 1
        deadline = time.monotonic() + self.limits.wall
        blame, package = files, None
        try:
            self._write(payload, deadline)
            while True:
                message = json.loads(self._line(deadline))
                if "stage" in message:
                    blame = [str(f) for f in message["stage"]]
                    package = None if message.get("package") is None else str(message["package"])
                elif "outcome" in message:
                    return _outcome(message["outcome"]), True
                else:
                    raise _Dead(f"the Rego sandbox failed: {message.get('error')}")
        except _Dead as exc:
            self.stop()
            text = str(exc.args[0])
        except (ValueError, KeyError, TypeError) as exc:
            self.stop()
            text = f"the Rego sandbox answered nonsense: {exc}"
        failures = [RegoFailure(f, text, package=package) for f in blame]
        return RegoOutcome(failures=failures), False

    # --- talking to the child, within the bounds --------------------------------------

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._watch(deadline)
            _, writable, _ = select.select([], [self._in], [], POLL)
            if writable:
                try:
                    view = view[os.write(self._in, view) :]
                except BrokenPipeError:
                    raise _Dead(self._death()) from None

    def _line(self, deadline: float) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > self.limits.answer:
                raise _Dead(f"evaluation answered more than {self.limits.answer // MiB} MiB")
            self._watch(deadline)
            readable, _, _ = select.select([self._out], [], [], POLL)
            if readable:
                chunk = os.read(self._out, 1 << 16)
                if not chunk:
                    raise _Dead(self._death())
                self._buffer += chunk

    def _watch(self, deadline: float) -> None:
        if self.rss() > self.limits.memory:
            self.stop()
            raise _Dead(f"evaluation exceeded the {self.limits.memory // MiB} MiB memory limit")
        if time.monotonic() > deadline:
            self.stop()
            if not self._ready:
                raise _Dead(f"no answer within {STARTUP:g} s")
            raise _Dead(f"evaluation exceeded the {self.limits.wall:g} s time limit")

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.stop()
            return "the Rego sandbox stopped answering"
        if code == -signal.SIGXCPU:
            return f"evaluation exceeded the {self.limits.cpu} s CPU time limit"
        if code < 0:
            return f"the Rego engine crashed ({signal.Signals(-code).name})"
        return f"the Rego engine exited with status {code}"

    def rss(self) -> int:
        """The child's resident set in bytes (0 once it is gone, or off Linux)."""
        try:
            statm = Path(f"/proc/{self.process.pid}/statm").read_bytes()
            return int(statm.split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return 0

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _outcome(data: Mapping[str, Any]) -> RegoOutcome:
    return RegoOutcome(
        messages=[
            RegoMessage(
                package=str(m["package"]),
                files=tuple(str(f) for f in m["files"]),
                kind=str(m["kind"]),
                message=str(m["message"]),
                service=None if m.get("service") is None else str(m["service"]),
            )
            for m in data["messages"]
        ],
        failures=[
            RegoFailure(
                file=None if f.get("file") is None else str(f["file"]),
                message=str(f["message"]),
                package=None if f.get("package") is None else str(f["package"]),
                line=None if f.get("line") is None else int(f["line"]),
                column=None if f.get("column") is None else int(f["column"]),
            )
            for f in data["failures"]
        ],
    )
