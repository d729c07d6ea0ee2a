"""An in-memory AgentPort for the HTTP side's tests: canned state, recorded triggers.

Thread-safe like the real agent (uvicorn serves from its own thread and a pool). Set
``fail[method] = error`` to make a method raise; ``ready``/``checks`` drive /readyz.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from gitswarm.api.port import AgentPort, Readiness, TriggerRequest
from gitswarm.errors import NotFoundError

APPS = ("web", "worker")
ENVS = ("development", "staging", "production")


def _status(app: str, env: str) -> dict[str, Any]:
    return {
        "app": app,
        "env": env,
        "stack": f"{app}-{env}",
        "head": "a" * 40,
        "deployed": "a" * 40,
        "sync": "Synced",
        "health": "Healthy",
        "last_result": "Succeeded",
        "reason": None,
        "message": "",
        "services": [],
        "drift": [],
        "orphans": [],
        "plan": None,
        "error": None,
    }


class FakeAgent:
    def __init__(self, followed: str = "refs/heads/main") -> None:
        self.followed = followed
        self.ready = True
        self.checks: dict[str, Any] = {"store": {"ok": True, "detail": "reachable"}}
        self.fail: dict[str, BaseException] = {}
        self.triggers: list[TriggerRequest] = []
        self.dora_calls: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self.operations = {
            n: {"id": n, "kind": "sync", "app": app, "env": env, "result": "Succeeded"}
            for n, (app, env) in enumerate(((a, e) for e in ENVS for a in APPS), start=1)
        }

    def _maybe_fail(self, method: str) -> None:
        error = self.fail.get(method)
        if error is not None:
            raise error

    def statuses(self) -> list[dict[str, Any]]:
        self._maybe_fail("statuses")
        return [_status(a, e) for e in ENVS for a in APPS]

    def status(self, app: str, env: str) -> dict[str, Any]:
        self._maybe_fail("status")
        if app not in APPS or env not in ENVS:
            raise NotFoundError(f"no application {app!r} in environment {env!r}")
        return _status(app, env)

    def history(self, app: str | None, env: str | None, limit: int) -> Sequence[dict[str, Any]]:
        self._maybe_fail("history")
        ops = [
            op
            for op in reversed(self.operations.values())
            if app in (None, op["app"]) and env in (None, op["env"])
        ]
        return ops[:limit]

    def operation(self, op_id: int) -> dict[str, Any]:
        self._maybe_fail("operation")
        if op_id not in self.operations:
            raise NotFoundError(f"no operation {op_id}")
        return self.operations[op_id]

    def dora(
        self,
        env: str,
        app: str | None,
        since: datetime,
        until: datetime,
        failure_window: timedelta,
        drift_threshold: timedelta,
    ) -> dict[str, Any]:
        self._maybe_fail("dora")
        if env not in ENVS:
            raise NotFoundError(f"no environment {env!r}")
        self.dora_calls.append((env, app, since, until, failure_window, drift_threshold))
        return {"env": env, "app": app, "since": since.isoformat(), "until": until.isoformat()}

    def diff(self, app: str, env: str) -> dict[str, Any]:
        self._maybe_fail("diff")
        self.status(app, env)
        return {"app": app, "env": env, "services": [], "in_sync": True}

    def tasks(self, app: str, env: str) -> list[dict[str, Any]]:
        self._maybe_fail("tasks")
        self.status(app, env)
        return [
            {
                "service": "web",
                "id": "t1",
                "slot": 1,
                "node": "n1",
                "state": "running",
                "desired": "running",
                "error": "",
                "message": "started",
                "image": "img:1",
                "current": True,
                "created_at": None,
                "updated_at": None,
            }
        ]

    def trigger(self, request: TriggerRequest) -> dict[str, Any]:
        self._maybe_fail("trigger")
        with self._lock:
            self.triggers.append(request)
            count = len(self.triggers)
        return {"app": request.app, "env": request.env, "pending": count}

    def readiness(self) -> Readiness:
        self._maybe_fail("readiness")
        return Readiness(self.ready, dict(self.checks))

    def followed_ref(self) -> str:
        return self.followed


def _conforms(agent: FakeAgent) -> AgentPort:
    return agent  # mypy/pyright: FakeAgent implements the port


def client_for(app: Any, **kwargs: Any) -> Any:
    """Starlette's TestClient for ``app``.

    Starlette 1.10 warns on import that it would rather drive the app with httpx2 than
    httpx (the client the lock pins). That warning is about our dependency set, not
    about the code under test, so it alone is ignored, here, once.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Using `httpx` with `starlette.testclient` is deprecated",
            category=UserWarning,  # StarletteDeprecationWarning
        )
        from starlette.testclient import TestClient

    return TestClient(app, **kwargs)
