"""Gates that reach outside: the operator's commands and HTTP checks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from gitswarm.errors import ConfigError
from gitswarm.promote.core.settings import HttpGate
from gitswarm.promote.gates import (
    GateCommand,
    GateFacts,
    commands_from_mapping,
    run_command,
    run_http,
)
from gitswarm.promote.operator import load_operator_settings

FACTS = GateFacts("web", "staging", "prod", "abc", {"reg.io/web": "1.1.0; rm -rf /"})


def test_a_command_gets_values_as_separate_arguments_and_a_bare_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GITSWARM_AGE_KEY_PRODUCTION", "AGE-SECRET-KEY-1XYZ")
    script = "import json, os, sys; print(json.dumps([sys.argv[1:], sorted(os.environ)]))"
    command = GateCommand("show", (sys.executable, "-c", script, "{to}", "{images}"), 10)
    result = run_command(command, FACTS)
    assert result.passed, result.output
    argv, names = __import__("json").loads(result.output)
    assert argv == ["prod", "reg.io/web:1.1.0; rm -rf /"]
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


def test_an_http_gate_retries_and_follows_no_redirect() -> None:
    answers = iter([httpx.Response(503), httpx.Response(302, headers={"Location": "/ok"})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers)

    transport = httpx.MockTransport(handler)
    gate = HttpGate("health", "http://stg/health", retries=1, interval=0)
    result = run_http(gate, lambda t: httpx.Client(transport=transport), lambda s: None)
    assert not result.passed
    assert result.summary == "GET http://stg/health: 302 Found (expected 200); 2 tries"


def test_an_http_gate_passes_on_the_expected_status() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    gate = HttpGate("health", "http://stg/health")
    result = run_http(gate, lambda t: httpx.Client(transport=transport), lambda s: None)
    assert result.passed and result.summary == "GET http://stg/health: 200 OK"
