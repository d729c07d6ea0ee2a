"""``gitswarm status`` reads what the agent recorded while it holds the store's lease
(issues 13 and 18: as ``argocd app list`` reads the controller's status), and reads
live — rendering Git's head and asking the swarm — when no agent holds it, or with
``--live``; each answer says which it is.

The agent here runs on the fake swarm with a real SQLite store (its loop on the test's
thread, ``run_pending``); the CLI runs against the same store file. Its Docker client
is a fake that counts its reads: an answer from the store makes none, a live one reads
each service's tasks (and shows them). tests/integration/test_status_from_the_agent.py does the
same against a real swarm and a running ``gitswarm serve``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gitswarm.cli.main import cli
from gitswarm.errors import SourceError
from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import AGENT_LOCK, Store
from gitswarm.swarm.fake import FakeSwarm
from gitswarm.swarm.pool import SwarmPool
from tests.gitops import GitOpsRepo, service

IMAGE = "127.0.0.1:5000/busybox:1"


class CountingFake(FakeSwarm):
    """The agent's swarm, as the CLI's live path sees it: counts the CLI's reads."""

    def __init__(self) -> None:
        super().__init__()
        self.cli_reads = 0

    def count(self) -> CountingFake:
        self.cli_reads += 1
        return self

    def close(self) -> None:
        pass


@dataclass
class Rig:
    tmp: Path
    repo: GitOpsRepo
    swarm: CountingFake
    store: Store
    agent: Agent
    holder: str

    def poll(self) -> None:
        self.agent.enqueue(("git",), TriggerRequest("poll"))
        self.agent.run_pending()

    def hold_lease(self, ttl: float = 60) -> None:
        assert self.store.acquire_lock(AGENT_LOCK, self.holder, ttl)

    def status(self, *args: str) -> Result:
        env = {
            "DOCKER_HOST": f"unix://{self.tmp}/no-docker.sock",
            "GITSWARM_KEYS_DIR": str(self.tmp / "keys"),
        }
        argv = ["status", "--repo", str(self.repo.path), "--state", str(self.tmp / "state.db")]
        return CliRunner().invoke(cli, [*argv, *args], env=env)

    def json(self, *args: str) -> dict[str, Any]:
        result = self.status(*args, "--json")
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.output)
        return data


@pytest.fixture()
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Rig]]:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    stores: list[Store] = []

    def build(sync: dict[str, object] | None = None) -> Rig:
        repo = GitOpsRepo(tmp_path / "repo", "shop", sync={"prune": True, **(sync or {})})
        repo.compose({"web": service(IMAGE)})
        repo.commit("first")
        swarm = CountingFake()
        monkeypatch.setattr(
            "gitswarm.swarm.pool.SwarmPool", lambda **_kw: SwarmPool(lambda _t: swarm.count())
        )
        store = Store(str(tmp_path / "state.db"))
        stores.append(store)
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(source, store, lambda _t: swarm)
        settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
        agent = Agent(
            source=source,
            store=store,
            reconciler=reconciler,
            settings=settings,
            metrics=Metrics(),
            monotonic=lambda: 1000.0,
        )
        return Rig(tmp_path, repo, swarm, store, agent, reconciler.holder)

    yield build
    for store in stores:
        store.close()


def test_with_the_lease_held_status_shows_what_the_agent_recorded_and_says_so(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()  # syncs the head, records the poll
    head = rig.repo.git("rev-parse", "HEAD")

    data = rig.json()
    assert data["source"] == "agent" and data["agent"] == rig.holder
    observed = dt.datetime.fromisoformat(data["observed_at"])
    assert abs((dt.datetime.now(dt.UTC) - observed).total_seconds()) < 60
    assert data["head"] == head and data["git_error"] is None
    [row] = data["statuses"]
    assert (row["app"], row["env"], row["stack"]) == ("app", "dev", "shop")
    assert (row["sync"], row["health"], row["last_result"]) == ("Synced", "Healthy", "Succeeded")
    assert row["head"] == row["deployed"] == head
    assert row["services"] == [] and rig.swarm.cli_reads == 0  # the swarm was not asked

    result = rig.status()
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "APP",
        "ENV",
        "SYNC",
        "HEALTH",
        "HEAD",
        "DEPLOYED",
        "LAST",
        "MESSAGE",
    ]
    assert lines[1].split()[:7] == [
        "app",
        "dev",
        "Synced",
        "Healthy",
        head[:12],
        head[:12],
        "Succeeded",
    ]
    assert re.fullmatch(
        rf"as recorded by agent {re.escape(rig.holder)} at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00",
        lines[-1],
    )
    assert "Traceback" not in result.output


def test_drift_the_agent_saw_shows_in_status_from_the_store(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    rig.swarm.scale("shop_web", 3)  # by hand, as `docker service scale`
    rig.agent.enqueue(("drift", "app", "dev"), TriggerRequest("agent"))  # as an event does
    rig.agent.run_pending()

    data = rig.json()
    assert data["source"] == "agent"
    [row] = data["statuses"]
    assert row["sync"] == "OutOfSync"
    [drift] = row["drift"]
    assert drift["service"] == "web"
    assert [(d["field"], d["before"], d["after"]) for d in drift["drift"]] == [
        ("deploy.replicas", 1, 3)
    ]
    text = rig.status().output
    assert "drift app/dev web: deploy.replicas: 1 -> 3" in text.splitlines()


def test_a_head_the_agent_saw_but_did_not_deploy_is_out_of_sync(make: Callable[..., Rig]) -> None:
    """Automated sync off: the agent records the new head; the app's inputs changed, so
    it stays at the old revision, and the store's answer says Git is ahead."""
    rig = make(sync={"automated": False})
    rig.hold_lease()
    first = rig.repo.git("rev-parse", "HEAD")
    rig.poll()  # the head, not deployed: automated sync is off
    assert rig.json()["statuses"][0]["sync"] == "Unknown"
    rig.agent.trigger(TriggerRequest("api", app="app", env="dev"))  # a manual sync
    rig.agent.run_pending()
    assert rig.json()["statuses"][0]["sync"] == "Synced"

    rig.repo.compose({"web": service(IMAGE, environment={"MODE": "new"})})
    second = rig.repo.commit("a change nobody synced")
    rig.poll()
    [row] = rig.json()["statuses"]
    assert (row["head"], row["deployed"]) == (second, first)
    assert row["sync"] == "OutOfSync"
    assert row["message"] == f"Git's head {second[:12]} is not deployed (deployed {first[:12]})"


def test_a_manual_sync_app_whose_inputs_did_not_change_moves_to_the_head(
    make: Callable[..., Rig],
) -> None:
    """A commit that leaves a manual-sync app's files as they were: the agent moves its
    status to the head as it does for automated apps, so the store's answer stays
    Synced, as a live render would say."""
    rig = make(sync={"automated": False})
    rig.hold_lease()
    rig.poll()
    rig.agent.trigger(TriggerRequest("api", app="app", env="dev"))
    rig.agent.run_pending()
    rig.repo.write("README.md", "unrelated\n")
    second = rig.repo.commit("docs only")
    rig.poll()
    [row] = rig.json()["statuses"]
    assert (row["sync"], row["head"], row["deployed"]) == ("Synced", second, second)


def test_an_expired_lease_means_a_live_status_that_says_so(
    make: Callable[..., Rig], tmp_path: Path
) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    assert rig.json()["source"] == "agent"
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    rig.store.release_lock(AGENT_LOCK, rig.holder)
    with Store(str(tmp_path / "state.db"), clock=lambda: past) as earlier:
        assert earlier.acquire_lock(AGENT_LOCK, rig.holder, 60)  # ran out 59 minutes ago

    data = rig.json()
    assert data["source"] == "live"
    assert data["live_because"] == "no agent holds the store's lease"
    assert "observed_at" in data
    [row] = data["statuses"]
    assert rig.swarm.cli_reads == 1  # it asked the swarm: live indeed
    assert [s["service"] for s in row["services"]] == ["web"]
    result = rig.status()
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == (
        "live: Git's head rendered and the swarm read now (no agent holds the store's lease)"
    )


def test_a_lease_holder_that_recorded_no_poll_yet_means_live(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    rig.store.release_lock(AGENT_LOCK, rig.holder)
    assert rig.store.acquire_lock(AGENT_LOCK, "new-agent", 60)  # took over, not polled yet
    data = rig.json()
    assert data["source"] == "live"
    assert data["live_because"] == (
        "agent new-agent holds the store's lease but has recorded no poll yet"
    )


def test_live_reads_live_even_with_the_lease_held(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    data = rig.json("--live")
    assert (data["source"], data["live_because"]) == ("live", "--live")
    assert [s["service"] for s in data["statuses"][0]["services"]] == ["web"]


def test_filters_apply_to_the_recorded_answer_and_a_bad_one_is_still_bad_input(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    assert [r["env"] for r in rig.json("--env", "dev")["statuses"]] == ["dev"]
    result = rig.status("--env", "nowhere")  # not watched: asks Git, which has none
    assert result.exit_code == 2
    assert result.output == "error [UsageError]: no application matches --env/--app\n"


def test_a_failed_poll_keeps_the_head_and_says_the_remote_failed(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    head = rig.repo.git("rev-parse", "HEAD")
    rig.store.record_source(AGENT_LOCK, rig.holder, head=None, error="remote down")
    data = rig.json()
    assert (data["head"], data["git_error"]) == (head, "remote down")
    last = rig.status().output.splitlines()[-1]
    assert last.startswith(f"as recorded by agent {rig.holder} at ")
    assert "(its last poll of Git failed: remote down; head as of " in last


# --- the same answer from every store ---------------------------------------------------


def _record(location: str, base: dt.datetime) -> None:
    """What an agent writes: its lease, its poll, statuses (one drifted, one never
    synced) and a hold; every write at ``base``, so two stores hold the same times."""
    with Store(location, clock=lambda: base) as store:
        assert store.acquire_lock(AGENT_LOCK, "agent-1", 3600)
        apps = [("web", "prod", "web-prod"), ("api", "prod", "api-prod"), ("new", "prod", "n")]
        store.record_source(AGENT_LOCK, "agent-1", head="b" * 40, apps=apps)
        store.set_status(
            "web", "prod", sync="OutOfSync", health="Healthy", last_result="Succeeded",
            revision="b" * 40, message="manual change on the swarm: web (deploy.replicas)",
            drift={"web": {"service": "web", "action": "unchanged", "drift": [
                {"field": "deploy.replicas", "path": "Mode.Replicated.Replicas",
                 "before": 1, "after": 3}]}},
        )  # fmt: skip
        store.set_status(
            "api", "prod", sync="Synced", health="Healthy", last_result="Succeeded",
            revision="a" * 40,
        )  # fmt: skip
        store.create_hold("api", "prod", reason="rolled back", created_by="ann", images={"x": "1"})


def test_status_gives_the_same_answer_on_sqlite_and_on_postgresql(
    store_url: str, tmp_path: Path
) -> None:
    """A local SQLite file is read through store/quick.py (sqlite3); a PostgreSQL URL
    through ``Store`` (SQLAlchemy) — the same query text, and the same answer."""
    base = dt.datetime.now(dt.UTC).replace(microsecond=123456) - dt.timedelta(minutes=1)
    reference = str(tmp_path / "reference.db")
    _record(reference, base)
    _record(store_url, base)

    def answer(location: str) -> tuple[dict[str, Any], str]:
        argv = ["status", "--repo", str(tmp_path / "no-repo"), "--state", location]
        data = CliRunner().invoke(cli, [*argv, "--json"])
        text = CliRunner().invoke(cli, argv)
        assert data.exit_code == 0 and text.exit_code == 0, data.output + text.output
        return json.loads(data.output), text.output

    expected, expected_text = answer(reference)
    found, found_text = answer(store_url)
    assert found == expected
    assert found_text == expected_text
    assert expected["source"] == "agent" and expected["observed_at"] == base.isoformat()
    assert [(r["app"], r["sync"]) for r in expected["statuses"]] == [
        ("web", "OutOfSync"), ("api", "OutOfSync"), ("new", "Unknown"),
    ]  # fmt: skip
    assert [h["images"] for h in expected["statuses"][1]["holds"]] == [{"x": "1"}]
    assert "hold 1 api/prod: automation keeps x:1 rolled back" in expected_text


def test_the_quick_reads_of_the_lease_and_the_source_are_the_stores(tmp_path: Path) -> None:
    from gitswarm.store import quick

    path = tmp_path / "state.db"
    _record(str(path), dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    reads = quick.reads(str(path))
    assert reads is not None
    with Store(str(path)) as store:
        assert reads.lock_holder(AGENT_LOCK) == store.lock_holder(AGENT_LOCK) is not None
        assert reads.agent_source(AGENT_LOCK) == store.agent_source(AGENT_LOCK) is not None
        assert reads.lock_holder("other") is None and reads.agent_source("other") is None


# --- the drift round re-assesses health (a task that dies after the sync sends no event) --


def _round(rig: Rig) -> None:
    rig.agent.enqueue(("drift-all",), TriggerRequest("agent", reason="drift round"))
    rig.agent.run_pending()


def _count_status_writes(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    writes: list[dict[str, Any]] = []
    set_status = rig.store.set_status

    def counting(app: str, env: str, **fields: Any) -> Any:
        writes.append({"app": app, "env": env, **fields})
        return set_status(app, env, **fields)

    monkeypatch.setattr(rig.store, "set_status", counting)
    return writes


def test_a_task_that_dies_after_the_sync_shows_degraded_after_the_next_round_and_healthy_again(
    make: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    assert rig.json()["statuses"][0]["health"] == "Healthy"
    writes = _count_status_writes(rig, monkeypatch)
    docker_writes = rig.swarm.writes

    rig.swarm.crash_tasks("shop_web")  # no event: only the round can see it
    reads = rig.swarm.task_reads
    _round(rig)
    assert rig.swarm.task_reads == reads + 1  # one read of every task for the target
    [row] = rig.json()["statuses"]
    assert row["health"] == "Degraded"
    assert (row["sync"], row["last_result"]) == ("Synced", "Succeeded")  # the sync's stand
    assert writes == [{"app": "app", "env": "dev", "health": "Degraded"}]
    assert rig.json("--live")["statuses"][0]["health"] == "Degraded"  # as status --live

    rig.swarm.recover_tasks("shop_web")
    _round(rig)
    assert rig.json()["statuses"][0]["health"] == "Healthy"
    assert rig.json("--live")["statuses"][0]["health"] == "Healthy"
    assert writes[1:] == [{"app": "app", "env": "dev", "health": "Healthy"}]
    assert rig.swarm.writes == docker_writes  # the round never writes to Docker


def test_a_node_lost_after_the_sync_shows_degraded_though_its_tasks_still_say_running(
    make: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's engine stops: the managers mark it down and keep its tasks' last state
    ("running"); no task changes, no event. The round reads which nodes are down (one
    more read per target) and counts those tasks as ``docker service ls`` does: not
    running. The recorded status and ``status --live`` say Degraded; Healthy again once
    the node is back."""
    rig = make()
    rig.hold_lease()
    rig.poll()
    _round(rig)
    assert rig.json()["statuses"][0]["health"] == "Healthy"
    writes = _count_status_writes(rig, monkeypatch)
    tasks, nodes = rig.swarm.task_reads, rig.swarm.node_reads

    rig.swarm.lose_node("node1")
    _round(rig)
    [row] = rig.json()["statuses"]
    assert (row["health"], row["sync"], row["last_result"]) == ("Degraded", "Synced", "Succeeded")
    assert (rig.swarm.task_reads, rig.swarm.node_reads) == (tasks + 1, nodes + 1)
    assert writes == [{"app": "app", "env": "dev", "health": "Degraded"}]
    [live] = rig.json("--live")["statuses"]
    assert live["health"] == "Degraded"
    assert "1 task(s) on a node that is down" in json.dumps(live)

    rig.swarm.regain_node("node1")
    _round(rig)
    assert rig.json()["statuses"][0]["health"] == "Healthy"
    assert rig.json("--live")["statuses"][0]["health"] == "Healthy"
    assert writes[1:] == [{"app": "app", "env": "dev", "health": "Healthy"}]


def test_a_rollout_onto_a_lost_node_fails_and_its_rollback_too_and_degraded_stays_true(
    make: Callable[..., Rig],
) -> None:
    """The CI failure of tests/integration/test_faults_nodes.py on the fake: the node of
    the tasks is down and Swarm leaves them "running" there. The sync's wait does not
    count them (HealthTimeout, not Succeeded), nor does the automatic rollback's (which
    would otherwise "succeed" onto the same lost tasks and record Healthy), and the
    round after both keeps the status Degraded: what runs is not what was asked."""
    rig = make({"auto_rollback": True, "health_timeout": 0.5})
    rig.hold_lease()
    rig.poll()
    first = rig.json()["statuses"][0]
    assert first["health"] == "Healthy"
    rig.swarm.lose_node("node1")
    rig.repo.compose({"web": service(IMAGE, environment={"MODE": "new"})})
    rig.repo.commit("second")
    rig.poll()  # the sync of "second", then the automatic rollback to "first"
    ops = [(o.kind, o.result, o.reason) for o in rig.store.history(app="app", env="dev")]
    assert ops[:2] == [("rollback", "Failed", "HealthTimeout"),
                       ("sync", "Failed", "HealthTimeout")], ops  # fmt: skip
    _round(rig)
    [row] = rig.json()["statuses"]
    assert (row["health"], row["last_result"]) == ("Degraded", "Failed"), row
    assert rig.json("--live")["statuses"][0]["health"] == "Degraded"


def test_a_quiet_round_writes_nothing_to_the_store(
    make: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    _round(rig)  # the first round assesses the deployed app: Healthy, as recorded
    writes = _count_status_writes(rig, monkeypatch)
    record_operation = rig.store.record_operation
    operations: list[object] = []
    monkeypatch.setattr(
        rig.store,
        "record_operation",
        lambda *a, **kw: operations.append(a) or record_operation(*a, **kw),
    )
    reads = rig.swarm.task_reads
    for _ in range(3):
        _round(rig)
    assert writes == [] and operations == []
    assert rig.swarm.task_reads == reads + 3
    assert rig.json()["statuses"][0]["health"] == "Healthy"


def test_the_round_leaves_an_app_alone_while_a_sync_of_it_runs(
    make: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make()
    rig.hold_lease()
    rig.poll()
    rig.swarm.crash_tasks("shop_web")
    during: list[list[dict[str, Any]]] = []
    writes = _count_status_writes(rig, monkeypatch)
    deploy = rig.swarm.deploy

    def deploy_with_a_round(stack: str, compose_yaml: str, **kw: Any) -> None:
        before = len(writes)
        rig.agent.drift.check_all()  # the round, while this sync runs
        during.append(writes[before:])
        deploy(stack, compose_yaml, **kw)

    monkeypatch.setattr(rig.swarm, "deploy", deploy_with_a_round)
    rig.repo.compose({"web": service(IMAGE, environment={"MODE": "new"})})
    rig.repo.commit("second")
    rig.poll()  # the sync deploys the new head; the round runs inside it
    assert during == [[]]  # the sync owns the app's health: the round wrote nothing
    [row] = rig.json()["statuses"]
    assert (row["health"], row["last_result"]) == ("Healthy", "Succeeded")  # the sync's record
    assert all("health" not in w or w.get("last_result") for w in writes)


def test_a_poll_with_nothing_new_writes_nothing_to_agent_source(
    make: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC 7: a poll with nothing new makes no write. What the agent saw is written
    when it changes (a new head, an error, the remote back) or when the agent becomes
    leader again (a standby may have written the row meanwhile)."""
    rig = make()
    rig.hold_lease()
    writes: list[dict[str, Any]] = []
    record_source = rig.store.record_source

    def counted(*args: Any, **kw: Any) -> None:
        writes.append(kw)
        record_source(*args, **kw)

    monkeypatch.setattr(rig.store, "record_source", counted)
    rig.poll()
    assert len(writes) == 1  # the first poll: the head and the apps watched there
    first = rig.store.agent_source(AGENT_LOCK)
    assert first is not None
    for _ in range(3):
        rig.poll()
    assert len(writes) == 1
    assert rig.store.agent_source(AGENT_LOCK) == first

    rig.repo.compose({"web": service(IMAGE), "api": service(IMAGE)})
    rig.repo.commit("second")
    rig.poll()
    rig.poll()
    assert len(writes) == 2 and writes[-1]["head"] == rig.repo.git("rev-parse", "HEAD")

    remote_down = rig.agent.ctx.source
    poll = remote_down.poll
    monkeypatch.setattr(remote_down, "poll", lambda: (_ for _ in ()).throw(SourceError("down")))
    rig.poll()
    rig.poll()
    assert len(writes) == 3 and writes[-1]["error"] is not None
    monkeypatch.setattr(remote_down, "poll", poll)
    rig.poll()
    rig.poll()
    assert len(writes) == 4 and writes[-1]["error"] is None
    data = rig.json()
    assert data["git_error"] is None and data["head"] == rig.repo.git("rev-parse", "HEAD")

    record_source(AGENT_LOCK, "a-standby", head="c" * 40, apps=[])  # while not leader
    rig.agent._elected()
    rig.poll()
    assert len(writes) == 5
    assert rig.json()["agent"] == rig.holder


def test_a_sync_queued_for_a_commit_git_moved_past_deploys_the_newer_head(
    make: Callable[..., Rig],
) -> None:
    """Image automation names the commit it pushed (promote/automation.py); if the agent
    has meanwhile seen and deployed a later commit, that sync must not put the older one
    back (the git task would then see nothing new and leave it there). A person's named
    revision (API, dashboard: a rollback) is still deployed as asked."""
    rig = make()
    rig.hold_lease()
    rig.poll()
    rig.repo.compose({"web": service(IMAGE, environment={"STEP": "automation"})})
    rig.repo.commit("automation: a new tag")
    pushed = rig.repo.git("rev-parse", "HEAD")
    rig.repo.compose({"web": service(IMAGE, environment={"STEP": "later"})})
    rig.repo.commit("a later commit")
    later = rig.repo.git("rev-parse", "HEAD")
    rig.poll()
    assert rig.store.get_status("app", "dev").revision == later

    request = TriggerRequest("agent", app="app", env="dev", revision=pushed, reason="tag")
    rig.agent.enqueue(("sync", "app", "dev"), request)
    rig.agent.run_pending()
    assert rig.store.get_status("app", "dev").revision == later

    asked = TriggerRequest("api", app="app", env="dev", revision=pushed, actor="ann")
    rig.agent.enqueue(("sync", "app", "dev"), asked)
    rig.agent.run_pending()
    assert rig.store.get_status("app", "dev").revision == pushed
