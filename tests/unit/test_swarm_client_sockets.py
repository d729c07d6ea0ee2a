"""A Docker client that cannot reach its engine leaves nothing open: no socket, no fd, no
ResourceWarning (docker-py's unix connection leaks its socket when connect() fails, and
its constructor connects to ask for the API version: swarm/client.py closes it)."""

from __future__ import annotations

import gc
import os
import socket
import warnings
from pathlib import Path

import pytest

from gitswarm.errors import SwarmError
from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", ["missing", "refusing"])
def test_a_client_on_a_dead_unix_socket_leaks_no_socket(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "docker.sock"
    bound = None
    if kind == "refusing":  # a socket file no one listens on: connect() is refused
        bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound.bind(str(path))
    gc.collect()
    before = open_fds()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            for _ in range(3):
                with pytest.raises(SwarmError) as info:
                    DockerSwarm(Target("local"), host=f"unix://{path}")
                assert f"target 'local' (unix://{path}): cannot connect" in info.value.message
            leaked = open_fds() - before  # before the GC: a leak is still open here
            gc.collect()
        assert leaked == set()
        assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []
    finally:
        if bound is not None:
            bound.close()
