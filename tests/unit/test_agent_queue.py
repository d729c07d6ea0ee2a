"""The agent's work queue (reconcile/agent/queue.py) is pure: its rules hold without
threads, without a clock, without Git or Docker."""

from __future__ import annotations

from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent.queue import (
    WorkQueue,
    jittered,
    poll_delay,
    retry_delay,
    slot_of,
)

SYNC = ("sync", "web", "prod")
DRIFT = ("drift", "web", "prod")


def test_a_burst_of_triggers_coalesces_and_the_last_one_wins() -> None:
    queue = WorkQueue()
    for n in range(50):
        queue.put(SYNC, TriggerRequest("webhook", revision=f"r{n}"))
    [(key, request)] = queue.take_ready()
    assert key == SYNC and request.revision == "r49"


def test_offer_keeps_the_pending_request() -> None:
    queue = WorkQueue()
    queue.put(DRIFT, TriggerRequest("agent", reason="event"))
    queue.offer(DRIFT, TriggerRequest("agent", reason="drift round"))
    queue.offer(("drift", "api", "prod"), TriggerRequest("agent", reason="drift round"))
    ready = dict(queue.take_ready())
    assert ready[DRIFT].reason == "event" and ready[("drift", "api", "prod")].reason


def test_one_task_per_app_and_environment_at_a_time() -> None:
    queue = WorkQueue()
    queue.put(SYNC, TriggerRequest("poll"))
    queue.put(DRIFT, TriggerRequest("agent"))
    assert [k for k, _ in queue.take_ready()] == [SYNC]  # the drift check waits
    assert slot_of(SYNC) == slot_of(DRIFT) == ("web", "prod")
    assert queue.take_ready() == [] and not queue.idle()
    queue.put(SYNC, TriggerRequest("poll"))  # a new commit meanwhile: pending too
    queue.done(SYNC)
    assert [k for k, _ in queue.take_ready()] == [SYNC]  # syncs before drift
    queue.done(SYNC)
    assert [k for k, _ in queue.take_ready()] == [DRIFT]
    queue.done(DRIFT)
    assert queue.idle()


def test_git_first_then_the_syncs_a_commit_touched_then_the_rest_then_drift() -> None:
    queue = WorkQueue()
    queue.put(("drift-all",), TriggerRequest("agent"))
    queue.put(("drift", "a", "prod"), TriggerRequest("agent"))
    for app in ("a", "b", "z"):
        queue.put(("sync", app, "prod"), TriggerRequest("poll"), urgent=app == "z")
    queue.put(("git",), TriggerRequest("poll"))
    order = [k for k, _ in queue.take_ready()]
    assert order == [
        ("sync", "z", "prod"),  # urgent: the app the commit touched
        ("git",),
        ("sync", "a", "prod"),
        ("sync", "b", "prod"),
        ("drift-all",),
    ]  # ("drift", "a", "prod") waits for the sync of a
    assert not queue.urgent


def test_timers_fire_when_due_and_the_poll_and_drift_timers_re_arm() -> None:
    queue = WorkQueue()
    queue.schedule(10.0, ("poll",), TriggerRequest("poll"))
    queue.schedule(20.0, ("drift-tick",), TriggerRequest("agent"))
    queue.schedule(5.0, SYNC, TriggerRequest("poll", reason="retry"))
    queue.fire_due(4.9, lambda: 30.0, 120.0)
    assert queue.pending == {} and queue.next_due() == 5.0
    queue.fire_due(20.0, lambda: 30.0, 120.0)
    assert set(queue.pending) == {SYNC, ("git",), ("drift-all",)}
    assert sorted((t.due, t.key) for t in queue.timers) == [
        (50.0, ("poll",)),
        (140.0, ("drift-tick",)),
    ]


def test_retries_back_off_2_4_8_up_to_a_minute_and_reset() -> None:
    assert [retry_delay(n) for n in range(1, 9)] == [2, 4, 8, 16, 32, 60, 60, 60]
    queue = WorkQueue()
    assert [queue.backoff(SYNC) for _ in range(3)] == [2.0, 4.0, 8.0]
    queue.reset_backoff(SYNC)
    assert queue.backoff(SYNC) == 2.0


def test_a_failing_remote_is_polled_less_often_and_polls_spread_out() -> None:
    assert poll_delay(30, 0, 300) == 30
    assert [poll_delay(30, n, 300) for n in (1, 2, 3, 4)] == [60, 120, 240, 300]
    assert jittered(30, 0.2, lambda low, high: low) == 24
    assert jittered(30, 0.2, lambda low, high: high) == 36
    assert jittered(0.01, 0.2, lambda low, high: low) == 0.1  # never a busy loop
