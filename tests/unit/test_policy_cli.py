"""`gitswarm policy check` and the policy step of `gitswarm validate`, on the example
repository of `gitswarm init` and on small breakages of it: every result with file:line,
rule, mode and service; exit 2 on an enforced violation or a broken .rego file; warnings
and a closed deployment window never fail a pre-commit check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli

ENVS = ("development", "staging", "production")
PROD = "environments/production/docker-compose.yml"
DEV = "environments/development/docker-compose.yml"


@pytest.fixture()
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["init", str(repo)])
    assert result.exit_code == 0, result.output
    return repo


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _check(repo: Path, env: str, *extra: str) -> tuple[int, str, str]:
    return _run("policy", "check", "--env", env, "--repo", str(repo), *extra)


def _append(repo: Path, path: str, text: str) -> None:
    file = repo / path
    file.write_text(file.read_text() + text)


def _edit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text()
    assert old in text, f"{old!r} not in {path}"
    file.write_text(text.replace(old, new, 1))


def _commit(repo: Path, message: str) -> None:
    git = ["git", "-C", str(repo), "-c", "user.name=Ada", "-c", "user.email=ada@example.test"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", message], check=True)


ROOT_WORKER = """\
  medianest-worker:
    user: root
"""


@pytest.mark.parametrize("env", ENVS)
def test_the_example_passes_policy_check(example: Path, env: str) -> None:
    code, out, err = _check(example, env)
    assert code == 0, out + err
    assert f"medianest in {env} (stack medianest-{env}, working tree): rules " in out
    assert "passes: 0 violations, 0 warnings" in out
    assert err == ""


def test_the_example_validates_with_its_policies(example: Path) -> None:
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 0, out
    for env in ENVS:
        assert f"ok    medianest in {env}: stack medianest-{env}, 2 services" in out
        assert "policies: 0 violations, 0 warnings" in out


def test_an_overlay_that_runs_a_service_as_root_fails_the_check(example: Path) -> None:
    _append(example, PROD, ROOT_WORKER)
    code, out, err = _check(example, "production")
    assert code == 2
    line = (
        f"  {PROD}:28: enforce: no_root_containers: service 'medianest-worker' runs as root "
        "(user: root); use a non-root UID"
    )
    assert line in out.splitlines()
    assert "FAILS: 1 violation, 0 warnings" in out
    assert "policy check failed: 1 blocking result in production" in err
    # staging does not see production's overlay
    assert _check(example, "staging")[0] == 0


def test_validate_reports_enforced_violations_as_problems(example: Path) -> None:
    _append(example, PROD, ROOT_WORKER)
    code, out, err = _run("validate", "--repo", str(example))
    assert code == 2
    assert "ok    medianest in staging" in out
    assert "FAIL  medianest in production: stack medianest-production" in out
    assert "policies: 1 violations" in out
    assert (
        f"{PROD}:28:5: service 'medianest-worker' runs as root (user: root); use a non-root "
        "UID [no_root_containers]"
    ) in out.splitlines()
    assert "1 problem(s) found" in err
    code, out, _ = _run("validate", "--repo", str(example), "--json")
    data = json.loads(out)
    assert code == 2 and data["ok"] is False
    [problem] = data["problems"]
    assert problem == {
        "file": PROD,
        "line": 28,
        "column": 5,
        "rule": "no_root_containers",
        "message": "service 'medianest-worker' runs as root (user: root); use a non-root UID",
    }
    [prod] = [s for s in data["stacks"] if s["env"] == "production"]
    assert prod["ok"] is False and prod["policy_violations"] == 1


def test_an_image_from_another_registry_breaks_a_builtin_rule_and_the_rego_policy(
    example: Path,
) -> None:
    _append(example, PROD, "  medianest-worker:\n    image: ghcr.io/acme/worker:1.0.0\n")
    code, out, _ = _check(example, "production", "--json")
    assert code == 2
    data = json.loads(out)
    assert data["ok"] is False
    [report] = data["reports"]
    assert report["passes"] is False and report["blocked"] is True
    assert report["revision"] is None  # the working tree
    found = {(r["rule"], r["service"], r["file"], r["line"]) for r in report["results"]}
    assert ("allowed_registries", "medianest-worker", PROD, 28) in found
    assert ("rego:gitswarm.team_registry", "medianest-worker", PROD, 27) in found
    assert report["violations"] == 2


def test_a_warning_is_shown_and_does_not_fail(example: Path) -> None:
    # development: allowed_registries is warn
    _append(example, DEV, "  medianest-worker:\n    image: ghcr.io/acme/worker:1.0.0\n")
    code, out, _ = _check(example, "development")
    assert code == 0
    [warning] = [line for line in out.splitlines() if ": warn: " in line]
    assert warning.startswith(f"  {DEV}:")
    assert "allowed_registries: service 'medianest-worker' image ghcr.io/acme/worker" in warning
    assert "passes: 0 violations, 1 warning" in out
    code, out, _ = _run("validate", "--repo", str(example), "--env", "development")
    assert code == 0
    assert "policies: 0 violations, 1 warnings" in out
    assert any("warning: service 'medianest-worker' image" in line for line in out.splitlines())


def test_a_closed_deployment_window_is_informational(example: Path) -> None:
    _edit(
        example,
        "gitswarm.yml",
        "mode: warn            # the demo deploys at any hour",
        "mode: enforce  # the demo deploys at any hour",
    )
    _edit(  # a freeze over every date the test may run on: always closed
        example,
        "gitswarm.yml",
        '{name: year-end freeze, schedule: "0 0 20 12 *", duration: 14d}',
        "{name: test freeze, from: 2000-01-01, until: 2999-12-31}",
    )
    code, out, _ = _check(example, "production")
    assert code == 0, out
    assert "deployment window closed: inside deny window 'test freeze'" in out
    assert "a sync waits for it (DeploymentWindowClosed); the commit itself is fine" in out
    assert "passes: 0 violations, 0 warnings" in out
    code, out, _ = _check(example, "production", "--json")
    [report] = json.loads(out)["reports"]
    assert code == 0 and report["passes"] is True
    assert report["blocked"] is True  # a sync now would wait
    assert report["window"]["open"] is False
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 0, out
    assert "a sync waits for it" in out
    # with a real violation too, the violation fails the check, the window still does not
    _append(example, PROD, ROOT_WORKER)
    code, out, _ = _check(example, "production")
    assert code == 2
    assert "FAILS: 1 violation, 0 warnings" in out


def test_a_rego_syntax_error_fails_and_names_the_file(example: Path) -> None:
    (example / "policies" / "broken.rego").write_text(
        "package gitswarm.broken\n\nimport rego.v1\n\ndeny contains msg if {\n  msg := \n}\n"
    )
    for env in ENVS:  # a policy that cannot be read blocks every environment
        code, out, _ = _check(example, env)
        assert code == 2, env
        assert "FAILS: 0 violations, 1 policy error, 0 warnings" in out
        [line] = [x for x in out.splitlines() if "broken.rego" in x]
        assert line.startswith("  policies/broken.rego:")
        assert ": error: " in line and "cannot be evaluated" in line
    code, out, _ = _run("validate", "--repo", str(example), "--json")
    assert code == 2
    assert {p["file"] for p in json.loads(out)["problems"]} == {"policies/broken.rego"}


def test_a_bad_policies_block_is_a_config_problem(example: Path) -> None:
    _edit(
        example, "gitswarm.yml", "      no_root_containers: enforce\n", "      no_root: enforce\n"
    )
    code, out, _ = _run("validate", "--repo", str(example), "--json")
    assert code == 2
    problems: list[dict[str, Any]] = json.loads(out)["problems"]
    assert [p["file"] for p in problems] == ["gitswarm.yml"]
    assert "environments.development.policies.no_root" in problems[0]["message"]
    code, _, err = _check(example, "development")
    assert code == 2
    assert "error [ConfigInvalid]" in err and "no_root" in err


def test_revision_checks_the_commit_and_gives_rego_the_commit(example: Path) -> None:
    (example / "policies" / "author.rego").write_text(
        "package gitswarm.author\n\nimport rego.v1\n\n"
        'warn contains sprintf("committed by %s: %s", [input.commit.author, input.commit.message])'
        " if input.commit\n"
    )
    _commit(example, "Add the author policy")
    _append(example, PROD, ROOT_WORKER)  # uncommitted
    code, out, _ = _check(example, "production", "--revision", "HEAD")
    assert code == 0, out
    head = subprocess.run(
        ["git", "-C", str(example), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert f"(stack medianest-production, {head[:12]})" in out
    assert "warn: rego:gitswarm.author: committed by Ada: Add the author policy" in out
    code, out, _ = _check(example, "production")  # the working tree: root, and no commit
    assert code == 2
    assert "committed by" not in out


def test_app_selection(example: Path) -> None:
    code, out, _ = _check(example, "staging", "--app", "medianest", "--json")
    assert code == 0
    assert [r["app"] for r in json.loads(out)["reports"]] == ["medianest"]
    code, _, err = _check(example, "staging", "--app", "nope")
    assert code == 2 and "unknown application 'nope'" in err
    code, _, err = _check(example, "qa")
    assert code == 2 and "unknown environment 'qa'" in err


def test_an_exemption_is_shown_with_its_reason_and_passes(example: Path) -> None:
    _append(example, PROD, ROOT_WORKER)
    _edit(
        example,
        "gitswarm.yml",
        "      required_resource_limits: {mode: enforce, reservations: true}\n",
        "      required_resource_limits: {mode: enforce, reservations: true}\n"
        "      no_root_containers:\n"
        "        mode: enforce\n"
        '        exempt: {medianest-worker: "legacy job, SEC-1"}\n',
    )
    code, out, _ = _check(example, "production")
    assert code == 0, out
    assert (
        f"  {PROD}:28: exempt: no_root_containers: service 'medianest-worker' runs as root "
        "(user: root); use a non-root UID (exempt: legacy job, SEC-1)"
    ) in out.splitlines()
