"""What the dashboard's templates show, computed from what the agent's port and the store
give: the overview grid, one application's page, an operation. No I/O here: routes.py
fetches, these functions shape, the templates print.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gitswarm.api.access import permits
from gitswarm.api.auth import Caller
from gitswarm.model.operation import DEPLOY_KINDS, Operation, Promotion

# Environments in promotion order when their names say it; others after, by name.
_ORDER = {
    "dev": 0,
    "development": 0,
    "test": 1,
    "qa": 1,
    "stage": 2,
    "staging": 2,
    "preprod": 3,
    "prod": 4,
    "production": 4,
}
HOLD_REASONS = frozenset({"DeploymentWindowClosed", "HealLoop"})
HEALTH_FILTERS = ("Healthy", "Progressing", "Degraded", "Missing", "Unknown")


def env_order(envs: Iterable[str]) -> list[str]:
    return sorted(set(envs), key=lambda e: (_ORDER.get(e.lower(), 9), e))


def short(sha: Any) -> str:
    return str(sha)[:7] if sha else "—"


def age(moment: Any, now: datetime | None = None) -> str:
    """'12 s', '3 min', '5 h', '2 d' since ``moment`` (a datetime or ISO text)."""
    if not moment:
        return ""
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    if seconds < 60:
        return "just now" if seconds < 10 else "under a minute"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def duration(op: Mapping[str, Any]) -> str:
    start, end = op.get("started_at"), op.get("finished_at")
    if not start or not end:
        return ""
    seconds = (
        datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))
    ).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def op_dict(op: Operation) -> dict[str, Any]:
    """The few fields of a store operation the grid shows."""
    return {
        "id": op.id,
        "kind": op.kind,
        "result": op.result,
        "reason": op.reason,
        "revision": op.revision,
        "actor": op.actor,
        "trigger": op.trigger,
        "started_at": op.started_at.isoformat(),
        "finished_at": op.finished_at.isoformat() if op.finished_at else None,
    }


@dataclass(frozen=True)
class Cell:
    """One application in one environment, as the grid and the page header show it."""

    app: str
    env: str
    sync: str = "Unknown"
    health: str = "Unknown"
    head: str | None = None
    deployed: str | None = None
    reason: str | None = None
    message: str = ""
    drift: Mapping[str, Any] = field(default_factory=dict)
    last: Mapping[str, Any] | None = None
    pending_promotions: int = 0
    known: bool = True  # False: no status recorded yet

    @property
    def id(self) -> str:
        return f"{self.app}--{self.env}"

    @property
    def behind(self) -> bool:
        return bool(self.head and self.deployed and self.head != self.deployed)

    @property
    def running(self) -> bool:
        return bool(self.last and self.last.get("result") == "Running")

    @property
    def hold(self) -> str | None:
        if self.reason in HOLD_REASONS:
            return (
                "waiting for the deployment window"
                if self.reason == "DeploymentWindowClosed"
                else "self-heal paused"
            )
        if self.last and self.last.get("result") == "RolledBack":
            return "rolled back: the bad revision is held"
        if (
            self.last
            and self.last.get("kind") == "rollback"
            and self.last.get("result") == "Succeeded"
        ):
            return "rolled back: the bad revision is held"
        return None


def cell_of(
    status: Mapping[str, Any] | None,
    app: str,
    env: str,
    last: Operation | None,
    pending: int = 0,
) -> Cell:
    if status is None:
        return Cell(
            app, env, last=op_dict(last) if last else None, pending_promotions=pending, known=False
        )
    return Cell(
        app=app,
        env=env,
        sync=str(status.get("sync") or "Unknown"),
        health=str(status.get("health") or "Unknown"),
        head=status.get("head"),
        deployed=status.get("deployed"),
        reason=status.get("reason"),
        message=str(status.get("message") or ""),
        drift=dict(status.get("drift") or {}),
        last=op_dict(last) if last else None,
        pending_promotions=pending,
    )


@dataclass(frozen=True)
class Grid:
    apps: list[str]
    envs: list[str]
    cells: dict[tuple[str, str], Cell]
    all_envs: list[str]
    env_filter: str | None = None
    health_filter: str | None = None

    def cell(self, app: str, env: str) -> Cell | None:
        return self.cells.get((app, env))

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cell in self.cells.values():
            out[cell.health] = out.get(cell.health, 0) + 1
        return out


def grid(
    caller: Caller,
    statuses: Sequence[Mapping[str, Any]],
    latest: Mapping[tuple[str, str], Operation],
    promotions: Sequence[Promotion] = (),
    *,
    env_filter: str | None = None,
    health_filter: str | None = None,
) -> Grid:
    by_pair = {(str(s.get("app")), str(s.get("env"))): s for s in statuses}
    pairs = set(by_pair) | set(latest)
    pending: dict[tuple[str, str], int] = {}
    for p in promotions:
        pending[(p.app, p.to_env)] = pending.get((p.app, p.to_env), 0) + 1
    visible = [(a, e) for a, e in pairs if permits(caller, "view", e)]
    all_envs = env_order(e for _, e in visible)
    envs = [e for e in all_envs if env_filter in (None, "", e)]
    cells = {}
    for app, env in visible:
        if env not in envs:
            continue
        c = cell_of(
            by_pair.get((app, env)), app, env, latest.get((app, env)), pending.get((app, env), 0)
        )
        if health_filter and c.health != health_filter:
            continue
        cells[(app, env)] = c
    apps = sorted({a for a, _ in cells})
    return Grid(apps, envs, cells, all_envs, env_filter or None, health_filter or None)


def diff_rows(plan: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A plan's services that change, each field as path, Git's value, the swarm's."""
    if not plan:
        return []
    rows = []
    for change in plan.get("services", []):
        if change.get("action") in ("unchanged", "noop", None) and not change.get("drift"):
            continue
        rows.append(
            {
                "service": change.get("service"),
                "action": change.get("action"),
                "note": change.get("note", ""),
                "fields": [
                    {
                        "path": f.get("path"),
                        "before": _text(f.get("before")),
                        "after": _text(f.get("after")),
                    }
                    for f in change.get("fields", [])
                ],
                "drift": [
                    {
                        "path": f.get("field") or f.get("path"),
                        "before": _text(f.get("before")),
                        "after": _text(f.get("after")),
                    }
                    for f in change.get("drift", [])
                ],
            }
        )
    return rows


def drift_rows(drift: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The store's drift of an app × env (service -> change dict) as rows."""
    rows = []
    for service, change in sorted(drift.items()):
        fields = change.get("drift", []) if isinstance(change, Mapping) else []
        rows.append(
            {
                "service": service,
                "note": change.get("note", "") if isinstance(change, Mapping) else "",
                "fields": [
                    {
                        "path": f.get("field") or f.get("path"),
                        "before": _text(f.get("before")),
                        "after": _text(f.get("after")),
                    }
                    for f in fields
                ],
            }
        )
    return rows


def rollback_choices(
    history: Sequence[Mapping[str, Any]], deployed: str | None
) -> list[dict[str, Any]]:
    """Revisions that ran healthy here (newest first, each once), the deployed one left out."""
    seen: set[str] = set()
    out = []
    for op in history:
        revision = op.get("revision")
        if (
            not revision
            or revision in seen
            or op.get("kind") not in DEPLOY_KINDS
            or op.get("result") != "Succeeded"
            or op.get("dry_run")
        ):
            continue
        seen.add(str(revision))
        if revision == deployed:
            continue
        out.append(
            {
                "revision": revision,
                "author": op.get("author"),
                "at": op.get("finished_at") or op.get("started_at"),
                "id": op.get("id"),
            }
        )
    return out


def _text(value: Any, limit: int = 200) -> str:
    text = "(unset)" if value is None else (value if isinstance(value, str) else repr(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"
