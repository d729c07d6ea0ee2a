"""The shipped alert rules and Grafana dashboard: `promtool check rules` and `promtool
test rules` (the real binary) pass, every dashboard query is valid PromQL, and every
metric a rule or a panel reads is one gitswarm exposes on /metrics. (The integration
test test_dora_real_sequence scrapes a real agent for the same check.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

from gitswarm.api import ApiSettings, create_app
from gitswarm.reconcile.metrics import Metrics
from tests.fake_agent import FakeAgent, client_for
from tests.monitoring import (
    DASHBOARD,
    RULE_TESTS,
    RULES,
    dashboard_exprs,
    exposed_metrics,
    promtool,
    rule_exprs,
    used_metrics,
)

ALERTS_OF_THE_ISSUE = {
    "GitswarmSyncFailed",
    "GitswarmDriftDetected",
    "GitswarmDeployHealthCheckFailed",
    "GitswarmRollback",
    "GitswarmPolicyViolation",
    "GitswarmSignatureRejected",
    "GitswarmUnauthorizedApiRequests",
    "GitswarmFailedSignIns",
    "GitswarmWebhookSignatureRejected",
    "GitswarmGitRemoteUnreachable",
    "GitswarmNoLeader",
}


def test_promtool_checks_the_rules() -> None:
    out = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in out.stdout
    assert set(rule_exprs()) >= ALERTS_OF_THE_ISSUE


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    out = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for n, expr in enumerate(exprs.values()):
        concrete = expr.replace("$env", ".*").replace("$app", ".*")
        lines += [f"      - record: panel:{n}", f"        expr: '{concrete}'"]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert DASHBOARD.read_text().count('"uid": "${datasource}"') > len(exprs)


def test_every_metric_a_rule_or_panel_reads_is_exposed() -> None:
    with client_for(create_app(FakeAgent(), ApiSettings(), Metrics())) as client:
        page = client.get("/metrics").text
    exposed = exposed_metrics(page)
    used = used_metrics({**rule_exprs(), **dashboard_exprs()})
    missing = {name: sorted(where) for name, where in used.items() if name not in exposed}
    assert not missing
    assert {"gitswarm_agent_leader", "gitswarm_rollbacks_total",
            "gitswarm_api_refused_requests_total"} <= set(used)  # fmt: skip


def test_refused_api_requests_are_counted() -> None:
    metrics = Metrics()
    with client_for(create_app(FakeAgent(), ApiSettings(), metrics)) as client:
        assert client.get("/api/v1/status").status_code == 401
        assert (
            client.get("/api/v1/status", headers={"Authorization": "Bearer x"}).status_code == 401
        )
        page = client.get("/metrics").text
    assert 'gitswarm_api_refused_requests_total{code="401"} 2.0' in page
