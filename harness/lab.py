"""A ready lab: private engine, swarm initialised, registry running, images pushed."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from harness.engine import PrivateEngine, ping
from harness.images import Registry, build_all
from harness.system import PERSISTENT, journal, reap_stale, rmtree


@dataclass
class Lab:
    engine: PrivateEngine
    registry: Registry

    @property
    def docker_host(self) -> str:
        return self.engine.docker_host

    @property
    def root(self) -> Path:
        return self.engine.root.parent

    def down(self) -> None:
        try:
            self.registry.stop()
        finally:
            self.engine.stop(remove=True)
            rmtree(self.registry.root)
            with contextlib.suppress(OSError):
                self.root.rmdir()


def lab_root(name: str) -> Path:
    return Path(os.environ.get("GITSWARM_LAB_ROOT", "/var/tmp/gitswarm-lab")) / name


def up(name: str, *, images: bool = True, persistent: bool = False) -> Lab:
    """Start (or reuse) the lab ``name``. ``persistent`` labs survive their caller."""
    reap_stale()
    owner = PERSISTENT if persistent else os.getpid()
    lab = attach(name, owner=owner)
    engine, registry = lab.engine, lab.registry
    if persistent and ping(engine.sock) and registry.get("/v2/") is not None:
        return lab  # already up: reuse it
    journal(owner, "lab", name, dirs=[lab.root])
    try:
        engine.start()
        engine.swarm_init()
        registry.start()
        if images:
            build_all(engine)
    except BaseException:
        lab.down()
        raise
    return lab


def attach(name: str, *, owner: int = PERSISTENT) -> Lab:
    """The handles of lab ``name`` (to ``down`` one started earlier, or to start it)."""
    root = lab_root(name)
    engine = PrivateEngine(name=name, root=root / "engine", owner=owner)
    return Lab(engine, Registry(root=root / "registry", netns=engine.netns, owner=owner))
