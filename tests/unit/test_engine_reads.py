"""swarm/engine.py, the standard-library client of ``gitswarm status``'s reads: it says
what docker-py's client says when the engine is not there, passes the engine's own
error message on, and refuses every write. (That it reads what docker-py reads is
tests/integration/test_status_from_the_agent.py's, on the real swarm.)"""

from __future__ import annotations

import gc
import json
import socketserver
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from gitswarm.errors import SwarmError
from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm
from gitswarm.swarm.engine import EngineReads, reads_client, socket_path
from gitswarm.swarm.port import down_node_ids

NODES = [
    {"ID": "n1", "Status": {"State": "ready"}},
    {"ID": "n2", "Status": {"State": "down", "Message": "heartbeat failure"}},
    {"ID": "n3", "Status": {"State": "unknown"}},  # the CLI counts it as not down
    {"ID": "n4", "Status": {"State": "disconnected"}},
]


class _Engine(BaseHTTPRequestHandler):
    """An engine that answers /_ping and refuses the rest, as dockerd does on a node that
    is not a swarm manager."""

    paths: list[str]

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.path == "/_ping":
            body, status = b"OK", 200
        elif self.path == "/nodes":  # GET /nodes, as a manager answers it (trimmed)
            body, status = json.dumps(NODES).encode(), 200
        else:
            body = json.dumps({"message": "This node is not a swarm manager."}).encode()
            status = 503
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # type: ignore[no-untyped-def]
        conn, _ = super().get_request()
        return conn, ("local", 0)  # BaseHTTPRequestHandler wants a (host, port)


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    path = str(tmp_path / "engine.sock")
    paths: list[str] = []
    handler = type("Handler", (_Engine,), {"paths": paths})
    server = _UnixServer(path, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path, paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_an_absent_engine_is_worded_as_docker_py_words_it(tmp_path: Path) -> None:
    target = Target("local", url=f"unix://{tmp_path}/gone.sock")
    with pytest.raises(SwarmError) as ours:
        reads_client(target)
    theirs = ""
    with warnings.catch_warnings():
        # docker-py leaves the socket of a failed connect to the garbage collector (its
        # UnixHTTPConnection.connect never closes it); ours closes it (engine.py).
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            DockerSwarm(target)
        except SwarmError as exc:
            theirs = exc.message
        gc.collect()
    assert ours.value.message == theirs
    assert "cannot connect (no socket there)" in theirs


def test_the_engines_error_is_passed_on_with_what_was_asked(
    engine: tuple[str, list[str]],
) -> None:
    path, paths = engine
    reads = EngineReads(Target("local", url=f"unix://{path}"), path)
    try:
        with pytest.raises(SwarmError) as refused:
            reads.observe("shop")
    finally:
        reads.close()
    assert refused.value.message == (
        "list services of stack shop: This node is not a swarm manager. (HTTP 503)"
    )
    assert paths == [
        "/_ping",
        # the stack's label, and its name prefix (the engine's index: swarm/port.py)
        "/services?filters=%7B%22label%22%3A%5B%22com.docker.stack.namespace%3Dshop%22%5D"
        "%2C%22name%22%3A%5B%22shop_%22%5D%7D",
    ]


def test_it_only_reads(engine: tuple[str, list[str]]) -> None:
    path, _ = engine
    reads = EngineReads(Target("local", url=f"unix://{path}"), path)
    try:
        with pytest.raises(SwarmError, match="only reads"):
            reads.remove_service("x")
    finally:
        reads.close()
    assert reads.writes == 0


def test_only_unix_sockets_get_it() -> None:
    assert socket_path(Target("local", url="unix:///run/d.sock")) == "/run/d.sock"
    assert socket_path(Target("prod", url="tcp://10.0.0.1:2376")) is None
    assert socket_path(Target("local"), host="ssh-tunnel") is None


def test_the_nodes_that_are_down_are_those_the_docker_cli_leaves_out(
    engine: tuple[str, list[str]],
) -> None:
    """``docker service ls`` counts a running task unless its node's state is "down"
    (docker/cli AppendServiceStatus); ``down_nodes`` names exactly those nodes."""
    path, paths = engine
    reads = EngineReads(Target("local", url=f"unix://{path}"), path)
    try:
        assert reads.down_nodes() == frozenset({"n2"}) == down_node_ids(NODES)
    finally:
        reads.close()
    assert paths == ["/_ping", "/nodes"]
