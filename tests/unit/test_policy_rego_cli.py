"""What a pusher's ``policies/*.rego`` can make `gitswarm policy check`, `validate` and a
sync do: never show the agent's age identity, never exhaust the process, and a policy
file too large is said to be too large. The real `gitswarm` command in a process of its
own, with the real environment, and the Reconciler the agent uses.

Issue 11.1 / 11.2, and issue 12.5 (an oversized .rego had reason PathOutsideRepo).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

GITSWARM = str(Path(sys.executable).with_name("gitswarm"))
REFUSED = (
    "builtin opa.runtime is not allowed in gitswarm policies: Rego sees only input and "
    "data.gitswarm.params"
)

# Ways to reach the environment, one file each; (file, line, column) of each refusal.
LEAKS = {
    "policies/leak_message.rego": (
        "package gitswarm.leak_message\n\nimport rego.v1\n\ndeny contains msg if {\n"
        '\tmsg := sprintf("%v", [opa.runtime().env])\n}\n',
        (6, 24),
    ),
    "policies/leak_helper.rego": (
        "package gitswarm.leak_helper\n\nimport rego.v1\n\n"
        "# the age identity, one variable at a time\n"
        "keys := {k: v | some k, v in opa . runtime().env}\n"
        "warn contains k if { some k, _ in keys }\n",
        (6, 30),
    ),
    "policies/leak_with.rego": (
        "package gitswarm.leak_with\n\nimport rego.v1\n\n"
        "deny contains m if { m := json.marshal(input.app) with input.app as opa.runtime() }\n",
        (5, 69),
    ),
}


@pytest.fixture()
def example(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The example repository, and an environment whose GITSWARM_AGE_KEY_DEVELOPMENT is
    the development identity itself (as the agent in a container gets it)."""
    keys = tmp_path / "keys"
    env = {**os.environ, "GITSWARM_KEYS_DIR": str(keys)}
    repo = tmp_path / "repo"
    subprocess.run([GITSWARM, "init", str(repo)], env=env, check=True, capture_output=True)
    identity = (keys / "medianest" / "development.key").read_text()
    assert "AGE-SECRET-KEY-1" in identity
    env["GITSWARM_AGE_KEY_DEVELOPMENT"] = identity
    return repo, env


def gitswarm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GITSWARM, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def secret_parts(env: dict[str, str]) -> list[str]:
    """The identity's secret line, and a distinctive piece of it."""
    [line] = [x for x in env["GITSWARM_AGE_KEY_DEVELOPMENT"].splitlines() if "SECRET" in x]
    return [line, line[20:40]]


def test_policy_check_refuses_opa_runtime_with_file_line_and_never_shows_the_identity(
    example: tuple[Path, dict[str, str]],
) -> None:
    repo, env = example
    for path, (text, _) in LEAKS.items():
        (repo / path).write_text(text)
    result = gitswarm(env, "policy", "check", "--env", "development", "--repo", str(repo))
    assert result.returncode == 2, result.stdout + result.stderr
    errors = sorted(line for line in result.stdout.splitlines() if ": error: " in line)
    assert errors == sorted(
        f"  {path}:{line}: error: rego: policy {path}: cannot be evaluated: {REFUSED}"
        for path, (_, (line, _)) in LEAKS.items()
    )
    assert "FAILS: 0 violations, 3 policy errors, 0 warnings" in result.stdout
    assert result.stderr == "policy check failed: 3 blocking results in development\n"
    as_json = gitswarm(
        env, "policy", "check", "--env", "development", "--repo", str(repo), "--json"
    )
    validate = gitswarm(env, "validate", "--env", "development", "--repo", str(repo), "--json")
    assert as_json.returncode == validate.returncode == 2
    problems = json.loads(validate.stdout)["problems"]
    assert {(p["file"], p["line"], p["column"]) for p in problems} == {
        (path, line, column) for path, (_, (line, column)) in LEAKS.items()
    }
    for output in (result, as_json, validate):
        text = output.stdout + output.stderr
        assert "Traceback" not in text
        for part in secret_parts(env):
            assert part not in text


def test_a_memory_bomb_fails_policy_check_naming_its_file_and_the_command_lives(
    example: tuple[Path, dict[str, str]],
) -> None:
    repo, env = example
    lines = ['s0 := "x"'] + [f's{i} := concat("", [s{i - 1}, s{i - 1}])' for i in range(1, 27)]
    (repo / "policies" / "bomb.rego").write_text(
        "package gitswarm.bomb\n\nimport rego.v1\n\n"
        + "\n".join(lines)
        + "\ndeny contains msg if { msg := s26 }\n"
    )
    result = gitswarm(env, "policy", "check", "--env", "development", "--repo", str(repo))
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "  policies/bomb.rego: error: rego:gitswarm.bomb: policy policies/bomb.rego: cannot be "
        "evaluated: evaluation exceeded the 256 MiB memory limit"
    ) in result.stdout.splitlines()
    assert "Traceback" not in result.stdout + result.stderr


def test_an_oversized_policy_file_is_a_policy_error_naming_the_file_and_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    assert CliRunner().invoke(cli, ["init", str(repo)]).exit_code == 0
    (repo / "policies" / "huge.rego").write_text("package huge\n" + "# padding\n" * 30000)
    message = (
        "policies/huge.rego is 300013 bytes, over the limit of 262144 bytes for this kind "
        "of file; keep large data out of the GitOps repository"
    )
    args = ["policy", "check", "--env", "production", "--repo", str(repo)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr == f"error [PolicyViolation]: {message}\n"
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["reason"] == "PolicyViolation"
    assert error["problems"] == [
        {
            "file": "policies/huge.rego",
            "line": None,
            "column": None,
            "rule": "file-too-large",
            "message": message,
        }
    ]


def test_a_sync_refuses_the_leak_and_the_bomb_and_syncs_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's pipeline: a commit's policy that would leak or explode fails the sync
    as a PolicyViolation naming the file; nothing is deployed; the next commit syncs."""
    canary = "AGE-SECRET-KEY-1CANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYQQQQQQ"
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("GITSWARM_AGE_KEY_PRODUCTION", canary)  # another env's identity
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    leak, (line, column) = LEAKS["policies/leak_message.rego"]
    repo.write("policies/leak.rego", leak)
    repo.commit("a policy that reads the environment")
    swarm = FakeSwarm()
    store = Store(str(tmp_path / "state.db"))
    try:
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert (outcome.result, outcome.reason) == ("Failed", "PolicyViolation")
        assert outcome.message == (
            f"1 policy violation in app in dev:\n  policies/leak.rego:{line}:{column}: policy "
            f"policies/leak.rego: cannot be evaluated: {REFUSED} [rego]"
        )
        assert swarm.services("shop") == []

        bomb = ['s0 := "x"'] + [f's{i} := concat("", [s{i - 1}, s{i - 1}])' for i in range(1, 27)]
        repo.write(
            "policies/leak.rego",
            "package bomb\n\nimport rego.v1\n\n"
            + "\n".join(bomb)
            + "\ndeny contains msg if { msg := s26 }\n",
        )
        repo.commit("a policy that takes gigabytes")
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert (outcome.result, outcome.reason) == ("Failed", "PolicyViolation")
        assert outcome.message == (
            "1 policy violation in app in dev:\n  policies/leak.rego: policy policies/leak.rego: "
            "cannot be evaluated: evaluation exceeded the 256 MiB memory limit [rego:bomb]"
        )

        repo.write("policies/leak.rego", "package fine\n\nimport rego.v1\n\ndeny := set()\n")
        repo.commit("a policy that passes")
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert outcome.result == "Succeeded", outcome.message
        assert {s.name for s in swarm.services("shop")} == {"shop_web"}
    finally:
        store.close()
    assert canary.encode() not in (tmp_path / "state.db").read_bytes()
