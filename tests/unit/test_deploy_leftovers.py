"""A kill -9 during `docker stack deploy` leaves its rendered file's folder in the temp dir;
the folder names its process, and the agent removes those of dead processes when it
starts (never a live process's, never through a link, never another user's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitswarm.cli.serve import ServeConfig, run_agent
from gitswarm.errors import GitswarmError
from gitswarm.swarm.client import clean_deploy_leftovers

DEPLOY = """\
import sys
from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm
swarm = DockerSwarm(Target("local"), host=sys.argv[1])
swarm.deploy("web", "services: {}\\n", resolve_image="never")
"""


class Engine(BaseHTTPRequestHandler):
    """Enough of an engine for the client to start: its API version."""

    def do_GET(self) -> None:
        body = json.dumps({"ApiVersion": "1.41"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def engine() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def killed_mid_deploy(tmp_path: Path, engine: str, temp: Path) -> tuple[int, Path]:
    """Run a deploy in a child process, kill -9 it while `docker stack deploy` runs."""
    started = tmp_path / "deploy-started"
    cli = tmp_path / "docker"
    cli.write_text(f"#!/bin/sh\ntouch {started}\nexec sleep 60\n")
    cli.chmod(0o755)
    env = {**os.environ, "TMPDIR": str(temp), "GITSWARM_DOCKER_CLI": str(cli)}
    child = subprocess.Popen(
        [sys.executable, "-c", DEPLOY, engine], env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert child.poll() is None, "the deploy ended before the CLI ran"
            assert time.monotonic() < deadline, "the fake CLI never ran"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the deploy and its CLI, as kill -9 would
        child.wait()
    (left,) = temp.glob(f"gitswarm-deploy-{child.pid}-*")
    assert (left / "stack.yml").read_text() == "services: {}\n"
    return child.pid, left


def test_the_agent_removes_what_a_killed_deploy_left_and_nothing_else(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    _pid, left = killed_mid_deploy(tmp_path, engine, temp)
    live = temp / "gitswarm-deploy-1-abcd1234"  # pid 1 runs: not ours to remove
    live.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("x")
    dead = 2**22 + 17  # above pid_max on this machine: no such process
    (temp / f"gitswarm-deploy-{dead}-link").symlink_to(target)
    (temp / "gitswarm-deploy-oldstyle").mkdir()  # no pid in the name: left alone

    # The agent cleans before it opens anything: a repo that cannot be opened is enough.
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with pytest.raises(GitswarmError):
        run_agent(ServeConfig(repo=str(tmp_path / "no-such-repo")))

    assert not left.exists()
    assert live.is_dir() and (target / "keep").exists()
    assert (temp / f"gitswarm-deploy-{dead}-link").is_symlink()
    assert (temp / "gitswarm-deploy-oldstyle").is_dir()


def test_a_live_process_keeps_its_deploy_folder(tmp_path: Path) -> None:
    mine = tmp_path / f"gitswarm-deploy-{os.getpid()}-x"
    mine.mkdir()
    other = tmp_path / "gitswarm-deploy-4242-y"
    other.mkdir()
    assert clean_deploy_leftovers(tmp_path, alive=lambda pid: pid == 4242) == []
    assert clean_deploy_leftovers(tmp_path, alive=lambda _pid: False) == [other]
    assert mine.is_dir() and not other.exists()
