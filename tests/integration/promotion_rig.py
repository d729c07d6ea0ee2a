"""The example repository of `gitswarm init` on a served Git remote, set up for the
promotion tests: one stack per environment (names of the test's own, removed after),
promotion settings chosen by each test."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from harness.gitserve import GitRemote, WorkingCopy
from tests.conftest import Cleaner
from tests.gitops import Cli

ENVS = ("development", "staging", "production")
APP = "127.0.0.1:5000/medianest/app"


@dataclass
class ExampleRemote:
    cli: Cli
    remote: GitRemote
    wc: WorkingCopy
    stack: str

    @property
    def url(self) -> str:
        return self.remote.url

    def stack_of(self, env: str) -> str:
        return f"{self.stack}-{env}"

    def run(self, *args: str) -> Any:
        return self.cli(*args, "--repo", self.url)

    def json(self, *args: str) -> dict[str, Any]:
        return self.cli.json(*args, "--repo", self.url)

    def pull(self) -> None:
        self.wc.git("pull", "-q", "--ff-only")

    def set_env_var(self, env: str, key: str, value: str, message: str) -> str:
        path = self.wc.path / f"environments/{env}/.env"
        lines = [
            f"{key}={value}" if line.startswith(f"{key}=") else line
            for line in path.read_text().splitlines()
        ]
        path.write_text("\n".join(lines) + "\n")
        return self.commit_push(message)

    def set_promotion(self, env: str, promotion: Mapping[str, Any] | None) -> str:
        yaml = YAML()
        path = self.wc.path / "gitswarm.yml"
        settings = yaml.load(path.read_text())
        if promotion is None:
            settings["environments"][env].pop("promotion", None)
        else:
            settings["environments"][env]["promotion"] = dict(promotion)
        with path.open("w") as fh:
            yaml.dump(settings, fh)
        return self.commit_push(f"promotion settings of {env}")

    def commit_push(self, message: str) -> str:
        self.pull()
        self.wc.git("add", "-A")
        self.wc.git("commit", "-qm", message)
        self.wc.push()
        return self.wc.head()

    def remote_git(self, *args: str) -> str:
        self.pull()
        return self.wc.git(*args)


def remove_stacks(cleaner: Cleaner, stack_name: str) -> None:
    for env in ENVS:
        cleaner.submit(f"{stack_name}-{env}")


def example_remote(cli: Cli, remote: GitRemote, tmp_path: Path, stack_name: str) -> ExampleRemote:
    """The example repository pushed to ``remote``, every environment its own stack."""
    wc = remote.clone()
    staging = tmp_path / "example"
    result = cli("init", "--no-git", str(staging))
    assert result.exit_code == 0, result.output
    subprocess.run(["cp", "-a", f"{staging}/.", str(wc.path)], check=True)
    yaml = YAML()
    settings = yaml.load((wc.path / "gitswarm.yml").read_text())
    settings["application"]["stack"] = f"{stack_name}-{{env}}"
    with (wc.path / "gitswarm.yml").open("w") as fh:
        yaml.dump(settings, fh)
    rig = ExampleRemote(cli, remote, wc, stack_name)
    wc.git("add", "-A")
    wc.git("commit", "-qm", "the example repository")
    wc.push("HEAD:main")
    return rig
