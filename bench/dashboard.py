"""Dashboard pages at 100 applications × 3 environments (issue 15). Target: each page
renders in < 100 ms.

A real SQLite state store holds what a busy agent leaves: 300 statuses (a tenth out of
sync, some drifted), 20 operations per application × environment (6,000), ten pending
promotions, the signed-in user and its session. The agent's port reads that store as
the agent does (statuses, history, operations, DORA); its live parts (a fresh plan, the
services and their tasks) are canned, five services and ten tasks per stack, because
they are the swarm's time, measured by the drift and no-op benchmarks, not the
dashboard's. The application is served by uvicorn in a thread exactly as `gitswarm
serve` serves it, and each page is fetched over HTTP with the session cookie: the median
and worst of ``runs`` requests per page, after one warm-up.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher

from bench.report import Section, Target, fmt, median
from gitswarm.api import ApiSettings, create_app, serve_in_thread
from gitswarm.api.passwords import Passwords
from gitswarm.api.port import Readiness, TriggerRequest
from gitswarm.api.sessions import COOKIE, digest
from gitswarm.errors import Reason
from gitswarm.model.account import RoleBinding
from gitswarm.store import Store

ENVS = ("development", "staging", "production")
PAGES = (
    ("overview", "/ui/"),
    ("overview, filtered", "/ui/?env=production&health=Healthy"),
    ("application", "/ui/apps/app042/envs/production"),
    ("sync dry run", "/ui/apps/app042/envs/production/sync"),
    ("operation", "/ui/operations/{op}"),
    ("promotions", "/ui/promotions"),
    ("DORA", "/ui/dora?env=production"),
)


class StorePort:
    """The agent's read side over the store, live parts canned (see the docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def statuses(self) -> list[dict[str, Any]]:
        return [
            {
                "app": s.app,
                "env": s.env,
                "sync": s.sync,
                "health": s.health,
                "head": s.revision,
                "deployed": s.revision,
                "last_result": s.last_result,
                "reason": s.reason,
                "message": s.message,
                "drift": dict(s.drift),
                "updated_at": s.updated_at.isoformat(),
                "source": {"ok": True},
            }
            for s in self.store.all_statuses()
        ]

    def status(self, app: str, env: str) -> dict[str, Any]:
        services = [
            {
                "service": f"svc{i}",
                "state": "Converged",
                "running": 2,
                "desired": 2,
                "message": "",
                "image": f"127.0.0.1:5000/busybox:{i}",
            }
            for i in range(5)
        ]
        return {
            "app": app,
            "env": env,
            "stack": f"{app}-{env}",
            "services": services,
            "plan": self.diff(app, env),
            "error": None,
        }

    def diff(self, app: str, env: str) -> dict[str, Any]:
        return {
            "services": [
                {
                    "service": "svc0",
                    "action": "update",
                    "note": "",
                    "fields": [
                        {
                            "path": "TaskTemplate.ContainerSpec.Image",
                            "before": "busybox:1",
                            "after": "busybox:2",
                        }
                    ],
                    "drift": [],
                }
            ]
        }

    def tasks(self, app: str, env: str) -> list[dict[str, Any]]:
        now = datetime.now(UTC).isoformat()
        return [
            {
                "service": f"svc{i // 2}",
                "id": f"t{i}",
                "slot": i % 2 + 1,
                "node": "node1",
                "state": "running",
                "desired": "running",
                "error": "",
                "message": "started",
                "image": "busybox:1",
                "current": True,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(10)
        ]

    def history(self, app: str | None, env: str | None, limit: int) -> Sequence[dict[str, Any]]:
        return [self._op(o) for o in self.store.history(app=app, env=env, limit=limit)]

    def operation(self, op_id: int) -> dict[str, Any]:
        return self._op(self.store.get_operation(op_id))

    def _op(self, o: Any) -> dict[str, Any]:
        return {
            "id": o.id,
            "kind": o.kind,
            "app": o.app,
            "env": o.env,
            "revision": o.revision,
            "previous_revision": o.previous_revision,
            "result": o.result,
            "reason": o.reason,
            "message": o.message,
            "trigger": o.trigger,
            "actor": o.actor,
            "author": o.author,
            "started_at": o.started_at.isoformat(),
            "finished_at": o.finished_at.isoformat() if o.finished_at else None,
            "dry_run": o.dry_run,
            "changes": [],
        }

    def dora(
        self,
        env: str,
        app: str | None,
        since: datetime,
        until: datetime,
        failure_window: timedelta,
        drift_threshold: timedelta,
    ) -> dict[str, Any]:
        report = self.store.dora(
            env,
            app,
            since=since,
            until=until,
            failure_window=failure_window,
            drift_threshold=drift_threshold,
        )
        return report.as_dict()

    def trigger(self, request: TriggerRequest) -> dict[str, Any]:
        return {"app": request.app, "env": request.env, "pending": 1}

    def readiness(self) -> Readiness:
        return Readiness(True, {})

    def followed_ref(self) -> str:
        return "refs/heads/main"


def populate(store: Store, apps: int, ops_each: int) -> int:
    """Statuses, operations and promotions; the id of one finished operation."""
    last = 0
    for a in range(apps):
        app = f"app{a:03d}"
        for env in ENVS:
            for n in range(ops_each):
                op = store.start_operation(
                    "sync",
                    app,
                    env,
                    holder="bench",
                    trigger="poll",
                    revision=f"{a:03d}{n:037x}",
                    author="Dev <d@x>",
                )
                store.finish_operation(
                    op, "Succeeded" if n % 7 else "Failed", None if n % 7 else Reason.HEALTH_TIMEOUT
                )
                last = op
            drifted = a % 17 == 0
            store.set_status(
                app,
                env,
                sync="OutOfSync" if a % 10 == 0 else "Synced",
                health="Degraded" if a % 23 == 0 else "Healthy",
                revision=f"{a:03d}{ops_each - 1:037x}",
                last_result="Succeeded",
                drift={"svc0": {"drift": [{"field": "replicas", "before": 2, "after": 3}]}}
                if drifted
                else {},
            )
    for a in range(10):
        store.create_promotion(
            f"app{a:03d}", "staging", "production", images={"svc0": "2.0"}, requested_by="dev"
        )
    return last


def run(apps: int = 100, ops_each: int = 20, runs: int = 15) -> Section:
    started = time.monotonic()
    section = Section(
        title=f"Dashboard pages at {apps} applications × {len(ENVS)} environments",
        what="Each page fetched over HTTP from uvicorn with a signed-in session; a real "
        f"SQLite store with {apps * len(ENVS)} statuses and {apps * len(ENVS) * ops_each:,} "
        "operations; median and worst of the runs after a warm-up.",
        header=("page", "median", "worst", "size"),
    )
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="gitswarm-bench-ui-") as tmp:
        store = Store(str(Path(tmp) / "state.db"))
        last = populate(store, apps, ops_each)
        cheap = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        store.add_user("bench", cheap.hash("bench-password"), (RoleBinding("admin"),))
        cookie = "bench-session-cookie-value"
        store.create_session(digest(cookie), "bench", "csrf-token-x", timedelta(hours=1))
        app = create_app(
            StorePort(store),
            ApiSettings(audit=store.audit, accounts=store),
            records=store,
        )
        handle = serve_in_thread(app, "127.0.0.1", 0)
        try:
            with httpx.Client(base_url=handle.url, cookies={COOKIE: cookie}) as client:
                for name, path in PAGES:
                    url = path.format(op=last)
                    first = client.get(url)
                    if first.status_code != 200:
                        raise RuntimeError(f"{url}: {first.status_code} {first.text[:200]}")
                    times = []
                    for _ in range(runs):
                        began = time.perf_counter()
                        r = client.get(url)
                        times.append(time.perf_counter() - began)
                        r.raise_for_status()
                    results[name] = {
                        "median": median(times),
                        "worst": max(times),
                        "bytes": float(len(first.content)),
                    }
        finally:
            handle.stop()
            store.close()
    for name, got in results.items():
        section.rows.append(
            (name, fmt(got["median"]), fmt(got["worst"]), f"{got['bytes'] / 1024:.0f} KiB")
        )
        section.targets.append(
            Target(
                f"dashboard: {name} at {apps} apps × 3 envs",
                "< 100 ms",
                fmt(got["median"]),
                got["median"] < 0.1,
            )
        )
    section.data = results
    section.seconds = time.monotonic() - started
    return section
