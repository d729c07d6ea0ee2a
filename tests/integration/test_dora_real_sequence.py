"""DORA on a real sequence on the test swarm: two good deploys, a bad image that fails
health and is rolled back automatically, then a fix. The figures (store, API, CLI) are
what happened; and the running agent's /metrics has every metric the shipped alert
rules and dashboard read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.monitoring import dashboard_exprs, exposed_metrics, rule_exprs, used_metrics

pytestmark = pytest.mark.swarm


def test_dora_figures_match_deploys_a_rolled_back_failure_and_a_fix(
    rig: AgentRig, registry: str
) -> None:
    rig.sync["health_timeout"] = 30
    began = datetime.now(UTC) - timedelta(seconds=5)
    good1 = rig.push({"web": service()}, "feat: the web service")
    with running_rig(rig):
        assert rig.store is not None and rig.agent is not None and rig.handle is not None
        wait_for(rig.deployed(good1), 60)
        good2 = rig.push({"web": service(environment={"LEVEL": "2"})}, "feat: level 2")
        assert rig.github_push(good2) == 202
        wait_for(rig.deployed(good2), 60)
        bad = rig.push(
            {"web": service(f"{registry}/medianest/app:broken", environment={"LEVEL": "2"})},
            "feat: the broken image",
        )
        assert rig.github_push(bad) == 202
        wait_for(lambda: rig.status().last_result == "RolledBack", 90)
        fix = rig.push({"web": service(environment={"LEVEL": "3"})}, "fix: a working image")
        assert rig.github_push(fix) == 202
        wait_for(rig.deployed(fix), 60)

        ops = {o.id: o for o in rig.operations()}
        failed = [o for o in ops.values() if o.kind == "sync" and o.result == "Failed"]
        [rollback] = [o for o in ops.values() if o.kind == "rollback"]
        assert [o.revision for o in failed] == [bad] and rollback.revision == good2
        report = rig.store.dora("dev", since=began).as_dict()

        freq = report["deployment_frequency"]
        assert freq["deployments"] == 4  # good1, good2, the rollback, the fix
        cfr = report["change_failure_rate"]
        assert (cfr["deployments"], cfr["failed"]) == (5, 1)
        assert [f["operation_id"] for f in cfr["failures"]] == [failed[0].id]
        assert cfr["failures"][0]["cause"].startswith("ended Failed (")
        ttr = report["time_to_restore"]
        assert (ttr["incidents"], ttr["restored"], ttr["open"]) == (1, 1, 0)
        [incident] = ttr["list"]
        assert incident["restored_by"] == rollback.id
        assert rollback.finished_at is not None and failed[0].finished_at is not None
        assert incident["seconds"] == pytest.approx(
            (rollback.finished_at - failed[0].finished_at).total_seconds()
        )
        # Each commit once: good1 (the first deploy), good2, and with the fix, the bad
        # commit it finally brought (git log good2..fix); the rollback brought none.
        lead = report["lead_time"]
        assert lead["commits"] == 4 and lead["skewed_commits"] == 0
        deployed = {c.sha for o in ops.values() for c in rig.store.get_operation(o.id).commits}
        assert deployed == {good1, good2, bad, fix}
        assert 0 <= lead["median_seconds"] <= lead["p90_seconds"] < 600
        assert report["traceability"] == {
            "changes": 5, "traceable": 5, "share": 1.0, "target": "100 %", "met": True,
            "untraceable": [],
        }  # fmt: skip
        assert report["drift"]["incidents"] == 0

        # the same through the CLI; the API (no token configured here) refuses, counted
        url = f"{rig.handle.url}/api/v1/dora"
        since = began.isoformat()
        assert httpx.get(url, params={"env": "dev", "since": since}, timeout=30).status_code == 401
        via_cli = CliRunner().invoke(
            cli, ["dora", "--env", "dev", "--since", since, "--json",
                  "--state", str(rig.tmp / "state.db")],
        )  # fmt: skip
        assert via_cli.exit_code == 0, via_cli.output
        mine = json.loads(via_cli.stdout)["dora"]
        for key in ("deployment_frequency", "change_failure_rate", "traceability"):
            assert {k: v for k, v in mine[key].items() if k != "per_day" and k != "per_week"} == {
                k: v for k, v in report[key].items() if k != "per_day" and k != "per_week"
            }

        # the running agent's /metrics has every metric the rules and the dashboard read
        page = httpx.get(f"{rig.handle.url}/metrics", timeout=30).text
        used = used_metrics({**rule_exprs(), **dashboard_exprs()})
        missing = sorted(set(used) - exposed_metrics(page))
        assert not missing, {name: sorted(used[name]) for name in missing}
        assert 'gitswarm_rollbacks_total{app="app",env="dev",result="Succeeded"} 1.0' in page
        assert "gitswarm_agent_leader 1.0" in page
        assert 'gitswarm_api_refused_requests_total{code="401"} 1.0' in page
