"""A real agent for integration tests: served Git remote, real swarm, real HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gitswarm.api import create_app, serve_in_thread, settings_from_mapping
from gitswarm.api.server import ServerHandle
from gitswarm.notify import Notifier
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.apply import Clock
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from harness.gitserve import GitRemote, WorkingCopy
from tests.gitops import _dump
from tests.receiver import Receiver

WEBHOOK_SECRET = "test-webhook-secret"


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> float:
    """Seconds until ``predicate()`` is truthy; AssertionError after ``timeout``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout}s: {predicate}")
        time.sleep(interval)


@dataclass
class AgentRig:
    remote: GitRemote
    tmp: Path
    stack: str
    env: str = "dev"
    sync: dict[str, Any] = field(
        default_factory=lambda: {"prune": True, "self_heal": True, "auto_rollback": True,
                                 "health_timeout": 40}
    )  # fmt: skip
    env_extra: dict[str, Any] = field(default_factory=dict)
    wc: WorkingCopy | None = None
    receiver: Receiver | None = None
    agent: Agent | None = None
    handle: ServerHandle | None = None
    store: Store | None = None
    # Fault tests: the remote's URL as the agent sees it (a proxy), a slow notification
    # target, the store's own clock, and where the store lives.
    url: str | None = None
    receiver_delay: float = 0.0
    store_clock: Callable[[], dt.datetime] | None = None
    state: Path | str | None = None  # a SQLite file, or a PostgreSQL URL
    busy_timeout: float | None = None  # the SQLite store's (30 s unless a test shortens it)
    # Two agents in one process (a leader and a standby): each its own holder id (and
    # the sync lease `gitswarm serve` gives, 2 x lease_ttl).
    holder: str | None = None

    # --- the repository ----------------------------------------------------------------

    def files(self, services: Mapping[str, Any], **top: Any) -> dict[str, str]:
        settings = {
            "project": "t",
            "application": {"name": "app", "stack": self.stack},
            "targets": {"local": {}},
            "environments": {
                self.env: {"target": "local", "sync": dict(self.sync), **self.env_extra}
            },
        }
        return {
            "gitswarm.yml": _dump(settings),
            "base/docker-compose.yml": _dump({"services": dict(services), **top}),
            f"environments/{self.env}/docker-compose.yml": "services: {}\n",
            f"environments/{self.env}/.env": "# variables\n",
        }

    def push(self, services: Mapping[str, Any], message: str, **top: Any) -> str:
        if self.wc is None:
            self.wc = self.remote.clone()
        sha = self.wc.commit(message, files=self.files(services, **top), allow_empty=True)
        self.wc.push()
        return sha

    # --- the agent ---------------------------------------------------------------------

    def start(self, clock: Clock | None = None, *, leader: bool = True, **settings: Any) -> Agent:
        self.receiver = Receiver(delay=self.receiver_delay)
        state = str(self.state or self.tmp / "state.db")
        options: dict[str, Any] = {}
        if self.store_clock is not None:
            options["clock"] = self.store_clock
        if self.busy_timeout is not None:
            options["busy_timeout"] = self.busy_timeout
        self.store = Store(state, **options)
        source = RepoSource.open(self.url or self.remote.url, cache=self.tmp / "cache")
        notifier = Notifier(
            {"sync_failed": [self.receiver.url], "rollback": [self.receiver.url],
             "drift_detected": [self.receiver.url], "signature_rejected": [self.receiver.url]}
        )  # fmt: skip
        defaults = {"poll_interval": 300.0, "drift_interval": 300.0, "lease_ttl": 5.0}
        agent_settings = AgentSettings(**{**defaults, **settings})
        reconciler = Reconciler(
            source, self.store, SwarmPool(), notifier=notifier, clock=clock or Clock()
        )
        if self.holder is not None:
            reconciler.holder = self.holder
            reconciler.sync_lease = 2 * agent_settings.lease_ttl  # as `gitswarm serve` has it
        metrics = Metrics()
        self.agent = Agent(
            source=source, store=self.store, reconciler=reconciler, settings=agent_settings,
            notifier=notifier, metrics=metrics,
        )  # fmt: skip
        api = settings_from_mapping(
            {"webhooks": {"github": WEBHOOK_SECRET, "generic": WEBHOOK_SECRET}},
            audit=self.store.audit,
            deliveries=self.store,  # as `gitswarm serve` wires it: replays are refused
        )
        self.handle = serve_in_thread(create_app(self.agent, api, metrics), "127.0.0.1", 0)
        self.agent.start()
        if leader:
            assert self.agent.wait_leader(10)
        return self.agent

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()
        if self.agent is not None:
            self.agent.stop(timeout=30)
        if self.receiver is not None:
            self.receiver.close()
        if self.store is not None:
            self.store.close()

    # --- looking at it -----------------------------------------------------------------

    def status(self) -> Any:
        assert self.store is not None
        return self.store.get_status("app", self.env)

    def deployed(self, sha: str) -> Callable[[], bool]:
        def check() -> bool:
            status = self.status()
            return bool(status and status.revision == sha and status.health == "Healthy")

        return check

    def operations(self, kind: str | None = None) -> list[Any]:
        assert self.store is not None
        ops = self.store.history(app="app", env=self.env, limit=500)
        return [o for o in ops if kind is None or o.kind == kind]

    def github_push(
        self,
        after: str,
        *,
        sign: bool = True,
        secret: str = WEBHOOK_SECRET,
        pusher: str = "dev",
        delivery: str | None = None,
    ) -> int:
        """A GitHub push webhook as GitHub sends it: a fresh X-GitHub-Delivery each time
        (unless ``delivery`` repeats one)."""
        assert self.handle is not None
        body = json.dumps({"ref": "refs/heads/main", "after": after,
                           "pusher": {"name": pusher}}).encode()  # fmt: skip
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        if sign:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        url = f"{self.handle.url}/webhooks/github"
        # 30 s, not httpx's 5: a burst of 100 on a loaded 2-core machine queues on the
        # store's writer (each push claims its delivery and is audited).
        return httpx.post(url, content=body, headers=headers, timeout=30).status_code

    def send(self, provider: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """A request to a webhook endpoint exactly as given (a captured one, replayed)."""
        assert self.handle is not None
        url = f"{self.handle.url}/webhooks/{provider}"
        return httpx.post(url, content=body, headers=headers, timeout=30)


@contextmanager
def running_rig(
    rig: AgentRig, clock: Clock | None = None, *, leader: bool = True, **settings: Any
) -> Iterator[AgentRig]:
    rig.start(clock, leader=leader, **settings)
    try:
        yield rig
    finally:
        rig.stop()
