"""The bench's own world: a private swarm lab, a served Git remote, a scratch folder.

``BenchLab.open()`` starts ``harness.lab.up("b<pid>")`` (a private dockerd in its own
network namespace, swarm initialised, registry on 127.0.0.1:5000 with the busybox test
images) and a ``GitServer``; ``close()`` stops both and checks with the harness journal
that nothing the run started is left (processes, namespaces, cgroups, folders).

``DOCKER_HOST`` of this process points at the lab while it is open, so the Docker CLI,
``DockerSwarm`` and every child process (agents, naive agent) talk to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm
from harness import lab as labmod
from harness.gitserve import GitRemote, GitServer
from harness.images import REGISTRY
from harness.system import HarnessError, leftovers


def image(tag: str) -> str:
    return f"{REGISTRY}/busybox:{tag}"


@dataclass
class BenchLab:
    lab: labmod.Lab
    git: GitServer
    scratch: Path
    _remotes: int = 0
    _saved_host: str | None = field(default=None, repr=False)

    @staticmethod
    def open() -> BenchLab:
        name = f"b{os.getpid()}"
        started = time.monotonic()
        lab = labmod.up(name)
        scratch = Path(tempfile.mkdtemp(prefix=f"gitswarm-bench-{os.getpid()}-"))
        try:
            git = GitServer(scratch / "git").start()
        except BaseException:
            lab.down()
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        bench = BenchLab(lab, git, scratch, _saved_host=os.environ.get("DOCKER_HOST"))
        os.environ["DOCKER_HOST"] = lab.docker_host
        print(f"lab {name} up in {time.monotonic() - started:.1f} s ({lab.docker_host})")
        return bench

    @property
    def docker_host(self) -> str:
        return self.lab.docker_host

    def swarm(self) -> DockerSwarm:
        return DockerSwarm(Target("local", url=self.docker_host))

    def remote(self, prefix: str) -> GitRemote:
        self._remotes += 1
        return self.git.remote(f"{prefix}-{self._remotes}")

    def folder(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def docker(self, *args: str, timeout: float = 300.0) -> str:
        proc = subprocess.run(
            ["docker", "-H", self.docker_host, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise HarnessError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def close(self) -> list[str]:
        """Tear everything down; returns what is left (nothing, when all went well)."""
        started = time.monotonic()
        try:
            self.git.stop()
        finally:
            try:
                self.lab.down()
            finally:
                shutil.rmtree(self.scratch, ignore_errors=True)
                if self._saved_host is None:
                    os.environ.pop("DOCKER_HOST", None)
                else:
                    os.environ["DOCKER_HOST"] = self._saved_host
        left = leftovers(os.getpid())
        print(f"lab down in {time.monotonic() - started:.1f} s; left behind: {left or 'nothing'}")
        return left


@contextlib.contextmanager
def bench_lab() -> Iterator[BenchLab]:
    lab = BenchLab.open()
    try:
        yield lab
    finally:
        lab.close()
