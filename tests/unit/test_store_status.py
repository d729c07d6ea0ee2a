"""App status, deployed-state baselines, bad revisions and notification dedupe."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gitswarm.store import KEEP, Store

# --- app status -------------------------------------------------------------------------


def test_a_new_status_starts_unknown_and_takes_what_is_given(store: Store) -> None:
    assert store.get_status("web", "dev") is None
    op = store.record_operation("sync", "web", "dev", "Succeeded", trigger="poll")
    status = store.set_status(
        "web",
        "dev",
        sync="Synced",
        last_result="Succeeded",
        operation_id=op,
        revision="abc",
    )
    assert (status.app, status.env, status.sync, status.health) == (
        "web",
        "dev",
        "Synced",
        "Unknown",
    )
    assert (status.last_result, status.operation_id, status.revision) == ("Succeeded", op, "abc")
    assert status.reason is None and status.message == "" and status.drift == {}
    assert store.get_status("web", "dev") == status


def test_each_writer_changes_only_its_fields(store: Store) -> None:
    first = store.set_status("web", "prod", sync="Synced", health="Healthy", revision="r1")
    drift = {"web": ["deploy.replicas"], "db": ["env.LOG_LEVEL"]}
    after_drift = store.set_status(
        "web", "prod", sync="OutOfSync", reason="Drift", message="2 services", drift=drift
    )
    assert after_drift.health == "Healthy" and after_drift.revision == "r1"
    assert after_drift.drift == drift and after_drift.updated_at >= first.updated_at
    after_health = store.set_status("web", "prod", health="Degraded")
    assert after_health.sync == "OutOfSync" and after_health.drift == drift
    assert after_health.reason == "Drift"
    cleared = store.set_status(
        "web", "prod", sync="Synced", reason=None, message="", drift={}, revision=KEEP
    )
    assert (cleared.sync, cleared.health, cleared.reason, cleared.drift) == (
        "Synced",
        "Degraded",
        None,
        {},
    )
    assert cleared.revision == "r1"


def test_concurrent_writers_do_not_undo_each_other(store: Store) -> None:
    store.set_status("web", "prod", sync="Synced", health="Healthy")
    barrier = threading.Barrier(2)

    def drift_watcher() -> None:
        for _ in range(20):
            barrier.wait(30)
            store.set_status("web", "prod", sync="OutOfSync")

    def health_watcher() -> None:
        for _ in range(20):
            barrier.wait(30)
            store.set_status("web", "prod", health="Degraded")

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(drift_watcher), pool.submit(health_watcher)]:
            future.result(timeout=60)
    status = store.get_status("web", "prod")
    assert status is not None and (status.sync, status.health) == ("OutOfSync", "Degraded")


def test_all_statuses_are_sorted_and_deletable(store: Store) -> None:
    for app, env in [("web", "prod"), ("api", "dev"), ("web", "dev")]:
        store.set_status(app, env, health="Healthy")
    assert [(s.app, s.env) for s in store.all_statuses()] == [
        ("api", "dev"),
        ("web", "dev"),
        ("web", "prod"),
    ]
    assert store.delete_status("web", "dev")
    assert not store.delete_status("web", "dev")
    assert [(s.app, s.env) for s in store.all_statuses()] == [("api", "dev"), ("web", "prod")]


def test_status_values_outside_the_model_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="sync status"):
        store.set_status("web", "dev", sync="Sunk")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="health"):
        store.set_status("web", "dev", health="Fine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="last result"):
        store.set_status("web", "dev", last_result="Done")  # type: ignore[arg-type]
    assert store.all_statuses() == []


# --- baselines --------------------------------------------------------------------------


SPEC = {
    "Name": "medianest-dev_web",
    "TaskTemplate": {"ContainerSpec": {"Image": "medianest/app:1.2.0", "Secrets": ["db_pw"]}},
    "Mode": {"Replicated": {"Replicas": 2}},
}


def test_baselines_are_saved_replaced_and_read_per_service(store: Store) -> None:
    assert store.baselines("web", "dev") == {}
    rendered = {"image": "medianest/app:1.2.0", "deploy": {"replicas": 2}}
    saved = store.save_baseline(
        "web",
        "dev",
        "web",
        spec=SPEC,
        rendered=rendered,
        version=4242,
        spec_hash="h1",
        revision="r1",
    )
    assert saved.spec == SPEC and saved.version == 4242 and saved.revision == "r1"
    assert saved.rendered == rendered
    store.save_baseline(
        "web", "dev", "db", spec={"Name": "db"}, version=7, spec_hash="h2", revision="r1"
    )
    store.save_baseline("web", "prod", "web", spec={}, version=1, spec_hash="h3", revision=None)
    replaced = store.save_baseline(
        "web",
        "dev",
        "web",
        spec={**SPEC, "Labels": {}},
        version=2**40,
        spec_hash="h4",
        revision="r2",
    )
    got = store.baselines("web", "dev")
    assert list(got) == ["db", "web"]
    assert got["web"] == replaced and got["web"].version == 2**40
    assert got["web"].spec_hash == "h4" and got["web"].revision == "r2"
    assert got["web"].rendered == {}  # replaced as a whole
    assert got["db"].rendered == {}
    assert store.baselines("web", "prod")["web"].revision is None


def test_baselines_are_deleted_one_or_all(store: Store) -> None:
    for service in ("web", "db", "cache"):
        store.save_baseline("web", "dev", service, spec={}, version=1, spec_hash="h", revision="r")
    store.save_baseline("web", "prod", "web", spec={}, version=1, spec_hash="h", revision="r")
    assert store.delete_baseline("web", "dev", "cache") == 1
    assert store.delete_baseline("web", "dev", "cache") == 0
    assert list(store.baselines("web", "dev")) == ["db", "web"]
    assert store.delete_baseline("web", "dev") == 2
    assert store.baselines("web", "dev") == {}
    assert list(store.baselines("web", "prod")) == ["web"]


# --- bad revisions ----------------------------------------------------------------------


def test_a_bad_revision_is_remembered_per_app_and_environment(store: Store) -> None:
    assert not store.is_bad("web", "prod", "r2")
    store.mark_bad("web", "prod", "r2", "HealthTimeout", "web did not converge in 300s")
    store.mark_bad("web", "prod", "r2", "SwarmRolledBack")  # again: no error
    assert store.is_bad("web", "prod", "r2")
    assert not store.is_bad("web", "staging", "r2")
    assert not store.is_bad("api", "prod", "r2")
    assert not store.is_bad("web", "prod", "r3")


def test_bad_revisions_can_be_cleared(store: Store) -> None:
    for rev in ("r1", "r2", "r3"):
        store.mark_bad("web", "prod", rev, "HealthTimeout")
    assert store.clear_bad("web", "prod", "r1") == 1
    assert not store.is_bad("web", "prod", "r1") and store.is_bad("web", "prod", "r2")
    assert store.clear_bad("web", "prod") == 2
    assert not store.is_bad("web", "prod", "r3")


# --- notification dedupe ----------------------------------------------------------------


def test_one_notification_per_distinct_failure(store: Store) -> None:
    assert store.record_notification("web", "prod", "sync-failed", "HealthTimeout:r2")
    for _ in range(3):  # the loop sees the same failure again and again
        assert not store.record_notification("web", "prod", "sync-failed", "HealthTimeout:r2")
    assert store.record_notification("web", "prod", "sync-failed", "RenderFailed:r3")
    assert store.record_notification("web", "prod", "drift", "HealthTimeout:r2")  # other kind
    assert store.record_notification("web", "dev", "sync-failed", "HealthTimeout:r2")


def test_a_failure_that_clears_and_returns_notifies_again(store: Store) -> None:
    assert store.record_notification("web", "prod", "sync-failed", "f")
    assert store.record_notification("web", "prod", "drift", "d")
    assert store.forget_notification("web", "prod", "sync-failed") == 1
    assert store.record_notification("web", "prod", "sync-failed", "f")
    assert not store.record_notification("web", "prod", "drift", "d")
    assert store.forget_notification("web", "prod") == 2
    assert store.record_notification("web", "prod", "drift", "d")


def test_racing_notifiers_send_once(store: Store) -> None:
    threads = 8
    barrier = threading.Barrier(threads)

    def notify() -> bool:
        barrier.wait(30)
        return store.record_notification("web", "prod", "sync-failed", "boom")

    with ThreadPoolExecutor(max_workers=threads) as pool:
        sent = [f.result(timeout=60) for f in [pool.submit(notify) for _ in range(threads)]]
    assert sent.count(True) == 1
