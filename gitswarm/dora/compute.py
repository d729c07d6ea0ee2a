"""DORA metrics of one environment from gitswarm's own history: a pure function of the
recorded operations (no I/O). store/dora.py reads the records and calls ``compute``; the
CLI (`gitswarm dora`) and the API (`GET /api/v1/dora`) show its ``DoraReport``.

The definitions, exactly (docs/dora.md says the same in prose):

- A *deployment* is a ``sync`` or ``rollback`` operation (not a dry run, not a heal) that
  either Succeeded and changed something (a service created, changed or removed), or
  ended Failed/RolledBack after it reached the swarm (reason HealthTimeout,
  SwarmRolledBack, TasksFailing or UpdatePaused). Its time is when it finished.
- *Deployment frequency*: successful deployments in the window, per day and per week,
  and the Four Keys bucket over the ISO weeks the window touches: daily if the median
  week has deployments on >= 3 days, weekly if the median week has one, monthly if the
  median week lies in a month with a deployment week, else yearly.
- *Lead time for changes*: for every commit a successful deployment brought
  (``git log previous..revision``, recorded when the sync finished), the time from its
  commit time to that deployment finishing (healthy in the environment); a commit counts
  once, at its first deployment. Median and 90th percentile (linear interpolation, like
  SQL's PERCENTILE_CONT).
- *Change failure rate*: failed deployments / deployments. A deployment failed if it
  ended Failed/RolledBack (above), or if within ``failure_window`` after it finished the
  same app × env saw a rollback, or a fix-forward, of services it changed: a rollback is
  any later ``rollback`` deployment; a fix-forward is a later successful sync bringing a
  commit whose subject marks a fix (``fix:``, ``fix(scope):``, ``hotfix``, ``revert:``, or
  git's ``Revert "..."``). The remedy is charged to the newest earlier non-rollback
  deployment that touched one of its services (a failed deployment's services are not
  recorded: it touches them all), and only if that one had not failed already.
- *Time to restore*: an incident begins when a failed deployment ends (a deployment
  found bad later: when it finished) and the app × env was not already in one; it ends
  at the next healthy state: the next sync, rollback or heal of the same app × env that
  Succeeded (for a deployment found bad later: its remedy or after). Median (the level)
  and mean (the seed's "mean time to recovery").
- *Drift incidents*: a drift record opens a drift of its app × env (further drift
  records belong to it); each names the services drifted at that moment. It ends at
  the first of: the drift record saying Git and the swarm agree again (reason
  DriftResolved: undone by hand or otherwise), a successful heal (it redeploys every
  drifted service), or the successful sync or rollback after which no drifted service
  is left (each one redeploys or removes the services it changed). A drift record that
  names no services (written before gitswarm recorded them) ends at the next
  successful sync, rollback or heal. Those lasting longer than ``drift_threshold``
  count; one still open lasts until ``until``.
- *Traceability*: of the swarm changes gitswarm made (successful deployments and heals
  that changed something, failed deployments), the share recorded with a commit
  (revision and commit time), an operation (by construction) and an actor (the user, or
  the agent process that ran it).

Everything is counted in ``[since, until]`` by when it happened (a deployment: finished;
an incident: began); records before ``since`` serve as context only: an incident or a
drift already open when the window starts began before it (failures and drift records
inside it continue it), and a deployment that began before ``since`` counts when it
finished inside. What began after ``until`` is not known to the report (as the store
reads it): a rollback after ``until`` does not fail a deployment inside the window, so
a past window's report is what it said at ``until``.

The computation reads plain tuples (``Row``), one per operation, holding only what a
figure needs: the store's read (store/dora.py, store/quick.py) builds some 10,000 of
them from SQL rows at once, so no record object is made per row; ``compute`` takes
``Operation`` records and turns each into the same tuple (``row_of``), so a synthetic
history of records and the store's read meet in one function, ``compute_rows``.

Why one file (over 450 lines): the four figures share the deployment and incident
definitions above; apart, a definition would drift from where it is used.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from gitswarm.dora import levels
from gitswarm.dora.levels import Level
from gitswarm.errors import Reason

if TYPE_CHECKING:  # `gitswarm dora` reads rows: it need not define the records
    from gitswarm.model.operation import Operation

# What the computation reads of one operation (of one environment, not a dry run, not
# running), by position:
#   id, kind, app, result, reason, started_at, finished_at (None: never finished),
#   revision, traceable (recorded with a revision, a commit time and an actor or the
#   process that ran it), services (created, changed or removed; a drift record: those
#   drifted), commits brought ((sha, committed_at, subject), a deployment's)
Commit = tuple[str, datetime, str]
Row = tuple[
    int, str, str, str, "str | None", datetime, "datetime | None", "str | None", bool,
    frozenset[str], tuple[Commit, ...],
]  # fmt: skip
# (Final: mypy types each position of a Row indexed by these)
ID: Final = 0
KIND: Final = 1
APP: Final = 2
RESULT: Final = 3
REASON: Final = 4
STARTED: Final = 5
FINISHED: Final = 6
REVISION: Final = 7
TRACEABLE: Final = 8
SERVICES: Final = 9
COMMITS: Final = 10

DEPLOYMENT_KINDS = frozenset({"sync", "rollback"})
HEALTHY_KINDS = frozenset({"sync", "rollback", "heal"})
# Failed after reaching the swarm (the reasons whose verdict is deploy-failure).
DEPLOY_FAILURE_REASONS = frozenset(r.value for r in Reason.with_verdict("deploy-failure"))
# The reason of the drift record written when the drift check finds Git and the swarm
# agreeing again (undone by hand, or by a deploy): the drift's exact end.
DRIFT_RESOLVED = Reason.DRIFT_RESOLVED.value
FIX_MARKER = re.compile(r'^(?:(?:fix|hotfix|revert)(?:\([^)]*\))?!?:|hotfix\b|revert ")', re.I)
FAILURE_WINDOW = timedelta(hours=1)
DRIFT_THRESHOLD = timedelta(seconds=60)
LIST_LIMIT = 50  # ids listed per figure (failures, untraceable changes): the counts are exact


@dataclass(frozen=True)
class DoraSettings:
    since: datetime
    until: datetime
    failure_window: timedelta = FAILURE_WINDOW
    drift_threshold: timedelta = DRIFT_THRESHOLD

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{name} {value.isoformat()} has no time zone")
        if self.until <= self.since:
            raise ValueError(f"the window is empty: {self.since} is not before {self.until}")
        if self.failure_window < timedelta(0) or self.drift_threshold < timedelta(0):
            raise ValueError("the failure window and the drift threshold cannot be negative")

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p`` quantile (0..1) with linear interpolation between closest ranks, as SQL's
    PERCENTILE_CONT; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = p * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _traceable(op: Operation) -> bool:
    return bool(op.revision and op.commit_time is not None and (op.actor or op.holder))


def row_of(op: Operation) -> Row:
    """The computation's tuple of a record."""
    return (
        op.id, op.kind, op.app, op.result, op.reason, op.started_at, op.finished_at,
        op.revision, _traceable(op),
        frozenset(c.service for c in op.changes if c.action != "unchanged"),
        tuple((c.sha, c.committed_at, c.subject) for c in op.commits),
    )  # fmt: skip


def _when(row: Row) -> datetime:
    return row[FINISHED] or row[STARTED]


@dataclass(slots=True)
class _Deployment:
    op: Row
    failed: bool
    cause: str  # why it counts as failed
    services: frozenset[str] | None  # None: unknown (a failed one): touches every service
    remedy: Row | None = None


def _hard_failure(row: Row) -> bool:
    """A deployment that ended Failed or RolledBack after it reached the swarm."""
    result = row[RESULT]
    return row[KIND] in DEPLOYMENT_KINDS and (
        result == "RolledBack" or (result == "Failed" and row[REASON] in DEPLOY_FAILURE_REASONS)
    )


def _deployment(row: Row) -> _Deployment | None:
    if row[KIND] not in DEPLOYMENT_KINDS:
        return None
    if row[RESULT] == "Succeeded":
        services = row[SERVICES]
        return _Deployment(row, False, "", services) if services else None
    if _hard_failure(row):
        return _Deployment(row, True, f"ended {row[RESULT]} ({row[REASON]})", None)
    return None


def _is_fix(row: Row) -> bool:
    return any(FIX_MARKER.match(subject) for _, _, subject in row[COMMITS])


def _touches(earlier: _Deployment, services: frozenset[str] | None) -> bool:
    if earlier.services is None or services is None:
        return True
    return bool(earlier.services & services)


def _charge_remedies(deployments: list[_Deployment], window: timedelta) -> None:
    """Mark the deployments a later rollback or fix-forward had to repair."""
    for i, remedy in enumerate(deployments):
        op = remedy.op
        if op[KIND] == "rollback":
            what = "rolled back"
        elif not remedy.failed and _is_fix(op):
            what = "fixed forward"
        else:
            continue
        for earlier in reversed(deployments[:i]):
            if earlier.op[KIND] == "rollback" or not _touches(earlier, remedy.services):
                continue
            if op[STARTED] - _when(earlier.op) > window:
                break
            if not earlier.failed:
                earlier.failed = True
                earlier.cause = f"{what} by operation {op[ID]}"
                earlier.remedy = op
            break


@dataclass(frozen=True)
class Incident:
    app: str
    started: datetime
    ended: datetime | None  # None: not restored yet
    failures: tuple[int, ...]  # the failed deployments' operation ids
    restored_by: int | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()


def _incidents(app: str, ops: Sequence[Row], failed: dict[int, _Deployment]) -> list[Incident]:
    out: list[Incident] = []
    start: datetime | None = None
    ids: list[int] = []
    not_before = 0  # the id a restoring operation must reach (a found-bad one's remedy)
    for op in ops:
        op_id = op[ID]
        bad = failed.get(op_id)
        healthy = op[KIND] in HEALTHY_KINDS and op[RESULT] == "Succeeded"
        if start is not None and healthy and op_id >= not_before:
            out.append(Incident(app, start, _when(op), tuple(ids), op_id))
            start, ids = None, []
        if bad is not None:
            if start is None:
                start, ids = _when(op), []
            ids.append(op_id)
            not_before = max(not_before, bad.remedy[ID] if bad.remedy is not None else op_id + 1)
    if start is not None:
        out.append(Incident(app, start, None, tuple(ids)))
    return out


@dataclass(frozen=True)
class DriftIncident:
    app: str
    started: datetime
    ended: datetime | None
    operation_id: int  # the first drift record
    ended_by: int | None = None  # the operation that ended it

    def seconds(self, until: datetime) -> float:
        return ((self.ended or until) - self.started).total_seconds()


def _drift_incidents(app: str, ops: Sequence[Row]) -> list[DriftIncident]:
    out: list[DriftIncident] = []
    open_at: tuple[datetime, int] | None = None  # (began, the first drift record)
    # The services still drifted; None: the record did not name them (written before
    # gitswarm recorded them), so any healthy state ends the drift, as then.
    drifted: frozenset[str] | None = None
    for op in ops:
        ended: datetime | None = None
        kind = op[KIND]
        if kind == "drift":
            if op[REASON] == DRIFT_RESOLVED:
                ended = op[STARTED]
            else:
                if open_at is None:
                    open_at = (op[STARTED], op[ID])
                drifted = op[SERVICES] or None  # each record names all that drifts now
        elif kind in HEALTHY_KINDS and op[RESULT] == "Succeeded":
            if drifted is not None and kind != "heal":  # a heal redeploys them all
                drifted -= op[SERVICES]  # redeployed from Git, or removed
            if drifted is None or not drifted or kind == "heal":
                ended = _when(op)
        if open_at is not None and ended is not None:
            out.append(DriftIncident(app, open_at[0], ended, open_at[1], op[ID]))
            open_at, drifted = None, None
    if open_at is not None:
        out.append(DriftIncident(app, open_at[0], None, open_at[1]))
    return out


def _met(value: float | None, ok: bool) -> bool | None:
    return None if value is None else ok


def frequency_bucket(deploy_days: Iterable[date], since: datetime, until: datetime) -> str:
    """Four Keys' deployment frequency bucket over the ISO weeks (Monday first) that the
    window touches: Daily, Weekly, Monthly or Yearly."""
    days = set(deploy_days)
    first = since.date() - timedelta(days=since.date().weekday())
    weeks: list[tuple[date, int]] = []  # (week start, days with a deployment)
    start = first
    while start <= until.date():
        weeks.append((start, sum(1 for d in range(7) if start + timedelta(days=d) in days)))
        start += timedelta(days=7)
    deployed = [1 if n else 0 for _, n in weeks]
    per_month: dict[tuple[int, int], int] = defaultdict(int)
    for (start, _), flag in zip(weeks, deployed, strict=True):
        per_month[(start.year, start.month)] += flag
    monthly = [per_month[(start.year, start.month)] for start, _ in weeks]
    if (percentile([float(n) for _, n in weeks], 0.5) or 0) >= 3:
        return "Daily"
    if (percentile([float(x) for x in deployed], 0.5) or 0) >= 1:
        return "Weekly"
    if (percentile([float(x) for x in monthly], 0.5) or 0) >= 1:
        return "Monthly"
    return "Yearly"


@dataclass(frozen=True)
class DoraReport:
    env: str
    app: str | None
    settings: DoraSettings
    deployments: int  # successful ones (found bad later or not): the frequency
    attempts: int  # every deployment: the failure rate's denominator
    failed_deployments: int
    deploy_days: int
    bucket: str
    lead_times: tuple[float, ...]  # seconds, one per commit
    skewed_commits: int  # commit time after its deployment: not counted
    failures: tuple[dict[str, Any], ...]
    incidents: tuple[Incident, ...]
    drift: tuple[DriftIncident, ...]
    swarm_changes: int
    untraceable: tuple[int, ...]
    daily: tuple[dict[str, Any], ...] = field(default=())

    # --- the figures --------------------------------------------------------------------

    @property
    def per_day(self) -> float:
        return self.deployments / self.settings.days

    @property
    def failure_rate(self) -> float | None:
        return self.failed_deployments / self.attempts if self.attempts else None

    @property
    def restore_times(self) -> list[float]:
        return [s for i in self.incidents if (s := i.seconds) is not None]

    @property
    def drift_incidents(self) -> list[DriftIncident]:
        limit = self.settings.drift_threshold.total_seconds()
        return [d for d in self.drift if d.seconds(self.settings.until) > limit]

    @property
    def traceability(self) -> float | None:
        if not self.swarm_changes:
            return None
        return (self.swarm_changes - len(self.untraceable)) / self.swarm_changes

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        median_lead = percentile(self.lead_times, 0.5)
        p90_lead = percentile(self.lead_times, 0.9)
        restores = self.restore_times
        median_restore = percentile(restores, 0.5)
        mean_restore = sum(restores) / len(restores) if restores else None
        rate = self.failure_rate
        drift = self.drift_incidents
        trace = self.traceability
        until = s.until

        def level(value: float | None, fn: Callable[[float], Level]) -> Level | None:
            return None if value is None else fn(value)

        return {
            "env": self.env,
            "app": self.app,
            "since": s.since.isoformat(),
            "until": s.until.isoformat(),
            "days": round(s.days, 3),
            "levels_source": levels.LEVELS_SOURCE,
            "definitions": "docs/dora.md",
            "deployment_frequency": {
                "deployments": self.deployments,
                "per_day": round(self.per_day, 4),
                "per_week": round(self.per_day * 7, 4),
                "deploy_days": self.deploy_days,
                "bucket": self.bucket,
                "target": "multiple deployments per day (>= 2 a day)",
                "met": self.per_day >= levels.TARGET_DEPLOYS_PER_DAY,
                "level": levels.frequency_level(self.per_day),
            },
            "lead_time": {
                "commits": len(self.lead_times),
                "median_seconds": median_lead,
                "p90_seconds": p90_lead,
                "skewed_commits": self.skewed_commits,
                "target": "< 4 h from commit to healthy (median)",
                "target_seconds": levels.TARGET_LEAD_TIME,
                "met": _met(median_lead, (median_lead or 0) < levels.TARGET_LEAD_TIME),
                "level": level(median_lead, levels.lead_time_level),
            },
            "change_failure_rate": {
                "deployments": self.attempts,
                "failed": self.failed_deployments,
                "rate": rate,
                "window_seconds": s.failure_window.total_seconds(),
                "target": "< 3 %",
                "target_rate": levels.TARGET_FAILURE_RATE,
                "met": _met(rate, (rate or 0) < levels.TARGET_FAILURE_RATE),
                "level": level(rate, levels.failure_rate_level),
                "failures": list(self.failures[:LIST_LIMIT]),
            },
            "time_to_restore": {
                "incidents": len(self.incidents),
                "restored": len(restores),
                "open": len(self.incidents) - len(restores),
                "median_seconds": median_restore,
                "mean_seconds": mean_restore,
                "target": "mean time to recovery < 15 min",
                "target_seconds": levels.TARGET_RESTORE,
                "met": _met(mean_restore, (mean_restore or 0) < levels.TARGET_RESTORE),
                "level": level(median_restore, levels.restore_level),
                "list": [
                    {
                        "app": i.app,
                        "started": i.started.isoformat(),
                        "restored": i.ended.isoformat() if i.ended else None,
                        "seconds": i.seconds,
                        "failures": list(i.failures),
                        "restored_by": i.restored_by,
                    }
                    for i in self.incidents[:LIST_LIMIT]
                ],
            },
            "drift": {
                "incidents": len(drift),
                "threshold_seconds": s.drift_threshold.total_seconds(),
                "episodes": len(self.drift),
                "open": sum(1 for d in self.drift if d.ended is None),
                "longest_seconds": max((d.seconds(until) for d in self.drift), default=None),
                "target": "0 incidents",
                "met": len(drift) <= levels.TARGET_DRIFT_INCIDENTS,
                "list": [
                    {
                        "app": d.app,
                        "started": d.started.isoformat(),
                        "ended": d.ended.isoformat() if d.ended else None,
                        "seconds": d.seconds(until),
                        "operation_id": d.operation_id,
                        "ended_by": d.ended_by,
                    }
                    for d in drift[:LIST_LIMIT]
                ],
            },
            "traceability": {
                "changes": self.swarm_changes,
                "traceable": self.swarm_changes - len(self.untraceable),
                "share": trace,
                "target": "100 %",
                "met": _met(trace, (trace or 0) >= levels.TARGET_TRACEABILITY),
                "untraceable": list(self.untraceable[:LIST_LIMIT]),
            },
            "daily": list(self.daily),
        }


def compute(
    operations: Iterable[Operation], env: str, settings: DoraSettings, app: str | None = None
) -> DoraReport:
    """The DORA figures of ``env`` (and ``app``, when given) from its operations (of any
    app; other environments' and apps' are ignored), in any order."""
    rows = [
        row_of(op)
        for op in operations
        if op.env == env and app in (None, op.app) and not op.dry_run and op.result != "Running"
    ]
    return compute_rows(rows, env, settings, app)


def compute_rows(
    rows: Iterable[Row], env: str, settings: DoraSettings, app: str | None = None
) -> DoraReport:
    """The DORA figures of ``env`` (``app``) from the rows of its operations (none of
    another environment or app, no dry run, none running), in any order."""
    since, until = settings.since, settings.until

    def inside(moment: datetime) -> bool:
        return since <= moment <= until

    by_app: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row[STARTED] <= until:  # what began after the window is not known to it
            by_app[row[APP]].append(row)

    successful = 0  # deployments that Succeeded (found bad later or not)
    failed: list[_Deployment] = []
    attempts = 0
    incidents: list[Incident] = []
    drift: list[DriftIncident] = []
    lead_times: list[float] = []
    skewed = 0
    seen_commits: set[str] = set()
    changes = 0
    untraceable: list[int] = []
    deploy_days: set[date] = set()
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for name in sorted(by_app):
        ops = sorted(by_app[name])  # by id
        deployments = [d for d in (_deployment(o) for o in ops) if d is not None]
        _charge_remedies(deployments, settings.failure_window)
        bad = {d.op[ID]: d for d in deployments if d.failed}
        incidents += [i for i in _incidents(name, ops, bad) if inside(i.started)]
        drift += [d for d in _drift_incidents(name, ops) if inside(d.started)]
        # (the loops below run for every row read: comparisons inline, no calls)
        for d in deployments:
            op = d.op
            when = op[FINISHED] or op[STARTED]
            now_in = since <= when <= until
            succeeded = op[RESULT] == "Succeeded"
            if succeeded:  # it went out healthy: its commits arrived
                # (Deployments recorded before schema 0004 have no commits: no lead time.)
                for sha, committed_at, _ in op[COMMITS]:
                    # A commit counts once, at its first deployment (before the window:
                    # there).
                    if sha in seen_commits:
                        continue
                    seen_commits.add(sha)
                    if now_in:
                        seconds = (when - committed_at).total_seconds()
                        if seconds < 0:
                            skewed += 1
                        else:
                            lead_times.append(seconds)
            if not now_in:
                continue
            attempts += 1
            day = when.date()
            if succeeded:
                successful += 1
                deploy_days.add(day)
                per_day[day][0] += 1
            if d.failed:
                failed.append(d)
                per_day[day][1] += 1
        for op in ops:
            if not since <= (op[FINISHED] or op[STARTED]) <= until:
                continue
            if op[ID] not in bad and not (
                op[KIND] in HEALTHY_KINDS and op[RESULT] == "Succeeded" and op[SERVICES]
            ):
                continue
            changes += 1
            if not op[TRACEABLE]:
                untraceable.append(op[ID])
    failures = tuple(
        {
            "operation_id": d.op[ID],
            "app": d.op[APP],
            "revision": d.op[REVISION],
            "finished_at": _when(d.op).isoformat(),
            "cause": d.cause,
        }
        for d in sorted(failed, key=lambda d: d.op[ID])
    )
    daily = tuple(
        {"date": day.isoformat(), "deployments": counts[0], "failed": counts[1]}
        for day, counts in sorted(per_day.items())
    )
    return DoraReport(
        env=env,
        app=app,
        settings=settings,
        deployments=successful,
        attempts=attempts,
        failed_deployments=len(failed),
        deploy_days=len(deploy_days),
        bucket=frequency_bucket(deploy_days, since, until),
        lead_times=tuple(lead_times),
        skewed_commits=skewed,
        failures=failures,
        incidents=tuple(sorted(incidents, key=lambda i: i.started)),
        drift=tuple(sorted(drift, key=lambda d: d.started)),
        swarm_changes=changes,
        untraceable=tuple(sorted(untraceable)),
        daily=daily,
    )
