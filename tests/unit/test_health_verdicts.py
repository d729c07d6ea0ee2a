"""health/: convergence verdicts from observed services and tasks."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from gitswarm.health import app_health, assess
from gitswarm.model.observed import ServiceState, TaskState, UpdateStatus, spec_digest

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
TEMPLATE = {"ContainerSpec": {"Image": "a:2"}}
OLD = {"ContainerSpec": {"Image": "a:1"}}


def svc(
    *,
    replicas: int | None = 1,
    mode: str = "replicated",
    update: UpdateStatus | None = None,
    restart: str | None = None,
    rollback: bool = False,
) -> ServiceState:
    template: dict[str, Any] = dict(TEMPLATE)
    if restart:
        template["RestartPolicy"] = {"Condition": restart}
    spec: dict[str, Any] = {"TaskTemplate": template}
    if rollback:
        spec["UpdateConfig"] = {"FailureAction": "rollback"}
    return ServiceState(
        id="s1",
        name="st_web",
        labels={"com.docker.stack.namespace": "st"},
        spec=spec,
        replicas=replicas,
        mode=mode,  # type: ignore[arg-type]
        update_status=update,
    )


def task(
    state: str,
    *,
    desired: str = "running",
    template: dict[str, Any] | None = None,
    slot: int = 1,
    at: dt.datetime = T0 + dt.timedelta(seconds=5),
    err: str = "",
    service: ServiceState | None = None,
    node: str = "n1",
) -> TaskState:
    tmpl = (
        template
        if template is not None
        else (service.spec["TaskTemplate"] if service else TEMPLATE)
    )
    return TaskState(
        id=f"t{slot}{state}",
        service_id="s1",
        node_id=node,
        slot=slot,
        desired_state=desired,
        state=state,
        error=err,
        created_at=at,
        spec_digest=spec_digest(tmpl),
    )


def test_all_replicas_running_is_converged() -> None:
    verdict = assess(
        [svc(replicas=2)], [task("running", slot=1), task("running", slot=2)], since=T0
    )
    assert verdict.state == "converged"


def test_old_tasks_still_running_is_progressing() -> None:
    verdict = assess([svc()], [task("running", template=OLD)], since=T0)
    assert verdict.state == "progressing"


def test_swarm_rollback_is_a_failure_with_its_reason() -> None:
    update = UpdateStatus("rollback_started", "update rolled back due to failure", T0)
    verdict = assess([svc(update=update)], [task("failed", err="unhealthy container")], since=T0)
    assert verdict.state == "failed" and verdict.reason == "SwarmRolledBack"
    assert "unhealthy container" in verdict.message


def test_a_rollback_from_before_this_deploy_is_not_ours() -> None:
    update = UpdateStatus("rollback_completed", "old", T0 - dt.timedelta(hours=1))
    verdict = assess([svc(update=update)], [task("running")], since=T0)
    assert verdict.state == "converged"


def test_paused_update_fails() -> None:
    verdict = assess([svc(update=UpdateStatus("paused", "update paused", T0))], [], since=T0)
    assert verdict.reason == "UpdatePaused"


def test_repeated_task_failures_fail_with_the_errors() -> None:
    tasks = [
        task("failed", slot=1, err=f"boom {i}", at=T0 + dt.timedelta(seconds=i)) for i in range(3)
    ]
    verdict = assess([svc()], tasks, since=T0)
    assert verdict.reason == "TasksFailing" and "boom 2" in verdict.message


def test_failures_during_a_rolling_back_update_wait_for_swarms_verdict() -> None:
    tasks = [task("failed", slot=1, at=T0 + dt.timedelta(seconds=i)) for i in range(3)]
    update = UpdateStatus("updating", "", T0)
    verdict = assess([svc(update=update, rollback=True)], tasks, since=T0)
    assert verdict.state == "progressing"


def test_zero_replicas_converge_with_no_running_task() -> None:
    assert assess([svc(replicas=0)], [], since=T0).state == "converged"
    busy = assess([svc(replicas=0)], [task("running")], since=T0)
    assert busy.state == "progressing"


def test_global_service_needs_every_task_running() -> None:
    s = svc(replicas=None, mode="global")
    assert (
        assess([s], [task("running", slot=1), task("starting", slot=2)], since=T0).state
        == "progressing"
    )
    assert (
        assess([s], [task("running", slot=1), task("running", slot=2)], since=T0).state
        == "converged"
    )


def test_one_shot_task_with_restart_none_converges_when_complete() -> None:
    s = svc(restart="none")
    done = task("complete", desired="shutdown", service=s)
    assert assess([s], [done], since=T0).state == "converged"
    failed = task("failed", desired="shutdown", service=s, err="exit 1")
    assert assess([s], [failed], since=T0).reason == "TasksFailing"


def test_replicated_job_converges_on_completions() -> None:
    s = svc(replicas=2, mode="replicated-job")
    one = [task("complete", desired="complete", slot=1)]
    assert assess([s], one, since=T0).state == "progressing"
    two = [*one, task("complete", desired="complete", slot=2)]
    assert assess([s], two, since=T0).state == "converged"


def test_a_one_shot_update_paused_by_its_own_exit_is_converged() -> None:
    # Swarm's updater pauses when a task exits within the monitor period; for restart
    # "none" that exit is the task's success, once every slot ran the new template.
    paused = UpdateStatus("paused", "update paused due to failure or early termination", T0)
    s = svc(restart="none", update=paused)
    done = task("complete", desired="shutdown", service=s)
    assert assess([s], [done], since=T0).state == "converged"
    # ... but not while a slot still holds a task of the old template: that is a stall.
    s2 = svc(restart="none", update=paused, replicas=2)
    old = task("complete", desired="shutdown", template=OLD, slot=2)
    verdict = assess([s2], [done, old], since=T0)
    assert verdict.reason == "UpdatePaused" and "failure_action: continue" in verdict.message
    # ... nor when the new task failed.
    failed = task("failed", desired="shutdown", service=s, err="exit 1")
    assert assess([s], [failed], since=T0).reason == "UpdatePaused"


def test_a_task_on_a_node_that_is_down_does_not_run() -> None:
    """The managers keep the state a lost node's task last reported ("running"); like
    ``docker service ls`` (docker/cli AppendServiceStatus), it does not count."""
    service = svc(replicas=3)
    tasks = [task("running", slot=1), task("running", slot=2), task("running", slot=3, node="n3")]
    assert assess([service], tasks, since=T0).state == "converged"  # what the node says
    verdict = assess([service], tasks, since=T0, down_nodes=frozenset({"n3"}))
    assert verdict.state == "progressing"  # a sync's wait waits on (until its timeout)
    assert verdict.message == "web: 2/3 running, 1 task(s) on a node that is down"
    (progress,) = verdict.services
    assert (progress.running, progress.desired, progress.lost) == (2, 3, 1)


def test_an_app_with_a_task_lost_with_its_node_is_degraded() -> None:
    service = svc(replicas=2)
    tasks = [task("running", slot=1), task("running", slot=2, node="n3")]
    health, verdict = app_health([service], 1, tasks, now=T0, down_nodes=frozenset({"n3"}))
    assert health == "Degraded"
    assert "1 task(s) on a node that is down" in verdict.message
    assert app_health([service], 1, tasks, now=T0, down_nodes=frozenset({"n2"}))[0] == "Healthy"
    # Swarm replaced it: the old task is shut down, the new one runs elsewhere
    moved = [task("running", slot=1), task("running", slot=2, node="n3", desired="shutdown"),
             replace(task("running", slot=2, node="n2"), id="t2moved")]  # fmt: skip
    assert app_health([service], 1, moved, now=T0, down_nodes=frozenset({"n3"}))[0] == "Healthy"


def test_a_one_shot_or_a_global_task_on_a_down_node_does_not_run_either() -> None:
    down = frozenset({"n3"})
    one_shot = svc(replicas=1, restart="none")
    verdict = assess([one_shot], [task("running", node="n3")], since=T0, down_nodes=down)
    assert verdict.state == "progressing"
    done = assess([one_shot], [task("complete", node="n3")], since=T0, down_nodes=down)
    assert done.state == "converged"  # it finished before the node went away


def test_a_global_service_is_complete_without_a_node_that_is_down_as_swarm_counts_it() -> None:
    """Seen on the 3-node swarm (tests/integration/test_faults_nodes.py): Swarm shuts
    down a global task whose node went down (its last report still says running),
    counts the service complete on the other nodes (``docker service ls``: desired 2),
    completes an update there, and starts a task on the node when it is back."""
    down = frozenset({"n3"})
    glob = svc(replicas=None, mode="global")
    up = [task("running", slot=1), task("running", slot=2, node="n2")]
    # Swarm's answer: the lost node's task is to shut down (and still says running)
    shut = [*up, task("running", slot=3, node="n3", desired="shutdown")]
    health, verdict = app_health([glob], 1, shut, now=T0, down_nodes=down)
    assert (health, verdict.state) == ("Healthy", "converged")
    assert verdict.services[0].message == "2/2 running; no task on node n3 (down)"
    assert (verdict.services[0].running, verdict.services[0].desired) == (2, 2)
    # read in the moment before Swarm shut it down: not lost, not waited for either
    meant = [*up, task("running", slot=3, node="n3")]
    health, verdict = app_health([glob], 1, meant, now=T0, down_nodes=down)
    assert (health, verdict.state, verdict.services[0].lost) == ("Healthy", "converged", 0)
    assert assess([glob], meant, since=T0, down_nodes=down).state == "converged"  # the sync
    # the node is back: its new task starts, and the service waits for it
    back = [*up, task("running", slot=3, node="n3", desired="shutdown", at=T0),
            replace(task("starting", slot=3, node="n3"), id="t3new")]  # fmt: skip
    health, verdict = app_health([glob], 1, back, now=T0)
    assert (health, verdict.services[0].message) == ("Progressing", "2/3 running")
    assert app_health([glob], 1, [*up, task("running", node="n3")], now=T0)[0] == "Healthy"
