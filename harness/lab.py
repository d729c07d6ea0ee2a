"""A ready lab: private engine, swarm initialised, registry running, images pushed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.engine import STATE_DIR, PrivateEngine, ping, reap_stale
from harness.images import Registry, build_all


@dataclass
class Lab:
    engine: PrivateEngine
    registry: Registry

    @property
    def docker_host(self) -> str:
        return self.engine.docker_host

    def down(self) -> None:
        try:
            self.registry.stop()
        finally:
            self.engine.stop(remove=True)
            shutil.rmtree(self.registry.root, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.engine.root.parent.rmdir()


def lab_root(name: str) -> Path:
    return Path(os.environ.get("GITSWARM_LAB_ROOT", "/var/tmp/gitswarm-lab")) / name


def up(name: str, *, images: bool = True, persistent: bool = False) -> Lab:
    """Start (or reuse) the lab ``name``. ``persistent`` labs survive their caller."""
    reap_stale()
    lab = attach(name)
    engine, registry = lab.engine, lab.registry
    if persistent and ping(engine.sock) and registry.get("/v2/") is not None:
        return lab  # already up: reuse it
    try:
        engine.start()
        engine.swarm_init()
        registry.start()
        if images:
            build_all(engine)
    except BaseException:
        lab.down()
        raise
    if persistent:
        _mark_persistent(engine)
    return lab


def _mark_persistent(engine: PrivateEngine) -> None:
    path = STATE_DIR / f"engine-{engine.name}.json"
    state = json.loads(path.read_text())
    state["owner"] = 1  # init never dies: reap_stale() leaves this lab alone
    path.write_text(json.dumps(state))


def attach(name: str) -> Lab:
    """The handles of a lab started earlier (for ``down``)."""
    root = lab_root(name)
    engine = PrivateEngine(name=name, root=root / "engine")
    return Lab(engine, Registry(root=root / "registry", netns=engine.netns))
