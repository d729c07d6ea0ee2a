"""The policy gate on the real swarm: a commit that breaks an enforced rule, or a .rego file
that does not compile, is refused by `gitswarm sync` before any Docker write.

Each test builds a small GitOps repository in a temp folder (real `git`), syncs it once
with the real `gitswarm` command against the harness's private swarm, commits a bad
change and syncs again: exit 2, the services keep their spec version and their tasks,
no config version is created, and `gitswarm history` / `gitswarm status` show
PolicyViolation with the violation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import SwarmUnderTest

pytestmark = [pytest.mark.swarm, pytest.mark.registry]

GITSWARM = str(Path(sys.executable).with_name("gitswarm"))
ENV = "test"

SERVICE = """\
    image: {registry}/{image}
    init: true
    user: {user}
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"]
      interval: 1s
      timeout: 2s
      retries: 3
    deploy:
      replicas: 1
      update_config: {{order: stop-first, monitor: 1s}}
"""


def compose(registry: str, *, web_image: str = "busybox:1", web_user: str = "1000:1000") -> str:
    """Two services from the harness registry; ``web`` uses a config file."""
    web = SERVICE.format(registry=registry, image=web_image, user=json.dumps(web_user))
    api = SERVICE.format(registry=registry, image="busybox:1", user=json.dumps("1000:1000"))
    return (
        f"services:\n  web:\n{web}"
        "    configs:\n      - {source: web_conf, target: /etc/web.conf}\n"
        f"  api:\n{api}"
        "configs:\n  web_conf:\n    file: ./web.conf\n"
    )


GITSWARM_YML = """\
project: policygate
application:
  name: web
  stack: "{stack}"
  files: [compose.yml]
targets:
  local: {{}}
environments:
  {env}:
    target: local
    sync: {{automated: false, prune: true, self_heal: false, health_timeout: 90}}
    policies:
      default: "off"
      no_root_containers: enforce
      allowed_registries: {{mode: enforce, registries: ["127.0.0.1:5000"]}}
      required_healthcheck: warn
"""


@dataclass
class GitOpsRepo:
    path: Path
    state: str
    environ: dict[str, str]

    def write(self, name: str, text: str) -> None:
        file = self.path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            check=True,
            env=self.environ,
        )
        return proc.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def gitswarm(self, *args: str, timeout: float = 180) -> tuple[int, str, str]:
        proc = subprocess.run(
            [GITSWARM, *args],
            capture_output=True,
            text=True,
            env=self.environ,
            timeout=timeout,
            check=False,
        )
        return proc.returncode, proc.stdout, proc.stderr

    def sync(self) -> tuple[int, dict[str, Any], str]:
        code, out, err = self.gitswarm(
            "sync", "--env", ENV, "--repo", str(self.path), "--state", self.state, "--json"
        )
        return code, json.loads(out), err

    def json(self, *args: str) -> dict[str, Any]:
        code, out, err = self.gitswarm(*args, "--env", ENV, "--state", self.state, "--json")
        assert code == 0, out + err
        data: dict[str, Any] = json.loads(out)
        return data


@pytest.fixture()
def gitops(tmp_path: Path, swarm: SwarmUnderTest, stack_name: str, registry: str) -> GitOpsRepo:
    environ = {
        **os.environ,
        "DOCKER_HOST": swarm.docker_host,
        "GITSWARM_KEYS_DIR": str(tmp_path / "keys"),
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.test",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.test",
    }
    environ.pop("GITSWARM_STATE", None)
    repo = GitOpsRepo(tmp_path / "repo", str(tmp_path / "state.db"), environ)
    repo.path.mkdir()
    repo.git("init", "-q", "-b", "main")
    repo.write("gitswarm.yml", GITSWARM_YML.format(stack=stack_name, env=ENV))
    repo.write("compose.yml", compose(registry))
    repo.write("web.conf", "greeting = hello\n")
    repo.commit("A small stack: web and api")
    return repo


@dataclass(frozen=True)
class Snapshot:
    """What must not change: each service's spec version and tasks, the configs."""

    services: dict[str, tuple[int, frozenset[str]]]
    configs: frozenset[str]


def snapshot(client: docker.DockerClient, stack: str) -> Snapshot:
    label = {"label": f"com.docker.stack.namespace={stack}"}
    services = {}
    for service in client.services.list(filters=label):
        tasks = frozenset(t["ID"] for t in client.api.tasks(filters={"service": service.id}))
        services[service.name] = (service.attrs["Version"]["Index"], tasks)
    configs = frozenset(c.name for c in client.configs.list(filters=label))
    return Snapshot(services, configs)


def first_sync(repo: GitOpsRepo, client: docker.DockerClient, stack: str) -> Snapshot:
    code, data, err = repo.sync()
    assert code == 0, json.dumps(data, indent=2) + err
    [result] = data["results"]
    assert result["result"] == "Succeeded"
    before = snapshot(client, stack)
    assert set(before.services) == {f"{stack}_web", f"{stack}_api"}
    assert all(tasks for _, tasks in before.services.values())
    assert len(before.configs) == 1
    return before


def test_a_commit_breaking_an_enforced_rule_changes_nothing_on_the_swarm(
    gitops: GitOpsRepo, docker_client: docker.DockerClient, stack_name: str, registry: str
) -> None:
    good = gitops.git("rev-parse", "HEAD")
    before = first_sync(gitops, docker_client, stack_name)

    # The bad commit also changes the image and the config file: had anything been
    # applied, web would have a new spec version and a new config version would exist.
    gitops.write("compose.yml", compose(registry, web_image="busybox:2", web_user="root"))
    gitops.write("web.conf", "greeting = hello, root\n")
    bad = gitops.commit("Run web as root")

    code, data, err = gitops.sync()
    assert code == 2, json.dumps(data, indent=2) + err
    [result] = data["results"]
    assert result["result"] == "Failed"
    assert result["reason"] == "PolicyViolation"
    assert result["revision"] == bad
    assert result["plan"] is None  # stopped before the plan: not even a read of the swarm
    [violation] = [r for r in result["policy"]["results"] if r["blocking"]]
    assert violation["rule"] == "no_root_containers"
    assert violation["service"] == "web"
    assert violation["file"] == "compose.yml" and violation["line"] is not None
    [problem] = result["problems"]
    assert problem["rule"] == "no_root_containers"

    assert snapshot(docker_client, stack_name) == before

    [last, *earlier] = gitops.json("history")["operations"]
    assert last["result"] == "Failed" and last["reason"] == "PolicyViolation"
    assert last["kind"] == "policy-violation"  # recorded as what it is, not as a sync
    assert last["revision"] == bad
    assert "no_root_containers" in last["message"] and "service 'web'" in last["message"]
    assert earlier[0]["result"] == "Succeeded" and earlier[0]["revision"] == good

    [status] = gitops.json("status", "--repo", str(gitops.path))["statuses"]
    assert status["reason"] == "PolicyViolation"
    assert status["last_result"] == "Failed"
    assert "no_root_containers" in status["message"] and "service 'web'" in status["message"]
    assert status["deployed"] == good  # still the last good revision
    assert status["head"] == bad
    assert status["sync"] == "OutOfSync"
    assert status["health"] == "Healthy"

    # The text output names the rule, the service and where.
    code, out, _ = gitops.gitswarm(
        "sync", "--env", ENV, "--repo", str(gitops.path), "--state", gitops.state
    )
    assert code == 2
    assert "[PolicyViolation]" in out
    assert out.count("compose.yml:5:5: service 'web' runs as root (user: root)") == 1
    assert "[no_root_containers]" in out
    assert snapshot(docker_client, stack_name) == before


def test_a_commit_switching_off_the_rule_that_would_stop_it_changes_nothing_on_the_swarm(
    gitops: GitOpsRepo, docker_client: docker.DockerClient, stack_name: str, registry: str
) -> None:
    """No floor: the loosening commit is checked under the deployed revision's rules too."""
    good = gitops.git("rev-parse", "HEAD")
    before = first_sync(gitops, docker_client, stack_name)

    text = GITSWARM_YML.format(stack=stack_name, env=ENV)
    gitops.write(
        "gitswarm.yml", text.replace("no_root_containers: enforce", "no_root_containers: warn")
    )
    gitops.write("compose.yml", compose(registry, web_image="busybox:2", web_user="root"))
    bad = gitops.commit("Relax no_root_containers and run web as root, in one commit")

    code, data, err = gitops.sync()
    assert code == 2, json.dumps(data, indent=2) + err
    [result] = data["results"]
    assert (result["result"], result["reason"], result["revision"]) == (
        "Failed",
        "PolicyViolation",
        bad,
    )
    [violation] = [r for r in result["policy"]["results"] if r["blocking"]]
    assert violation["rule"] == "no_root_containers" and violation["service"] == "web"
    assert result["policy"]["modes"]["no_root_containers"] == "enforce"
    assert result["policy"]["loosened"] == [
        f"no_root_containers: enforce (as at {good[:12]}, the revision deployed last; this "
        "commit says warn, which applies only from the commit after it is deployed)"
    ]
    assert snapshot(docker_client, stack_name) == before
    [status] = gitops.json("status", "--repo", str(gitops.path))["statuses"]
    assert status["deployed"] == good


def test_with_a_floor_in_the_agent_config_a_docker_socket_mount_changes_nothing(
    gitops: GitOpsRepo,
    docker_client: docker.DockerClient,
    stack_name: str,
    registry: str,
    tmp_path: Path,
) -> None:
    """gitswarm.yml leaves no_privileged_containers off (default: off); the operator's
    floor enforces it, so a commit mounting the Docker socket cannot deploy."""
    agent_yml = tmp_path / "agent.yml"
    agent_yml.write_text(f"policies:\n  {ENV}:\n    no_privileged_containers: enforce\n")
    before = first_sync(gitops, docker_client, stack_name)

    socket = "    volumes: [/var/run/docker.sock:/var/run/docker.sock]\n"
    text = compose(registry, web_image="busybox:2")
    gitops.write("compose.yml", text.replace("  api:\n", "  api:\n" + socket, 1))
    bad = gitops.commit("Mount the Docker socket in api")

    code, out, err = gitops.gitswarm(
        "sync", "--env", ENV, "--repo", str(gitops.path), "--state", gitops.state,
        "--config", str(agent_yml), "--json",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 2, json.dumps(data, indent=2) + err
    [result] = data["results"]
    assert (result["result"], result["reason"], result["revision"]) == (
        "Failed",
        "PolicyViolation",
        bad,
    )
    [violation] = [r for r in result["policy"]["results"] if r["blocking"]]
    assert violation["rule"] == "no_privileged_containers" and violation["service"] == "api"
    assert violation["detail"].endswith("[pinned by the agent's config]")
    assert result["policy"]["loosened"] == [
        "no_privileged_containers: enforce (pinned by the agent's config; gitswarm.yml says off)"
    ]
    assert snapshot(docker_client, stack_name) == before


def test_a_rego_syntax_error_blocks_the_sync_and_names_the_file(
    gitops: GitOpsRepo, docker_client: docker.DockerClient, stack_name: str, registry: str
) -> None:
    before = first_sync(gitops, docker_client, stack_name)

    gitops.write(
        "policies/replicas.rego",
        "package gitswarm.replicas\n\nimport rego.v1\n\n"
        "deny contains msg if {\n  some name, svc in input.services\n  msg := \n}\n",
    )
    gitops.write("compose.yml", compose(registry, web_image="busybox:2"))  # a real change
    bad = gitops.commit("A policy with a syntax error, and a new image")

    code, data, err = gitops.sync()
    assert code == 2, json.dumps(data, indent=2) + err
    [result] = data["results"]
    assert (result["result"], result["reason"], result["revision"]) == (
        "Failed",
        "PolicyViolation",
        bad,
    )
    [error] = [r for r in result["policy"]["results"] if r["status"] == "error"]
    assert error["file"] == "policies/replicas.rego" and error["line"] is not None
    assert "policies/replicas.rego" in result["message"]

    assert snapshot(docker_client, stack_name) == before

    [last, *_] = gitops.json("history")["operations"]
    assert last["reason"] == "PolicyViolation" and "policies/replicas.rego" in last["message"]
    [status] = gitops.json("status", "--repo", str(gitops.path))["statuses"]
    assert status["reason"] == "PolicyViolation"
    assert "policies/replicas.rego" in status["message"]

    # policy check and validate say the same about the commit, before anyone syncs it
    code, out, _ = gitops.gitswarm(
        "policy", "check", "--env", ENV, "--repo", str(gitops.path), "--revision", bad
    )
    assert code == 2
    assert "policies/replicas.rego:" in out and ": error: " in out


def test_a_policy_that_reads_the_environment_or_explodes_blocks_the_sync_and_leaks_nothing(
    gitops: GitOpsRepo, docker_client: docker.DockerClient, stack_name: str, registry: str
) -> None:
    """Issue 11.1/11.2 on the real swarm: `gitswarm sync` with an age identity in its
    environment; a policy calling opa.runtime() and one doubling a string 26 times each
    fail as PolicyViolation naming the file, nothing is applied, and the identity is in
    no output and not in the store."""
    canary = "AGE-SECRET-KEY-1CANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYQQQQQQ"
    gitops.environ["GITSWARM_AGE_KEY_PRODUCTION"] = canary  # an identity sync does not use
    before = first_sync(gitops, docker_client, stack_name)
    refused = (
        "builtin opa.runtime is not allowed in gitswarm policies: Rego sees only input and "
        "data.gitswarm.params"
    )
    bomb = ['s0 := "x"'] + [f's{i} := concat("", [s{i - 1}, s{i - 1}])' for i in range(1, 27)]
    policies = {
        "leak": (
            "package gitswarm.leak\n\nimport rego.v1\n\n"
            'deny contains msg if { msg := sprintf("%v", [opa.runtime().env]) }\n',
            (5, 46, refused),
        ),
        "bomb": (
            "package gitswarm.bomb\n\nimport rego.v1\n\n"
            + "\n".join(bomb)
            + "\ndeny contains msg if { msg := s26 }\n",
            (None, None, "evaluation exceeded the 256 MiB memory limit"),
        ),
    }
    for name, (text, (line, column, words)) in policies.items():
        gitops.write(f"policies/{name}.rego", text)
        gitops.write("compose.yml", compose(registry, web_image="busybox:2"))  # a real change
        bad = gitops.commit(f"A policy: {name}")
        code, data, err = gitops.sync()
        assert code == 2, json.dumps(data, indent=2) + err
        [result] = data["results"]
        assert (result["result"], result["reason"], result["revision"]) == (
            "Failed",
            "PolicyViolation",
            bad,
        )
        [problem] = result["problems"]
        assert (problem["file"], problem["line"], problem["column"]) == (
            f"policies/{name}.rego",
            line,
            column,
        )
        assert problem["message"].endswith(f"cannot be evaluated: {words}")
        assert canary not in json.dumps(data) + err
        assert snapshot(docker_client, stack_name) == before
        (gitops.path / "policies" / f"{name}.rego").unlink()
    history = json.dumps(gitops.json("history"))
    assert refused in history and "256 MiB memory limit" in history
    assert canary not in history
    assert canary.encode() not in Path(gitops.state).read_bytes()
