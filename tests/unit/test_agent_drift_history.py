"""What the agent records of a drift, for DORA's drift incidents (issue 16): each drift
record names the drifted services and fields; a sync that deploys other services leaves
the drift in the status; the drift check that finds it undone records DriftResolved;
and DORA reads the drift's exact span from those records. On the fake swarm, with the
rig of test_agent_failure_paths; tests/integration/test_agent_drift.py has the real one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gitswarm.model.agent import TriggerRequest
from tests.gitops import service
from tests.unit.test_agent_failure_paths import GOOD, Rig, make  # noqa: F401

DRIFT = ("drift", "app", "dev")


def test_a_drift_undone_by_hand_is_recorded_from_detected_to_resolved(
    make: Callable[..., Rig],  # noqa: F811
) -> None:
    rig = make()  # no self-heal: the drift stays until someone undoes it
    rig.repo.compose({"web": service(GOOD), "api": service(GOOD)})
    rig.repo.commit("two services")
    rig.poll()
    rig.swarm.scale("fails_web", 3)
    rig.agent.run_task(DRIFT, TriggerRequest("agent"))
    detected = rig.ops("drift")[0]
    assert detected.reason == "Drift"  # type: ignore[attr-defined]
    assert [(c.service, c.action) for c in rig.store.get_operation(detected.id).changes] == [  # type: ignore[attr-defined]
        ("web", "changed")
    ]
    fields = rig.store.get_operation(detected.id).changes[0].fields  # type: ignore[attr-defined]
    assert any("Replicas" in f or "replicas" in f for f in fields), fields

    # a commit that changes api alone: deployed; web is still scaled by hand
    rig.repo.compose({"web": service(GOOD), "api": service(GOOD, environment={"X": "1"})})
    rig.repo.commit("api only")
    rig.poll()
    status = rig.status()
    assert status.sync == "OutOfSync" and set(status.drift) == {"web"}  # type: ignore[attr-defined]

    rig.swarm.scale("fails_web", 1)  # undone by hand
    rig.agent.run_task(DRIFT, TriggerRequest("agent"))
    resolved = rig.ops("drift")[0]
    assert resolved.reason == "DriftResolved"  # type: ignore[attr-defined]
    assert resolved.message == "the swarm matches Git again: web no longer drifted"  # type: ignore[attr-defined]
    assert rig.status().sync == "Synced" and not rig.status().drift  # type: ignore[attr-defined]
    rig.agent.run_task(DRIFT, TriggerRequest("agent"))  # nothing drifts: nothing recorded
    assert [o.reason for o in rig.ops("drift")] == ["DriftResolved", "Drift"]  # type: ignore[attr-defined]

    now = datetime.now(UTC)
    report = rig.store.dora("dev", since=now - timedelta(days=1), until=now + timedelta(minutes=1))
    (episode,) = report.drift
    assert (episode.operation_id, episode.ended_by) == (detected.id, resolved.id)  # type: ignore[attr-defined]
    assert episode.ended == resolved.started_at  # type: ignore[attr-defined]


def test_a_heal_ends_the_drift_without_a_resolved_record(make: Callable[..., Rig]) -> None:  # noqa: F811
    rig = make(sync={"self_heal": True})
    rig.poll()
    rig.swarm.scale("fails_web", 2)
    rig.agent.run_task(DRIFT, TriggerRequest("agent"))
    assert rig.swarm.services("fails")[0].replicas == 1  # healed
    rig.agent.run_task(DRIFT, TriggerRequest("agent"))
    assert [o.reason for o in rig.ops("drift")] == ["Drift"]  # type: ignore[attr-defined]
    heal = rig.ops("heal")[0]
    now = datetime.now(UTC)
    report = rig.store.dora("dev", since=now - timedelta(days=1), until=now + timedelta(minutes=1))
    assert [d.ended_by for d in report.drift] == [heal.id]  # type: ignore[attr-defined]
