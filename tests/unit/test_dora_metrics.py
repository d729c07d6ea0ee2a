"""DORA figures (gitswarm/dora/) on a synthetic history whose answers are computed by
hand in the comments: deployment frequency and its Four Keys bucket, lead time per
commit, change failure rate with rollbacks and fix-forwards inside the 1 h window, time
to restore, drift incidents over the threshold, traceability; and the levels."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gitswarm.dora import DoraSettings, compute, frequency_bucket, levels, percentile
from gitswarm.model.operation import DeployedCommit, Operation, ServiceChange


def t(when: str) -> datetime:
    """``"06-02 09:05"`` (or with seconds) in June 2025, UTC."""
    fmt = "%m-%d %H:%M:%S" if when.count(":") == 2 else "%m-%d %H:%M"
    return datetime.strptime(f"2025-{when}", f"%Y-{fmt}").replace(tzinfo=UTC)


def c(sha: str, when: str, subject: str = "feat: change") -> DeployedCommit:
    return DeployedCommit(sha, t(when), subject)


COMMITTED = t("05-01 00:00")
CHANGED = (ServiceChange("web", "changed", ("image",)),)
UNCHANGED = (ServiceChange("web", "unchanged"),)


def op(
    id: int,
    kind: str,
    result: str,
    start: str,
    end: str | None = None,
    *,
    app: str = "web",
    env: str = "prod",
    reason: str | None = None,
    changes: tuple[ServiceChange, ...] = (),
    commits: tuple[DeployedCommit, ...] = (),
    revision: str | None = "r",
    commit_time: datetime | None = COMMITTED,
    dry_run: bool = False,
) -> Operation:
    return Operation(
        id=id,
        kind=kind,  # type: ignore[arg-type]
        app=app,
        env=env,
        trigger="poll",
        started_at=t(start),
        finished_at=t(end or start) if result != "Running" else None,
        result=result,  # type: ignore[arg-type]
        reason=reason,
        holder="agent-1",
        revision=revision,
        commit_time=commit_time,
        changes=changes,
        commits=commits,
        dry_run=dry_run,
    )


# The window: Sunday 1 June to Sunday 15 June 2025, 14 days, touching the ISO weeks of
# 26 May, 2 June and 9 June.
WINDOW = DoraSettings(since=t("06-01 00:00"), until=t("06-15 00:00"))

HISTORY = [
    # before the window: context only (c0 was deployed then)
    op(1, "sync", "Succeeded", "05-31 10:00", "05-31 10:02", changes=CHANGED,
       commits=(c("c0", "05-31 09:00"),)),
    # Mon 2 June: a deployment of two commits: 1h05m (3900 s) and 2h (7200 s)
    op(2, "sync", "Succeeded", "06-02 09:00", "06-02 09:05", changes=CHANGED,
       commits=(c("c1", "06-02 08:00"), c("c2", "06-02 07:05"))),
    op(3, "sync", "Succeeded", "06-02 12:00", "06-02 12:01", changes=UNCHANGED),  # no change
    # Tue 3 June: a bad commit fails health (a failed deployment; incident from 10:10) and
    # is rolled back automatically (a deployment; restored at 10:13: 180 s)
    op(4, "sync", "Failed", "06-03 10:00", "06-03 10:10", reason="HealthTimeout"),
    op(5, "rollback", "Succeeded", "06-03 10:10", "06-03 10:13", changes=CHANGED),
    # Wed 4 June: the fix brings cbad and c3 (range good..fix): 23h34m (84840 s), 3840 s.
    # A "fix:" a day after the failure is outside the 1 h window: it charges nothing.
    op(6, "sync", "Succeeded", "06-04 09:00", "06-04 09:04", changes=CHANGED,
       commits=(c("c3", "06-04 08:00", "fix: health check"), c("cbad", "06-03 09:30"))),
    # a deployment (720 s) fixed forward 18 min later by a "hotfix:" (420 s): op 7 failed,
    # incident 09:32 -> 09:52 (1200 s)
    op(7, "sync", "Succeeded", "06-04 09:30", "06-04 09:32", changes=CHANGED,
       commits=(c("c4", "06-04 09:20"),)),
    op(8, "sync", "Succeeded", "06-04 09:50", "06-04 09:52", changes=CHANGED,
       commits=(c("c5", "06-04 09:45", "hotfix: typo in the port"),)),
    # Thu 5 June: drift 10:00 (seen twice), healed 10:06: 360 s, an incident (> 60 s)
    op(9, "drift", "Succeeded", "06-05 10:00", reason="Drift"),
    op(10, "drift", "Succeeded", "06-05 10:02", reason="Drift"),
    op(11, "heal", "Succeeded", "06-05 10:05", "06-05 10:06", changes=CHANGED),
    # Fri 6 June: drift healed within 30 s: not an incident
    op(12, "drift", "Succeeded", "06-06 11:00", reason="Drift"),
    op(13, "heal", "Succeeded", "06-06 11:00:20", "06-06 11:00:30", changes=CHANGED),
    # Mon 9 June: a deployment (exactly a day: 86400 s), and a manual rollback 3h57m later:
    # outside the window, so op 14 did not fail; the rollback's own commit: 180 s
    op(14, "sync", "Succeeded", "06-09 10:00", "06-09 10:03", changes=CHANGED,
       commits=(c("c6", "06-08 10:03"),)),
    op(15, "rollback", "Succeeded", "06-09 14:00", "06-09 14:02", changes=CHANGED,
       commits=(c("crb", "06-09 13:59", "Roll back app in prod to c6"),)),
    # Tue 10 June: a deployment recorded without its commit time: not traceable (3720 s)
    op(16, "sync", "Succeeded", "06-10 08:00", "06-10 08:02", changes=CHANGED,
       commits=(c("c7", "06-10 07:00"),), commit_time=None),
    # c2 again (deployed on 2 June): counted once; c8: 3900 s
    op(17, "sync", "Succeeded", "06-10 12:00", "06-10 12:05", changes=CHANGED,
       commits=(c("c8", "06-10 11:00"), c("c2", "06-02 07:05"))),
    # Wed 11 June: bad input and a skipped sync never reached the swarm: not deployments
    op(18, "policy-violation", "Failed", "06-11 09:00", reason="PolicyViolation"),
    op(19, "sync", "Failed", "06-11 09:10", "06-11 09:11", reason="RenderFailed"),
    op(20, "sync", "Skipped", "06-11 09:20", reason="RevisionMarkedBad"),
    # Thu 12 June: drift that nobody healed: open until the end of the window (2d9h)
    op(21, "drift", "Succeeded", "06-12 15:00", reason="Drift"),
    # dry runs, running operations and other environments are not counted
    op(22, "sync", "Succeeded", "06-12 16:00", changes=CHANGED, dry_run=True),
    op(23, "sync", "Running", "06-14 23:00", changes=CHANGED),
    op(24, "sync", "Succeeded", "06-12 10:00", "06-12 10:01", env="dev", changes=CHANGED,
       commits=(c("d1", "06-12 09:00"),)),
    # another app of prod: 3660 s; then a commit dated after its deployment (not counted)
    op(25, "sync", "Succeeded", "06-12 10:00", "06-12 10:01", app="api",
       changes=(ServiceChange("api", "created"),), commits=(c("c9", "06-12 09:00"),)),
    op(26, "sync", "Succeeded", "06-13 11:00", "06-13 11:01", app="api",
       changes=(ServiceChange("api", "changed"),), commits=(c("c10", "06-13 12:00"),)),
]  # fmt: skip


def test_the_environment_figures_match_the_hand_computed_answers() -> None:
    report = compute(reversed(HISTORY), "prod", WINDOW).as_dict()  # any order
    freq = report["deployment_frequency"]
    # successful deployments: web 2 5 6 7 8 14 15 16 17, api 25 26
    assert freq["deployments"] == 11
    assert freq["per_day"] == round(11 / 14, 4)
    assert freq["per_week"] == round(11 / 2, 4)
    assert freq["deploy_days"] == 7  # 2, 3, 4, 9, 10, 12, 13 June
    assert freq["bucket"] == "Daily"  # weeks: 0, 3, 4 deploy days: the median is 3
    assert (freq["met"], freq["level"]) == (False, "high")

    lead = report["lead_time"]
    # 180 420 720 3660 3720 3840 3900 3900 7200 84840 86400
    assert lead["commits"] == 11 and lead["skewed_commits"] == 1
    assert lead["median_seconds"] == 3840
    assert lead["p90_seconds"] == 84840  # rank 0.9 * 10 = 9 exactly
    assert (lead["met"], lead["level"]) == (True, "elite")

    cfr = report["change_failure_rate"]
    assert (cfr["deployments"], cfr["failed"]) == (12, 2)  # 11 successful + op 4
    assert cfr["rate"] == pytest.approx(2 / 12)
    assert (cfr["met"], cfr["level"]) == (False, "high")
    assert [(f["operation_id"], f["cause"]) for f in cfr["failures"]] == [
        (4, "ended Failed (HealthTimeout)"),
        (7, "fixed forward by operation 8"),
    ]

    ttr = report["time_to_restore"]
    assert (ttr["incidents"], ttr["restored"], ttr["open"]) == (2, 2, 0)
    assert [(i["failures"], i["seconds"], i["restored_by"]) for i in ttr["list"]] == [
        ([4], 180, 5),
        ([7], 1200, 8),
    ]
    assert ttr["median_seconds"] == 690 and ttr["mean_seconds"] == 690
    assert (ttr["met"], ttr["level"]) == (True, "elite")

    drift = report["drift"]
    assert (drift["episodes"], drift["incidents"], drift["open"]) == (3, 2, 1)
    assert [(d["operation_id"], d["seconds"]) for d in drift["list"]] == [
        (9, 360),
        (21, (2 * 24 + 9) * 3600),
    ]
    assert drift["longest_seconds"] == (2 * 24 + 9) * 3600 and drift["met"] is False

    trace = report["traceability"]
    # the 11 successful deployments, the heals 11 and 13, the failed op 4; op 16 lacks
    # its commit time
    assert (trace["changes"], trace["traceable"], trace["untraceable"]) == (14, 13, [16])
    assert trace["share"] == pytest.approx(13 / 14) and trace["met"] is False

    assert report["daily"][:3] == [
        {"date": "2025-06-02", "deployments": 1, "failed": 0},
        {"date": "2025-06-03", "deployments": 1, "failed": 1},
        {"date": "2025-06-04", "deployments": 3, "failed": 1},
    ]
    assert report["levels_source"] == "Accelerate State of DevOps Report 2019 (DORA)"


def test_one_application_alone() -> None:
    report = compute(HISTORY, "prod", WINDOW, app="api").as_dict()
    assert report["deployment_frequency"]["deployments"] == 2
    assert report["lead_time"]["commits"] == 1 and report["lead_time"]["median_seconds"] == 3660
    assert report["lead_time"]["skewed_commits"] == 1
    assert report["change_failure_rate"]["rate"] == 0
    assert report["change_failure_rate"]["level"] == "elite"
    assert report["time_to_restore"]["incidents"] == 0
    assert report["time_to_restore"]["median_seconds"] is None
    assert report["time_to_restore"]["met"] is None  # nothing to restore: no verdict


def test_no_history_gives_no_figures_rather_than_zeros() -> None:
    report = compute([], "prod", WINDOW).as_dict()
    assert report["deployment_frequency"]["deployments"] == 0
    assert report["deployment_frequency"]["bucket"] == "Yearly"
    assert report["lead_time"]["median_seconds"] is None and report["lead_time"]["level"] is None
    assert report["change_failure_rate"]["rate"] is None
    assert report["traceability"]["share"] is None and report["traceability"]["met"] is None
    assert report["drift"]["incidents"] == 0 and report["drift"]["met"] is True


def test_a_rollback_within_the_window_fails_the_deployment_it_undoes() -> None:
    history = [
        op(1, "sync", "Succeeded", "06-02 09:00", "06-02 09:01", changes=CHANGED),
        op(2, "sync", "Succeeded", "06-02 09:10", "06-02 09:11", changes=UNCHANGED),
        op(3, "rollback", "Succeeded", "06-02 09:55", "06-02 09:57", changes=CHANGED),
    ]
    report = compute(history, "prod", WINDOW).as_dict()
    assert report["change_failure_rate"]["failures"][0]["cause"] == "rolled back by operation 3"
    # restored by the rollback, not by the no-op sync in between: 09:01 -> 09:57
    assert report["time_to_restore"]["list"][0]["seconds"] == 56 * 60


def test_a_remedy_of_other_services_charges_nothing() -> None:
    other = (ServiceChange("db", "changed"),)
    history = [
        op(1, "sync", "Succeeded", "06-02 09:00", "06-02 09:01", changes=CHANGED),
        op(2, "rollback", "Succeeded", "06-02 09:20", "06-02 09:21", changes=other),
        op(3, "sync", "Succeeded", "06-02 09:30", "06-02 09:31", changes=other,
           commits=(c("f", "06-02 09:29", "fix(db): pool size"),)),
    ]  # fmt: skip
    assert compute(history, "prod", WINDOW).failed_deployments == 0


def test_the_failure_window_is_a_setting() -> None:
    history = [
        op(1, "sync", "Succeeded", "06-02 09:00", "06-02 09:01", changes=CHANGED),
        op(2, "sync", "Succeeded", "06-02 11:00", "06-02 11:01", changes=CHANGED,
           commits=(c("f", "06-02 10:59", 'Revert "feat: change"'),)),
    ]  # fmt: skip
    assert compute(history, "prod", WINDOW).failed_deployments == 0  # 1 h: 1h59m is late
    wide = DoraSettings(WINDOW.since, WINDOW.until, failure_window=timedelta(hours=2))
    assert compute(history, "prod", wide).failed_deployments == 1


def test_failures_in_a_row_are_one_incident_until_healthy() -> None:
    history = [
        op(1, "sync", "Failed", "06-02 09:00", "06-02 09:05", reason="TasksFailing"),
        op(2, "sync", "Failed", "06-02 09:10", "06-02 09:15", reason="SwarmRolledBack"),
        op(3, "sync", "Succeeded", "06-02 09:30", "06-02 09:31", changes=CHANGED),
    ]
    report = compute(history, "prod", WINDOW).as_dict()
    assert report["change_failure_rate"]["failed"] == 2
    assert [(i["failures"], i["seconds"]) for i in report["time_to_restore"]["list"]] == [
        ([1, 2], 26 * 60)
    ]


WEB = (ServiceChange("web", "changed", ("replicas",)),)
DB = (ServiceChange("db", "changed", ("image",)),)

# Drift as the agent records it: each drift record names the services drifted then; a
# DriftResolved record says Git and the swarm agree again. Hand-computed ends below.
DRIFT_HISTORY = [
    op(1, "sync", "Succeeded", "06-02 09:00", "06-02 09:01", changes=CHANGED),
    # A: web drifts at 10:00; a sync of db at 10:06 leaves web drifted (it is seen again
    # at 10:10); undone by hand, resolved at 10:20: 1200 s, ended by op 5
    op(2, "drift", "Succeeded", "06-02 10:00", reason="Drift", changes=WEB),
    op(3, "sync", "Succeeded", "06-02 10:05", "06-02 10:06", changes=DB),
    op(4, "drift", "Succeeded", "06-02 10:10", reason="Drift", changes=WEB),
    op(5, "drift", "Succeeded", "06-02 10:20", reason="DriftResolved"),
    # B: web and db drift at 09:00; a sync redeploys web (09:03), a no-op sync changes
    # nothing, a sync removes db at 09:41: none left, 2460 s, ended by op 9
    op(6, "drift", "Succeeded", "06-03 09:00", reason="Drift", changes=WEB + DB),
    op(7, "sync", "Succeeded", "06-03 09:02", "06-03 09:03", changes=CHANGED),
    op(8, "sync", "Succeeded", "06-03 09:30", "06-03 09:31", changes=UNCHANGED),
    op(9, "sync", "Succeeded", "06-03 09:40", "06-03 09:41",
       changes=(ServiceChange("db", "removed"),)),
    # C: a failed heal ends nothing; the heal that succeeds at 12:01:30 does: 90 s
    op(10, "drift", "Succeeded", "06-04 12:00", reason="Drift", changes=WEB),
    op(11, "heal", "Failed", "06-04 12:00:10", "06-04 12:00:40", reason="HealthTimeout"),
    op(12, "heal", "Succeeded", "06-04 12:01", "06-04 12:01:30", changes=WEB),
    # D: resolved after 30 s: not an incident; a second DriftResolved ends nothing
    op(13, "drift", "Succeeded", "06-05 08:00", reason="Drift", changes=WEB),
    op(14, "drift", "Succeeded", "06-05 08:00:30", reason="DriftResolved"),
    op(15, "drift", "Succeeded", "06-05 09:00", reason="DriftResolved"),
    # E: a drift record naming no services (written before they were recorded) ends at
    # the next healthy state, even a no-op sync: 10:00 -> 10:05, 300 s
    op(16, "drift", "Succeeded", "06-06 10:00", reason="Drift"),
    op(17, "sync", "Succeeded", "06-06 10:04", "06-06 10:05", changes=UNCHANGED),
]  # fmt: skip


def test_a_drift_ends_exactly_when_the_store_says_it_was_undone() -> None:
    drift = compute(DRIFT_HISTORY, "prod", WINDOW).as_dict()["drift"]
    assert (drift["episodes"], drift["incidents"], drift["open"]) == (5, 4, 0)
    assert [(d["operation_id"], d["seconds"], d["ended_by"]) for d in drift["list"]] == [
        (2, 1200, 5),
        (6, 2460, 9),
        (10, 90, 12),
        (16, 300, 17),
    ]
    assert drift["longest_seconds"] == 2460


def test_a_drift_of_services_no_deploy_touched_stays_open() -> None:
    history = [
        op(1, "drift", "Succeeded", "06-14 10:00", reason="Drift", changes=WEB),
        op(2, "sync", "Succeeded", "06-14 11:00", "06-14 11:01", changes=DB),
        op(3, "rollback", "Succeeded", "06-14 12:00", "06-14 12:01", changes=DB),
    ]
    drift = compute(history, "prod", WINDOW).as_dict()["drift"]
    assert (drift["episodes"], drift["open"]) == (1, 1)
    assert drift["list"] == [
        {"app": "web", "started": "2025-06-14T10:00:00+00:00", "ended": None,
         "seconds": 14 * 3600, "operation_id": 1, "ended_by": None},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        # ISO weeks of 2 June to 29 June 2025 (four weeks, window 2 June .. 29 June)
        ([2, 3, 4, 9, 10, 11, 16, 17, 18], "Daily"),  # 3, 3, 3, 0: median 3
        ([2, 3, 9, 16, 23], "Weekly"),  # every week has one
        ([2, 9], "Monthly"),  # weeks 1, 1, 0, 0 all in June (2 deploy weeks): median 2
        ([], "Yearly"),
    ],
)
def test_the_four_keys_bucket(days: list[int], bucket: str) -> None:
    since, until = t("06-02 00:00"), t("06-29 12:00")
    assert frequency_bucket([date(2025, 6, d) for d in days], since, until) == bucket


def test_yearly_when_the_median_week_is_in_a_month_without_deployments() -> None:
    # 9 weeks from 5 May 2025 (4 in May, 5 in June, by week start): one deploy in May
    since, until = t("05-05 00:00"), t("07-06 00:00")
    assert frequency_bucket([date(2025, 5, 6)], since, until) == "Yearly"


def test_percentiles_interpolate_like_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 0.9) == pytest.approx(46.0)


@pytest.mark.parametrize(
    ("fn", "value", "level"),
    [
        (levels.frequency_level, 3.0, "elite"),
        (levels.frequency_level, 1.0, "elite"),
        (levels.frequency_level, 0.5, "high"),
        (levels.frequency_level, 1 / 7, "high"),
        (levels.frequency_level, 1 / 10, "medium"),
        (levels.frequency_level, 1 / 60, "low"),
        (levels.lead_time_level, 3600, "elite"),
        (levels.lead_time_level, 86400, "high"),
        (levels.lead_time_level, 8 * 86400, "medium"),
        (levels.lead_time_level, 40 * 86400, "low"),
        (levels.restore_level, 3599, "elite"),
        (levels.restore_level, 3600, "high"),
        (levels.restore_level, 2 * 86400, "medium"),
        (levels.restore_level, 8 * 86400, "low"),
        (levels.failure_rate_level, 0.15, "elite"),
        (levels.failure_rate_level, 0.2, "high"),
        (levels.failure_rate_level, 0.4, "medium"),
        (levels.failure_rate_level, 0.5, "low"),
    ],
)
def test_levels(fn: object, value: float, level: str) -> None:
    assert fn(value) == level  # type: ignore[operator]


def test_a_window_must_be_aware_and_not_empty() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        DoraSettings(datetime(2025, 6, 1), t("06-02 00:00"))
    with pytest.raises(ValueError, match="the window is empty"):
        DoraSettings(t("06-02 00:00"), t("06-01 00:00"))
