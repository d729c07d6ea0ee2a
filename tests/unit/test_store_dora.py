"""DORA from the store, on SQLite and on PostgreSQL: the synthetic history of
test_dora_metrics written through the store's own API gives exactly the hand-computed
answers on both, and the commits a deployment brought are recorded and read back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitswarm.dora import DoraSettings, compute
from gitswarm.dora.compute import ID, KIND, SERVICES
from gitswarm.model.operation import DeployedCommit, Operation, ServiceChange
from gitswarm.store import Store, quick
from harness.postgres import PrivatePostgres
from tests.unit.test_dora_metrics import HISTORY, WINDOW, t


class Clock:
    def __init__(self) -> None:
        self.now = t("05-01 00:00")

    def __call__(self) -> datetime:
        return self.now


def record(store: Store, clock: Clock, op: Operation) -> int:
    """``op`` written as the agent writes it: started, then finished at its times."""
    clock.now = op.started_at
    if op.kind in ("drift", "policy-violation"):
        return store.record_operation(
            op.kind, op.app, op.env, op.result, trigger=op.trigger, holder=op.holder,
            revision=op.revision, commit_time=op.commit_time, reason=op.reason,
            changes=op.changes,
        )  # fmt: skip
    op_id = store.start_operation(
        op.kind, op.app, op.env, holder=op.holder or "h", trigger=op.trigger,
        revision=op.revision, commit_time=op.commit_time, dry_run=op.dry_run,
    )  # fmt: skip
    if op.result != "Running":
        clock.now = op.finished_at or op.started_at
        store.finish_operation(op_id, op.result, op.reason, changes=op.changes, commits=op.commits)
    return op_id


@pytest.fixture
def history_store(store_url: str) -> Store:
    clock = Clock()
    store = Store(store_url, clock=clock)
    ids = [record(store, clock, op) for op in HISTORY]
    assert ids == [op.id for op in HISTORY]  # a fresh store numbers from 1
    return store


def test_the_store_gives_the_hand_computed_answers(history_store: Store) -> None:
    with history_store as store:
        got = store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()
        for_api = store.dora("prod", "api", since=WINDOW.since, until=WINDOW.until).as_dict()
    assert got == compute(HISTORY, "prod", WINDOW).as_dict()
    assert for_api == compute(HISTORY, "prod", WINDOW, app="api").as_dict()
    # the figures test_dora_metrics checks by hand, again here on this backend
    assert got["deployment_frequency"]["deployments"] == 11
    assert got["lead_time"]["median_seconds"] == 3840
    assert got["lead_time"]["p90_seconds"] == 84840
    assert got["change_failure_rate"]["failed"] == 2
    assert got["time_to_restore"]["median_seconds"] == 690
    assert got["drift"]["incidents"] == 2
    assert got["traceability"]["untraceable"] == [16]


def test_the_settings_reach_the_computation(history_store: Store) -> None:
    with history_store as store:
        strict = store.dora(
            "prod",
            since=WINDOW.since,
            until=WINDOW.until,
            failure_window=timedelta(0),
            drift_threshold=timedelta(hours=1),
        ).as_dict()
    assert strict["change_failure_rate"]["failed"] == 1  # no fix-forward inside 0 s
    assert strict["drift"]["incidents"] == 1  # only the open one lasts over an hour


def test_until_defaults_to_now(store_url: str) -> None:
    now = datetime(2025, 6, 20, tzinfo=UTC)
    with Store(store_url, clock=lambda: now) as store:
        report = store.dora("prod", since=now - timedelta(days=30))
    assert report.settings.until == now and report.deployments == 0


def test_a_deployments_commits_are_recorded_and_read_back(store: Store) -> None:
    op = store.start_operation("sync", "web", "prod", holder="h", trigger="poll", revision="b")
    commits = [
        DeployedCommit("b", t("06-02 08:00"), "fix: the port " + "x" * 500),
        DeployedCommit("a", t("06-02 07:00"), "feat: a"),
        DeployedCommit("a", t("06-02 07:00"), "feat: a"),  # git log never repeats; ignored
    ]
    store.finish_operation(op, "Succeeded", commits=commits)
    got = store.get_operation(op).commits
    assert [c.sha for c in got] == ["b", "a"]
    assert got[0].committed_at == t("06-02 08:00") and len(got[0].subject) == 200
    assert store.history()[0].commits == ()  # `history` does not read them: it stays lean


def test_a_naive_commit_time_is_refused(store: Store) -> None:
    op = store.start_operation("sync", "web", "prod", holder="h", trigger="poll")
    naive = DeployedCommit("a", datetime(2025, 6, 2, 7, 0))
    with pytest.raises(ValueError, match=r"commit time of a .* has no time zone"):
        store.finish_operation(op, "Succeeded", commits=[naive])


def test_the_lean_read_keeps_the_no_op_sync_that_restores(store_url: str) -> None:
    """The store reads only what can change a figure: a sync that changed nothing is
    read when it is the healthy state ending a failure or a drift, and not otherwise."""
    from tests.unit.test_dora_metrics import UNCHANGED, op

    history = [
        op(1, "sync", "Succeeded", "06-02 09:00", "06-02 09:01", changes=UNCHANGED),
        op(2, "sync", "Failed", "06-02 09:10", "06-02 09:15", reason="TasksFailing"),
        op(3, "sync", "Failed", "06-02 09:16", "06-02 09:17", reason="PolicyViolation"),
        op(4, "sync", "Succeeded", "06-02 09:20", "06-02 09:21", changes=UNCHANGED),
        op(5, "sync", "Succeeded", "06-02 09:30", "06-02 09:31", changes=UNCHANGED),
        op(6, "drift", "Succeeded", "06-02 10:00", reason="Drift"),
        op(7, "sync", "Succeeded", "06-02 10:05", "06-02 10:06", changes=UNCHANGED),
        op(8, "sync", "Succeeded", "06-02 11:00", "06-02 11:01", changes=UNCHANGED),
    ]
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        for one in history:
            record(store, clock, one)
        read = store.dora_rows("prod", None, WINDOW.since, WINDOW.until)
        got = store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()
    assert [row[ID] for row in read] == [2, 4, 6, 7]
    assert got == compute(history, "prod", WINDOW).as_dict()
    assert got["time_to_restore"]["list"][0]["seconds"] == 6 * 60  # 09:15 -> 09:21
    assert got["drift"]["episodes"] == 1 and got["drift"]["incidents"] == 1  # 6 min


def test_exact_drift_ends_read_back_from_the_store(store_url: str) -> None:
    """The drift history of test_dora_metrics (each drift record naming its services, a
    DriftResolved record when it was undone) gives the hand-computed ends from the
    store, on this backend: the read keeps the records that end a drift and leaves out
    the no-op sync in the middle of one."""
    from tests.unit.test_dora_metrics import DRIFT_HISTORY

    clock = Clock()
    with Store(store_url, clock=clock) as store:
        for one in DRIFT_HISTORY:
            record(store, clock, one)
        read = store.dora_rows("prod", None, WINDOW.since, WINDOW.until)
        got = store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()
    assert 8 not in {row[ID] for row in read}  # changed nothing, ends nothing
    assert {row[ID]: row[SERVICES] for row in read if row[KIND] == "drift"} == {
        2: {"web"}, 4: {"web"}, 5: set(), 6: {"web", "db"}, 10: {"web"}, 13: {"web"},
        14: set(), 15: set(), 16: set(),
    }  # fmt: skip
    assert got == compute(DRIFT_HISTORY, "prod", WINDOW).as_dict()
    assert [(d["operation_id"], d["seconds"], d["ended_by"]) for d in got["drift"]["list"]] == [
        (2, 1200, 5),
        (6, 2460, 9),
        (10, 90, 12),
        (16, 300, 17),
    ]


def _cutting(ops: list[Operation], env: str) -> list[tuple[datetime, None, timedelta]]:
    """Window starts that cut a deployment (its middle) or an incident (between a
    failed deployment's end and the next healthy state) of ``env``."""
    mine = [o for o in ops if o.env == env and o.finished_at is not None]
    cuts: list[datetime] = []
    for i, o in enumerate(mine):
        assert o.finished_at is not None
        if o.kind == "sync" and o.result == "Succeeded" and len(cuts) < 20:
            cuts.append(o.started_at + (o.finished_at - o.started_at) / 2)
        if o.kind == "sync" and o.reason == "HealthTimeout" and len(cuts) < 40:
            later = [n for n in mine[i + 1 :] if n.app == o.app and n.kind in ("sync", "heal")]
            if later and later[0].started_at > o.finished_at + timedelta(seconds=2):
                cuts.append(o.finished_at + timedelta(seconds=1))
    assert len(cuts) == 40
    return [(cut, None, timedelta(0)) for cut in cuts]


@pytest.mark.postgres
def test_sqlite_and_postgresql_give_the_same_answers_on_a_busy_history(
    tmp_path: Path, postgres_server: PrivatePostgres, postgres_url: str
) -> None:
    """A year of the benchmark's synthetic history (every kind of record, drift named
    and resolved, failures, rollbacks, heals), the same rows in a SQLite file and in a
    real PostgreSQL: the same figures from both, for several windows and an app alone,
    through the Store and through the command's own read, and each equal to the
    computation over the whole history (what the lean read leaves out changes nothing,
    a drift or an incident open when a window starts included)."""
    from bench.dora import END, populate

    name = f"t_{uuid.uuid4().hex[:12]}"
    urls = [str(tmp_path / "state.db"), postgres_server.create_schema(name, "gitswarm")]
    # windows starting every few days, so some start in the middle of a drift
    hour = timedelta(hours=1)
    windows = [(END - timedelta(days=days), None, hour) for days in range(3, 61, 3)]
    windows += [(END - timedelta(days=90), "app3", hour), (END - timedelta(days=7), "app0", hour)]
    answers: list[list[dict[str, object]]] = []
    try:
        for url in urls:
            populate(url, 6000)
            with Store(url, clock=lambda: END) as store:
                everything = list(store.export_operations())
                if len(windows) == 22:
                    # and, with no failure window (the read starts at `since`), windows
                    # starting in the middle of a deployment, or of an incident: after
                    # a failed deployment, before the next healthy state
                    windows += _cutting(everything, "production")
                got = []
                for since, app, failure_window in windows:
                    report = store.dora(
                        "production", app, since=since, until=END, failure_window=failure_window
                    ).as_dict()
                    window = DoraSettings(since, END, failure_window=failure_window)
                    assert report == compute(everything, "production", window, app=app).as_dict()
                    # and `gitswarm dora`'s own read (sqlite3, or psycopg directly)
                    mine = quick.dora(url, "production", app, window)
                    assert mine is not None and mine.as_dict() == report
                    got.append(report)
            answers.append(got)
    finally:
        postgres_server.drop_schema(name, "gitswarm")
    assert answers[0] == answers[1]
    first = answers[0][windows.index((END - timedelta(days=30), None, hour))]
    # the history is busy enough that every figure is exercised
    assert first["deployment_frequency"]["deployments"] > 20  # type: ignore[index]
    assert first["change_failure_rate"]["failed"] > 0  # type: ignore[index]
    assert first["drift"]["episodes"] > 5  # type: ignore[index]
    assert first["time_to_restore"]["restored"] > 0  # type: ignore[index]


def test_a_drift_that_began_before_the_window_is_not_a_new_one_inside(store_url: str) -> None:
    """The window (1 June, read from 31 May 23:00 for context) starts in the middle of a
    drift: its record inside continues that drift, which began before and is not
    counted. Drifts over before the window (by a DriftResolved record, by the healthy
    state after a record naming no services, by a deployment of the drifted service)
    leave the drifts inside as they are. Hand-computed."""
    from tests.unit.test_dora_metrics import UNCHANGED, op

    def named(service: str) -> tuple[ServiceChange, ...]:
        return (ServiceChange(service, "changed", ("replicas",)),)

    history = [
        # web: drifting from 30 May (seen again at 22:00) to 1 June 09:00: before the window
        op(1, "drift", "Succeeded", "05-30 10:00", reason="Drift", changes=named("web")),
        op(2, "drift", "Succeeded", "05-31 22:00", reason="Drift", changes=named("web")),
        op(3, "drift", "Succeeded", "06-01 08:00", reason="Drift", changes=named("web")),
        op(4, "drift", "Succeeded", "06-01 09:00", reason="DriftResolved"),
        # api: resolved on 30 May; a new drift on 2 June, healed: 240 s
        op(5, "drift", "Succeeded", "05-30 12:00", app="api", reason="Drift",
           changes=named("api")),
        op(6, "drift", "Succeeded", "05-30 12:10", app="api", reason="DriftResolved"),
        op(7, "drift", "Succeeded", "06-02 10:00", app="api", reason="Drift",
           changes=named("api")),
        op(8, "heal", "Succeeded", "06-02 10:03", "06-02 10:04", app="api",
           changes=named("api")),
        # db, records naming no services: over at the no-op sync of 31 May; 3 June: 300 s
        op(9, "drift", "Succeeded", "05-31 10:00", app="db", reason="Drift"),
        op(10, "sync", "Succeeded", "05-31 10:29", "05-31 10:30", app="db", changes=UNCHANGED),
        op(11, "drift", "Succeeded", "06-03 10:00", app="db", reason="Drift"),
        op(12, "sync", "Succeeded", "06-03 10:04", "06-03 10:05", app="db", changes=UNCHANGED),
        # queue: over at the deployment of the drifted service on 31 May; 4 June: 120 s
        op(13, "drift", "Succeeded", "05-31 20:00", app="queue", reason="Drift",
           changes=named("queue")),
        op(14, "sync", "Succeeded", "05-31 20:29", "05-31 20:30", app="queue",
           changes=named("queue")),
        op(15, "drift", "Succeeded", "06-04 09:00", app="queue", reason="Drift",
           changes=named("queue")),
        op(16, "drift", "Succeeded", "06-04 09:02", app="queue", reason="DriftResolved"),
    ]  # fmt: skip
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        for one in history:
            record(store, clock, one)
        got = store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()["drift"]
    assert [(d["app"], d["operation_id"], d["seconds"], d["ended_by"]) for d in got["list"]] == [
        ("api", 7, 240, 8),
        ("db", 11, 300, 12),
        ("queue", 15, 120, 16),
    ]
    assert (got["episodes"], got["incidents"], got["open"]) == (3, 3, 0)
    assert got == compute(history, "prod", WINDOW).as_dict()["drift"]  # all of it, known


def test_a_failure_before_the_window_still_unrestored_is_not_a_new_incident_inside(
    store_url: str,
) -> None:
    """The window (1 June, read from 31 May 23:00 for context) starts while web is in an
    incident: its deployment failed on 31 May at 20:05 and nothing healthy came since
    (a policy violation is not a deployment). The failure inside at 00:15 belongs to
    that incident, which began before the window: not counted, though the failure
    itself is (2 deployments inside, 1 failed). api's incident inside: 960 s.
    Hand-computed."""
    from tests.unit.test_dora_metrics import CHANGED, UNCHANGED, op

    history = [
        op(1, "sync", "Failed", "05-31 20:00", "05-31 20:05", reason="HealthTimeout"),
        op(2, "policy-violation", "Failed", "05-31 22:00", reason="PolicyViolation"),
        op(3, "sync", "Failed", "06-01 00:10", "06-01 00:15", reason="TasksFailing"),
        op(4, "sync", "Succeeded", "06-01 00:30", "06-01 00:31", changes=CHANGED),
        op(5, "sync", "Failed", "06-02 10:00", "06-02 10:05", app="api", reason="HealthTimeout"),
        op(6, "sync", "Succeeded", "06-02 10:20", "06-02 10:21", app="api", changes=UNCHANGED),
    ]
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        for one in history:
            record(store, clock, one)
        got = store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()
    ttr = got["time_to_restore"]
    assert [(i["app"], i["failures"], i["seconds"], i["restored_by"]) for i in ttr["list"]] == [
        ("api", [5], 960, 6)
    ]
    assert (ttr["incidents"], ttr["restored"], ttr["open"]) == (1, 1, 0)
    cfr = got["change_failure_rate"]
    assert (cfr["deployments"], cfr["failed"]) == (3, 2)  # ops 3, 4, 5; 3 and 5 failed
    assert got == compute(history, "prod", WINDOW).as_dict()  # all of it, known


def test_a_deployment_that_began_before_the_read_finishes_inside_the_window(
    store_url: str,
) -> None:
    """With no failure window the read starts at `since` itself: a deployment that
    started a minute before midnight and finished 30 s into the window counts inside
    (a deployment's time is when it finished), with its commit's lead time; with the
    default 1 h window, the same. And a failed deployment that began before the read
    and failed inside opens an incident inside, ended by the next healthy state (a
    no-op sync): though nothing else of api is in the window's lean read, the agent
    keeps api's status, and that is where the read learns of it. Hand-computed."""
    from tests.unit.test_dora_metrics import CHANGED, UNCHANGED, c, op

    history = [
        op(1, "sync", "Succeeded", "05-31 23:59:30", "06-01 00:00:30", changes=CHANGED,
           commits=(c("a1", "05-31 23:00"),)),
        op(2, "sync", "Succeeded", "06-02 09:00", "06-02 09:01", changes=CHANGED,
           commits=(c("a2", "06-02 08:00"),)),
        # api: failing from before the read to 02:00 inside, restored at 02:10
        op(3, "sync", "Failed", "05-31 22:00", "06-01 02:00", app="api", reason="HealthTimeout"),
        op(4, "sync", "Succeeded", "06-01 02:09", "06-01 02:10", app="api", changes=UNCHANGED),
    ]  # fmt: skip
    clock = Clock()
    strict = DoraSettings(WINDOW.since, WINDOW.until, failure_window=timedelta(0))
    with Store(store_url, clock=clock) as store:
        for one in history:
            record(store, clock, one)
        store.set_status("api", "prod", sync="Synced", health="Healthy", operation_id=4)
        got = store.dora(
            "prod", since=WINDOW.since, until=WINDOW.until, failure_window=timedelta(0)
        ).as_dict()
        default = store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()
    assert got["deployment_frequency"]["deployments"] == 2  # ops 1 and 2
    assert got["lead_time"]["commits"] == 2
    assert got["lead_time"]["median_seconds"] == (3630 + 3660) / 2  # 1h00m30s, 1h01m
    assert (got["change_failure_rate"]["deployments"], got["change_failure_rate"]["failed"]) == (
        3,
        1,
    )
    assert [(i["app"], i["failures"], i["seconds"]) for i in got["time_to_restore"]["list"]] == [
        ("api", [3], 600)
    ]
    assert got == compute(history, "prod", strict).as_dict()
    assert default == compute(history, "prod", WINDOW).as_dict()
    assert default["deployment_frequency"]["deployments"] == 2


def test_what_the_start_cuts_is_read_for_many_apps_at_once(store_url: str) -> None:
    """The per-app reads at the window's start go a hundred apps to a statement: with
    150 apps, each failing before the window and again inside it, and drifting from
    before it, no incident and no drift inside is new. Hand-computed."""
    from tests.unit.test_dora_metrics import CHANGED, op

    web = (ServiceChange("web", "changed", ("replicas",)),)
    history = []
    for n in range(150):
        app, first = f"app{n:03d}", 5 * n + 1
        history += [
            op(first, "drift", "Succeeded", "05-31 10:00", app=app, reason="Drift", changes=web),
            op(first + 1, "sync", "Failed", "05-31 20:00", "05-31 20:05", app=app,
               reason="HealthTimeout"),
            op(first + 2, "sync", "Failed", "06-01 00:10", "06-01 00:15", app=app,
               reason="TasksFailing"),
            op(first + 3, "drift", "Succeeded", "06-01 01:00", app=app, reason="Drift",
               changes=web),
            op(first + 4, "sync", "Succeeded", "06-01 02:00", "06-01 02:01", app=app,
               changes=CHANGED),
        ]  # fmt: skip
    history.sort(key=lambda o: o.started_at)
    history = [
        Operation(**{**{f: getattr(o, f) for f in o.__slots__}, "id": i})  # type: ignore[arg-type]
        for i, o in enumerate(history, start=1)
    ]
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        for one in history:
            record(store, clock, one)
        got = store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()
        mine = quick.dora(store_url, "prod", None, WINDOW)
    assert got["time_to_restore"]["incidents"] == 0
    assert got["drift"]["episodes"] == 0
    assert (got["change_failure_rate"]["deployments"], got["change_failure_rate"]["failed"]) == (
        300,
        150,
    )
    assert got == compute(history, "prod", WINDOW).as_dict()
    assert mine is not None and mine.as_dict() == got


def test_the_failure_window_at_the_edges_of_the_window(store_url: str) -> None:
    """At the start: web's deployment finished 30 min before the window and rolled back
    10 min into it failed (rolled back), but before the window: neither it nor its
    incident counts; the rollback inside is a deployment. At the end (until 15 June
    00:00): api's deployment 10 min before the end is rolled back 20 min after it, past
    the end: the report knows nothing of it yet, so the deployment did not fail.
    Hand-computed."""
    from tests.unit.test_dora_metrics import CHANGED, op

    history = [
        op(1, "sync", "Succeeded", "05-31 23:28", "05-31 23:30", changes=CHANGED),
        op(2, "rollback", "Succeeded", "06-01 00:10", "06-01 00:11", changes=CHANGED),
        op(3, "sync", "Succeeded", "06-14 23:48", "06-14 23:50", app="api", changes=CHANGED),
        op(4, "rollback", "Succeeded", "06-15 00:10", "06-15 00:11", app="api",
           changes=CHANGED),
    ]  # fmt: skip
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        for one in history:
            record(store, clock, one)
        got = store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()
        later = store.dora("prod", since=WINDOW.since, until=t("06-15 01:00")).as_dict()
    cfr = got["change_failure_rate"]
    assert (cfr["deployments"], cfr["failed"]) == (2, 0)  # ops 2 and 3
    assert got["time_to_restore"]["incidents"] == 0
    assert got == compute(history, "prod", WINDOW).as_dict()
    # an hour later the rollback is known: op 3 failed, its incident lasted 21 min
    cfr = later["change_failure_rate"]
    assert (cfr["deployments"], cfr["failed"]) == (3, 1)
    assert [(f["operation_id"], f["cause"]) for f in cfr["failures"]] == [
        (3, "rolled back by operation 4")
    ]
    assert [(i["app"], i["seconds"]) for i in later["time_to_restore"]["list"]] == [("api", 1260)]


def test_an_app_that_left_git_keeps_what_the_window_start_cuts(store_url: str) -> None:
    """Last month's report does not change when an app leaves Git later (its status is
    deleted then): as Four Keys counts a deployment by when it happened, whatever became
    of the service. With no failure window the read starts at `since`; api's deployment
    started before it and finished inside, db's failed inside (restored by a no-op sync,
    which the lean read does not select): neither app has a record in the window's lean
    read nor a status, and both still count, on the store's read and on the command's.
    Hand-computed."""
    from tests.unit.test_dora_metrics import CHANGED, UNCHANGED, c, op

    history = [
        op(1, "sync", "Succeeded", "06-02 09:00", "06-02 09:01", changes=CHANGED,
           commits=(c("w1", "06-02 08:00"),)),
        op(2, "sync", "Succeeded", "05-31 23:50", "06-01 00:10", app="api", changes=CHANGED,
           commits=(c("a1", "05-31 23:00"),)),
        op(3, "sync", "Failed", "05-31 22:00", "06-01 02:00", app="db", reason="HealthTimeout"),
        op(4, "sync", "Succeeded", "06-01 02:09", "06-01 02:10", app="db", changes=UNCHANGED),
    ]  # fmt: skip
    clock = Clock()
    strict = DoraSettings(WINDOW.since, WINDOW.until, failure_window=timedelta(0))
    with Store(store_url, clock=clock) as store:
        for one in history:
            record(store, clock, one)
        for app in ("web", "api", "db"):
            store.set_status(app, "prod", sync="Synced", health="Healthy")
        before = store.dora("prod", since=WINDOW.since, until=WINDOW.until,
                            failure_window=timedelta(0)).as_dict()  # fmt: skip
        for app in ("api", "db"):  # they leave Git
            assert store.delete_status(app, "prod")
        got = store.dora(
            "prod", since=WINDOW.since, until=WINDOW.until, failure_window=timedelta(0)
        ).as_dict()
    mine = quick.dora(store_url, "prod", None, strict)
    assert got["deployment_frequency"]["deployments"] == 2  # ops 1 and 2
    assert got["lead_time"]["commits"] == 2  # w1 1 h 01 min, a1 1 h 10 min
    assert got["lead_time"]["median_seconds"] == (3660 + 4200) / 2
    cfr = got["change_failure_rate"]
    assert (cfr["deployments"], cfr["failed"]) == (3, 1)  # op 3 failed
    assert [(i["app"], i["failures"], i["seconds"]) for i in got["time_to_restore"]["list"]] == [
        ("db", [3], 600)
    ]
    assert got == before == compute(history, "prod", strict).as_dict()
    assert mine is not None and mine.as_dict() == got
