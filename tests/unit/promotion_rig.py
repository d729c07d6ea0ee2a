"""A small GitOps repository (dev -> prod) on a FakeSwarm with a real local Git and a
real SQLite store: the promotion rules without a swarm (the real one: integration)."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from gitswarm.promote.gates import GateCommand
from gitswarm.promote.pipeline import Promoter, PromoteRequest, PromotionOutcome
from gitswarm.reconcile.apply import Clock
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm

REPO = "reg.local:5000/shop/web"
BASE = """\
services:
  web:
    image: ${REGISTRY}/shop/web:${TAG}   # the tag comes from each env's .env
    deploy:
      replicas: 1
"""


@dataclass
class Now:
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.at


@dataclass
class Mono:
    """The host's monotonic clock, moved by hand (soaks: model/instant.py)."""

    at: float = 1000.0

    def __call__(self) -> float:
        return self.at


@dataclass
class Rig:
    path: Path
    store: Store
    swarm: FakeSwarm
    reconciler: Reconciler
    now: Now
    commands: dict[str, GateCommand] = field(default_factory=dict)
    mono: Mono = field(default_factory=Mono)
    boot: list[str] = field(default_factory=lambda: ["boot-1"])  # the host's boot id

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=T", "-c", "user.email=t@t", *args],
            cwd=self.path, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    def promoter(self, **kw: Any) -> Promoter:
        return Promoter(self.reconciler, **{"commands": self.commands, **kw})

    def later(self, **delta: float) -> None:
        """Time passes: the wall clock and the monotonic clock both move on."""
        step = dt.timedelta(**delta)
        self.now.at += step
        self.mono.at += step.total_seconds()

    def settings(self, prod_promotion: dict[str, Any], env: str = "prod") -> str:
        yaml = YAML()
        data = yaml.load((self.path / "gitswarm.yml").read_text())
        data["environments"][env]["promotion"] = prod_promotion
        with (self.path / "gitswarm.yml").open("w") as fh:
            yaml.dump(data, fh)
        return self.commit("promotion settings")

    def set_tag(self, env: str, tag: str) -> str:
        (self.path / f"environments/{env}/.env").write_text(
            f"# {env}\nREGISTRY=reg.local:5000\nTAG={tag}\n"
        )
        return self.commit(f"{env} {tag}")

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def sync(self, env: str) -> None:
        outcome = self.reconciler.sync(SyncRequest("web", env, wait=True))
        assert outcome.ok, outcome.message

    def promote(self, actor: str = "carol", **kw: Any) -> PromotionOutcome:
        return self.promoter().promote(PromoteRequest("web", "dev", "prod", actor=actor, **kw))

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def tag_in(self, env: str, rev: str = "HEAD") -> str:
        text = self.git("show", f"{rev}:environments/{env}/.env")
        return next(line[4:] for line in text.splitlines() if line.startswith("TAG="))


def make_rig(tmp_path: Path) -> Rig:
    path = tmp_path / "repo"
    (path / "base").mkdir(parents=True)
    (path / "base/docker-compose.yml").write_text(BASE)
    (path / "gitswarm.yml").write_text(
        "project: shop\n"
        "application: {name: web, stack: 'shop-{env}'}\n"
        "targets: {local: {}}\n"
        "environments:\n"
        "  dev: {target: local}\n"
        "  prod:\n"
        "    target: local\n"
        "    policies: {deployment_windows: off}\n"
    )
    for env, tag in (("dev", "1.1.0"), ("prod", "1.0.0")):
        (path / f"environments/{env}").mkdir(parents=True)
        (path / f"environments/{env}/docker-compose.yml").write_text("services: {}\n")
        (path / f"environments/{env}/.env").write_text(
            f"# {env}\nREGISTRY=reg.local:5000\nTAG={tag}\n"
        )
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    now, mono, boot = Now(), Mono(), ["boot-1"]
    store = Store(str(tmp_path / "state.db"), clock=now, monotonic=mono, boot=lambda: boot[0])
    swarm = FakeSwarm()
    reconciler = Reconciler(
        RepoSource.open(str(path)), store, lambda _t: swarm, clock=Clock(now=now, monotonic=mono)
    )
    rig = Rig(path, store, swarm, reconciler, now, mono=mono, boot=boot)
    rig.commit("the repository")
    return rig
