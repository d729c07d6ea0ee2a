"""A hung engine cannot hold a listing, nor the cyclic GC paused for it (swarm/port.py
``gc_paused``, swarm/engine.py): against a fake engine socket that accepts and never
answers, or trickles its answer a byte at a time, both clients give up within their
timeout with a SwarmError, and the GC is on again on every way out; a pause that outlasts
its limit (whatever hangs in it) is ended by its timer."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitswarm.errors import SwarmError
from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm
from gitswarm.swarm.engine import EngineReads
from gitswarm.swarm.port import gc_paused


class _Hung:
    """A unix socket engine that answers ``/_ping`` and ``/version`` (so both clients
    connect) and then, for a listing, per ``mode``: never answers ("silent"), or sends a
    valid HTTP head and one byte of the body every 0.05 s, forever ("trickle")."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path, self.mode = str(path), mode
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            while not self.stop.is_set():
                request = conn.recv(65536)
                if not request:
                    return
                line = request.split(b"\r\n", 1)[0]
                if b"/_ping" in line or b"/version" in line:
                    body = b'{"ApiVersion": "1.41", "Version": "20.10"}'
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                    continue
                if self.mode == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n[")
                    while not self.stop.wait(0.05):
                        conn.sendall(b" ")
                self.stop.wait()  # silent: never a word
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        for conn in self.conns:
            conn.close()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture(params=["silent", "trickle"])
def hung(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    engine = _Hung(tmp_path / f"{request.param}.sock", request.param)
    try:
        yield engine.path
    finally:
        engine.close()


def _bounded(call: object, within: float) -> BaseException | None:
    """Run ``call`` on a thread; the exception it ended with, failing the test if it
    has not ended within ``within`` seconds (the old code hung here for good)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()  # type: ignore[operator]
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(within)
    assert not worker.is_alive(), f"the listing still waits after {within} s"
    return outcome[0]


def test_the_stdlib_client_gives_up_on_a_hung_engine_and_the_gc_is_on_again(hung: str) -> None:
    reads = EngineReads(Target(name="t"), hung, timeout=0.5)
    assert gc.isenabled()
    began = time.monotonic()
    error = _bounded(reads.services_by_stack, within=10)
    assert isinstance(error, SwarmError), error
    message = str(error)
    assert message.startswith("list the services of every stack: target 't' (unix://"), message
    assert message.endswith(
        "did not finish its answer within 0.5 s"
        if "trickle" in hung
        else "no answer (timed out); check targets.t.url and that the network lets the "
        "agent reach it"
    ), message
    assert time.monotonic() - began < 5
    assert gc.isenabled()
    reads.close()


def test_docker_py_gives_up_on_an_engine_whose_listing_never_comes(tmp_path: Path) -> None:
    engine = _Hung(tmp_path / "silent.sock", "silent")
    try:
        swarm = DockerSwarm(Target(name="t"), timeout=1, host=f"unix://{engine.path}")
        error = _bounded(swarm.services_by_stack, within=20)
        assert isinstance(error, SwarmError), error
        assert "timed out" in str(error)
        assert gc.isenabled()
        swarm.close()
    finally:
        engine.close()


def test_a_pause_that_outlasts_its_limit_ends_by_itself() -> None:
    assert gc.isenabled()
    with gc_paused(limit=0.2):
        assert not gc.isenabled()
        deadline = time.monotonic() + 5
        while not gc.isenabled() and time.monotonic() < deadline:
            time.sleep(0.02)  # a read that hangs
        assert gc.isenabled()
    assert gc.isenabled()


def test_the_gc_is_on_again_when_the_listing_fails() -> None:
    with pytest.raises(SwarmError), gc_paused():
        raise SwarmError("the engine went away")
    assert gc.isenabled()


def test_a_pause_inside_a_pause_leaves_the_outer_one_alone() -> None:
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer listing is still being read
    assert gc.isenabled()
