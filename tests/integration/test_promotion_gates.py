"""Failing gates stop a promotion with their output and nothing committed; a command
gate runs only what the operator defined (real Git remote, real swarm)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.gitserve import GitRemote
from tests.conftest import Cleaner
from tests.gitops import Cli
from tests.integration.promotion_rig import ExampleRemote, example_remote, remove_stacks

pytestmark = pytest.mark.swarm


@pytest.fixture()
def example(
    cli: Cli, git_remote: GitRemote, tmp_path: Path, stack_name: str, cleaner: Cleaner,
    registry: str,
) -> Iterator[ExampleRemote]:  # fmt: skip
    yield example_remote(cli, git_remote, tmp_path, stack_name)
    remove_stacks(cleaner, stack_name)


def test_failing_http_and_command_gates_stop_the_promotion_and_commit_nothing(
    example: ExampleRemote, tmp_path: Path
) -> None:
    example.set_env_var("development", "APP_VERSION", "1.1.0", "development runs 1.1.0")
    for env in ("development", "staging"):
        result = example.run("sync", "--env", env)
        assert result.exit_code == 0, result.output
    config = tmp_path / "agent.yml"
    script = "import sys; print('p95 latency 2300ms > 500ms'); sys.exit(4)"
    config.write_text(
        "promotion:\n  commands:\n"
        f"    perf-test: {{argv: [{sys.executable!r}, -c, {script!r}, '{{to}}'], timeout: 30}}\n"
    )

    example.set_promotion(
        "staging",
        {"gates": {"http": [{"name": "health", "url": "http://127.0.0.1:9/health",
                             "timeout": 1, "retries": 1, "interval": 0}]}},
    )  # fmt: skip
    head = example.remote_git("rev-parse", "HEAD")
    # Not in the operator's promotion.http_allow (none by default): refused, nothing sent.
    result = example.run("promote", "--from", "development", "--to", "staging")
    assert result.exit_code == 2, result.output
    assert "[GateNotAllowed]" in result.output and "gate health: FAIL" in result.output
    assert "is not allowed by promotion.http_allow" in result.output
    assert "gitswarm.yml:" in result.output and "Traceback" not in result.output
    assert example.remote_git("rev-parse", "HEAD") == head
    # Allowed, the gate asks, and fails on the closed port.
    allowed = tmp_path / "allowed.yml"
    allowed.write_text("promotion:\n  http_allow: ['http://127.0.0.1:9/']\n")
    result = example.run(
        "promote", "--from", "development", "--to", "staging", "--config", str(allowed)
    )
    assert result.exit_code == 1, result.output
    assert "[GateFailed]" in result.output and "gate health: FAIL" in result.output
    assert "ConnectError" in result.output and "Traceback" not in result.output
    assert example.remote_git("rev-parse", "HEAD") == head

    example.set_promotion("staging", {"gates": {"command": ["perf-test"]}})
    head = example.remote_git("rev-parse", "HEAD")
    result = example.run(
        "promote", "--from", "development", "--to", "staging", "--config", str(config)
    )
    assert result.exit_code == 1, result.output
    assert "gate command-perf-test: FAIL (exit 4)" in result.output
    assert "| p95 latency 2300ms > 500ms" in result.output
    assert example.remote_git("rev-parse", "HEAD") == head
    failed = example.cli.json("promotions", "--all")["promotions"]
    assert [p["status"] for p in failed] == ["failed", "failed", "failed"]

    # Without the operator's definition the name runs nothing and fails.
    result = example.run("promote", "--from", "development", "--to", "staging")
    assert result.exit_code == 2, result.output
    assert "[GateNotAllowed]" in result.output
    assert "no command 'perf-test' is defined in the operator's config" in result.output
    assert example.remote_git("rev-parse", "HEAD") == head

    # An argv in gitswarm.yml is refused before anything runs, at its line.
    # (The would-be witness is this test's own file: a fixed /tmp path is shared by
    # every xdist worker and every run on the machine.)
    pwned = tmp_path / "pwned"
    example.set_promotion("staging", {"gates": {"command": [["sh", "-c", f"touch {pwned}"]]}})
    head = example.remote_git("rev-parse", "HEAD")
    result = example.run("promote", "--from", "development", "--to", "staging")
    assert result.exit_code == 2, result.output
    assert "gitswarm.yml:" in result.output and "cannot give an argv" in result.output
    assert not pwned.exists()
    assert example.remote_git("rev-parse", "HEAD") == head

    # With the gate passing the same promotion commits.
    ok = tmp_path / "ok.yml"
    ok.write_text(f"promotion:\n  commands:\n    perf-test: {{argv: [{sys.executable!r}, -V]}}\n")
    example.set_promotion("staging", {"gates": {"command": ["perf-test"]}})
    result = example.run("promote", "--from", "development", "--to", "staging", "--config", str(ok))
    assert result.exit_code == 0, result.output
    message = example.remote_git("log", "-1", "--format=%B")
    assert "Gate-command-perf-test: pass" in message
