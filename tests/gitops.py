"""Building small GitOps repositories for tests, and running the CLI against them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from gitswarm.cli.main import cli

HEALTHCHECK = {
    "test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
    "interval": "1s",
    "timeout": "3s",
    "retries": 3,
}


def service(image: str = "127.0.0.1:5000/busybox:1", **extra: Any) -> dict[str, Any]:
    """A quick, healthy test service (stops at once, healthcheck that works here)."""
    svc: dict[str, Any] = {
        "image": image,
        "init": True,
        "stop_grace_period": "1s",
        "healthcheck": dict(HEALTHCHECK),
        # start-first: the new task starts while the old one stops, so updates are quick
        "deploy": {"replicas": 1, "update_config": {"monitor": "1s", "order": "start-first"}},
    }
    svc.update(extra)
    return svc


def _dump(data: Any) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@dataclass
class GitOpsRepo:
    """A real Git repository shaped like a GitOps repo, with one app in env ``dev``."""

    path: Path
    stack: str
    env: str = "dev"
    sync: dict[str, Any] = field(default_factory=lambda: {"prune": True, "health_timeout": 60})

    def __post_init__(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.write_settings()
        self.write(f"environments/{self.env}/docker-compose.yml", "services: {}\n")
        self.write(f"environments/{self.env}/.env", "# variables\n")

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", "-c", "user.name=Test Author", "-c", "user.email=author@example.com", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout.strip()

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def write_settings(self, **env_extra: Any) -> None:
        settings = {
            "project": "t",
            "application": {"name": "app", "stack": self.stack},
            "targets": {"local": {}},
            "environments": {self.env: {"target": "local", "sync": dict(self.sync), **env_extra}},
        }
        self.write("gitswarm.yml", _dump(settings))

    def compose(self, services: Mapping[str, Any], **top: Any) -> None:
        self.write("base/docker-compose.yml", _dump({"services": dict(services), **top}))

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@dataclass
class Cli:
    """Runs `gitswarm` in-process against a swarm and a state store."""

    docker_host: str
    state: Path
    keys: Path

    def env(self) -> dict[str, str]:
        return {
            "DOCKER_HOST": self.docker_host,
            "GITSWARM_STATE": str(self.state),
            "GITSWARM_KEYS_DIR": str(self.keys),
        }

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env(), catch_exceptions=False)

    def json(self, *args: str) -> dict[str, Any]:
        result = self(*args, "--json")
        data: dict[str, Any] = json.loads(result.stdout)
        data["_exit_code"] = result.exit_code
        return data

    def subprocess(self, *args: str) -> subprocess.Popen[str]:
        env = dict(os.environ) | self.env()
        exe = str(Path(sys.executable).with_name("gitswarm"))
        return subprocess.Popen(
            [exe, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
