"""Gates that reach outside: the operator's commands and HTTP checks."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gitswarm.errors import ConfigError
from gitswarm.promote.core.settings import HttpGate
from gitswarm.promote.egress import Egress, parse_allow
from gitswarm.promote.gates import (
    GateCommand,
    GateFacts,
    commands_from_mapping,
    run_command,
    run_http,
)
from gitswarm.promote.operator import load_operator_settings

ALLOW_STG = parse_allow(["stg"])


def STG_DNS(_host: str, _port: int) -> list[str]:
    return ["10.0.0.7"]


def mock(transport: httpx.MockTransport) -> Callable[[float, Egress], httpx.Client]:
    return lambda _timeout, _egress: httpx.Client(transport=transport)


FACTS = GateFacts("web", "staging", "prod", "abc", {"reg.io/web": "1.1.0", "reg.io/api": "2"})


def test_a_command_gets_values_as_separate_arguments_and_a_bare_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GITSWARM_AGE_KEY_PRODUCTION", "AGE-SECRET-KEY-1XYZ")
    script = "import json, os, sys; print(json.dumps([sys.argv[1:], sorted(os.environ)]))"
    command = GateCommand("show", (sys.executable, "-c", script, "{to}", "{images}"), 10)
    result = run_command(command, FACTS)
    assert result.passed, result.output
    argv, names = __import__("json").loads(result.output)
    assert argv == ["prod", "reg.io/api:2", "reg.io/web:1.1.0"]
    assert "GITSWARM_AGE_KEY_PRODUCTION" not in names
    assert "GITSWARM_PROMOTION_TO" in names


def test_a_failing_command_fails_with_its_output() -> None:
    command = GateCommand("fail", (sys.executable, "-c", "print('p95 900ms'); raise SystemExit(3)"))
    result = run_command(command, FACTS)
    assert (result.passed, result.summary) == (False, "exit 3")
    assert "p95 900ms" in result.output


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    child = f"import time; time.sleep(3); open({str(marker)!r}, 'w')"
    script = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(30)"
    )
    started = time.monotonic()
    result = run_command(GateCommand("slow", (sys.executable, "-c", script), 0.5), FACTS)
    assert not result.passed and result.summary == "timed out after 0.5s"
    assert time.monotonic() - started < 5
    time.sleep(3.5)
    assert not marker.exists()


def test_a_missing_program_fails_the_gate_without_a_traceback() -> None:
    result = run_command(GateCommand("x", ("/nonexistent/perf-test",)), FACTS)
    assert not result.passed and "could not run /nonexistent/perf-test" in result.summary


def test_operator_commands_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"promotion.commands.scan.argv must be a non-empty list"):
        commands_from_mapping({"scan": {"argv": "scan --all"}})
    path = tmp_path / "agent.yml"
    path.write_text("promotion:\n  commands:\n    scan: {argv: [/bin/true], timeout: 10m}\n")
    settings = load_operator_settings(path)
    assert settings.commands["scan"].timeout == 600


def test_an_http_gate_retries_and_follows_a_checked_redirect() -> None:
    answers = iter(
        [
            httpx.Response(503),
            httpx.Response(302, headers={"Location": "/ok"}),
            httpx.Response(500),
        ]
    )
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return next(answers)

    transport = httpx.MockTransport(handler)
    gate = HttpGate("health", "http://stg/health", retries=1, interval=0)
    result = run_http(gate, ALLOW_STG, mock(transport), lambda s: None, STG_DNS)
    assert not result.passed
    assert result.summary == (
        "GET http://stg/health: 500 Internal Server Error after 1 redirect (expected 200); 2 tries"
    )
    assert asked == ["http://stg/health", "http://stg/health", "http://stg/ok"]


def test_an_http_gate_passes_on_the_expected_status() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    gate = HttpGate("health", "http://stg/health")
    result = run_http(gate, ALLOW_STG, mock(transport), lambda s: None, STG_DNS)
    assert result.passed and result.summary == "GET http://stg/health: 200 OK"


def test_a_gate_that_expects_a_redirect_does_not_follow_it() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(301, headers={"Location": "/x"}))
    gate = HttpGate("moved", "http://stg/old", status=301)
    result = run_http(gate, ALLOW_STG, mock(transport), lambda s: None, STG_DNS)
    assert result.passed and result.summary == "GET http://stg/old: 301 Moved Permanently"


def test_a_command_runs_in_an_empty_folder_of_its_own_not_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `gitswarm promote` runs in a clone of the GitOps repo: its files are the pusher's.
    (tmp_path / "Makefile").write_text("perf:\n\ttouch pwned\n")
    monkeypatch.chdir(tmp_path)
    script = "import os; print(os.getcwd() != os.environ['HERE'], os.listdir('.'))"
    command = GateCommand("where", (sys.executable, "-c", script), env={"HERE": str(tmp_path)})
    result = run_command(command, FACTS)
    assert result.passed and result.output.strip() == "True []"


def test_an_operator_command_must_name_its_program_absolutely_or_on_path() -> None:
    with pytest.raises(ConfigError) as info:
        commands_from_mapping({"perf": {"argv": ["./scripts/perf.sh", "{to}"]}})
    assert info.value.message == (
        "promotion.commands.perf.argv: './scripts/perf.sh' is a relative path; give the "
        "program's absolute path or a bare name looked up on PATH (commands run in an empty "
        "folder of their own, never in a checkout of the GitOps repository)"
    )
    with pytest.raises(ConfigError, match=r"cannot hold a placeholder"):
        commands_from_mapping({"perf": {"argv": ["{app}"]}})
    assert commands_from_mapping({"perf": {"argv": ["make", "perf"]}})["perf"].argv[0] == "make"


@pytest.mark.parametrize(
    ("repository", "tag"),
    [("--output=/tmp/x", "1"), ("reg.io/web", "1.1.0; rm -rf /"), ("reg.io/Web", "1")],
)
def test_images_that_are_not_plain_references_run_nothing(
    tmp_path: Path, repository: str, tag: str
) -> None:
    marker = tmp_path / "ran"
    command = GateCommand("scan", (sys.executable, "-c", f"open({str(marker)!r}, 'w')", "{images}"))
    facts = GateFacts("web", "staging", "prod", "abc", {repository: tag})
    result = run_command(command, facts)
    assert (result.passed, result.refused) == (False, True)
    assert result.summary == (
        f"refused: {repository}:{tag} is not a plain image reference; nothing run"
    )
    assert not marker.exists()
