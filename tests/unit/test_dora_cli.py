"""`gitswarm dora` and `gitswarm history export` on a real SQLite store holding the
synthetic history of test_dora_metrics; `gitswarm history --env E` unchanged beside
its new subcommand; bad input is a usage error naming the option, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.store import Store
from tests.unit.test_dora_metrics import HISTORY
from tests.unit.test_store_dora import Clock, record

SINCE = "2025-06-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("dora") / "state.db")
    clock = Clock()
    with Store(path, clock=clock) as store:
        for op in HISTORY:
            record(store, clock, op)
        store.audit("alice", "sync", "web/prod", {"via": "api"})
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="gitswarm")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_dora_json_has_every_figure(state: str) -> None:
    code, out, _ = run("dora", "--env", "prod", "--since", SINCE, "--state", state, "--json")
    assert code == 0
    report = json.loads(out)["dora"]
    assert report["env"] == "prod" and report["since"] == SINCE
    assert report["deployment_frequency"]["deployments"] == 11
    assert report["lead_time"]["median_seconds"] == 3840
    assert report["change_failure_rate"]["failed"] == 2
    assert report["time_to_restore"]["median_seconds"] == 690
    assert report["traceability"]["untraceable"] == [16]
    code, out, _ = run(
        "dora", "--env", "prod", "--app", "api", "--since", SINCE, "--state", state, "--json"
    )
    assert json.loads(out)["dora"]["deployment_frequency"]["deployments"] == 2


def test_dora_text_shows_each_figure_beside_target_and_level(state: str) -> None:
    code, out, _ = run("dora", "--env", "prod", "--since", SINCE, "--state", state)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("DORA metrics of prod, 2025-06-01T00:00:00 .. ")
    assert lines[2].split() == ["METRIC", "VALUE", "TARGET", "(seed)", "MET", "DORA", "LEVEL"]
    row = {line.split("  ")[0]: line for line in lines[3:9]}
    assert "median 64m00s, p90 23h34m (11 commits)" in row["lead time for changes"]
    assert row["lead time for changes"].split()[-3:] == ["(median)", "yes", "elite"]
    assert "16.7% (2 of 12)" in row["change failure rate"]
    assert row["change failure rate"].split()[-2:] == ["NO", "high"]
    assert "median 11m30s, mean 11m30s (2 restored, 0 open)" in row["time to restore"]
    assert "92.9% (13 of 14 changes)" in row["traceability"]
    assert "failed: operation 7 web @ r: fixed forward by operation 8" in out
    assert "untraceable: operation(s) 16" in out
    assert "Accelerate State of DevOps Report 2019" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "3x"], "--since must be a duration such as 30d, 12h, 2w, 90m or 45s"),
        (["--since", "2999-01-01"], "--since 2999-01-01 is not in the past"),
        (["--failure-window", "1 hour"], "--failure-window must be like 30d, 12h"),
        (["--drift-threshold", "-5s"], "--drift-threshold must be like 30d, 12h"),
    ],
)
def test_dora_bad_input_is_a_usage_error(state: str, args: list[str], message: str) -> None:
    code, out, err = run("dora", "--env", "prod", "--state", state, *args)
    assert code == 2
    assert err.startswith(f"error [UsageError]: {message}")
    assert "Traceback" not in out + err


def test_history_env_is_what_it_was(state: str) -> None:
    code, out, err = run("history", "--state", state)
    assert code == 2
    assert err == (
        "Usage: gitswarm history [OPTIONS]\n"
        "Try 'gitswarm history --help' for help.\n\n"
        "Error: Missing option '--env'.\n"
    )
    code, out, _ = run("history", "--env", "prod", "--limit", "3", "--state", state, "--json")
    assert code == 0
    assert [o["id"] for o in json.loads(out)["operations"]] == [26, 25, 23]
    code, out, _ = run("history", "--env", "prod", "--limit", "2", "--state", state)
    assert code == 0 and out.splitlines()[0].split()[:3] == ["ID", "WHEN", "KIND"]


def test_history_export_writes_every_record_as_json_lines(state: str) -> None:
    code, out, _ = run("history", "export", "--state", state)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    ops = [r for r in lines if r["record"] == "operation"]
    assert [r["id"] for r in ops] == [op.id for op in HISTORY]
    assert lines[-1] == {
        "record": "audit", "id": 1, "at": lines[-1]["at"], "actor": "alice",
        "action": "sync", "target": "web/prod", "details": {"via": "api"},
    }  # fmt: skip
    second = ops[1]
    assert second["kind"] == "sync" and second["finished_at"] == "2025-06-02T09:05:00+00:00"
    assert {c["sha"] for c in second["commits"]} == {"c1", "c2"}
    assert second["changes"] == [{"service": "web", "action": "changed", "fields": ["image"]}]

    code, out, _ = run("history", "export", "--since", "2025-06-12", "--env", "dev",
                       "--state", state)  # fmt: skip
    assert [json.loads(line)["id"] for line in out.splitlines()] == [24]


def test_history_export_bad_input(state: str, tmp_path: Path) -> None:
    code, _, err = run("history", "export", "--since", "yesterday", "--state", state)
    assert code == 2 and err.startswith("error [UsageError]: --since must be a duration")
    code, _, err = run("history", "export", "--format", "csv", "--state", state)
    assert code == 2 and "'csv' is not 'jsonl'" in err
    code, _, err = run("history", "--env", "prod", "export", "--state", state)
    assert code == 2 and "give the options of `history export` after it" in err
