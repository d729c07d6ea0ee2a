"""The agent: ``gitswarm serve``'s loop — triggers, syncs, drift, self-heal, rollback.

    triggers (poll timer, webhooks/API, Docker events, periodic drift check)
        -> a coalescing work queue (one pending item per kind of work and app × env)
        -> workers (at most one task per app × env at a time)
             git:   ask the remote for the branch head; only if it moved, queue syncs
             sync:  Reconciler.sync (verify, render, validate, plan, apply, wait, record);
                    a failed deploy with auto_rollback redeploys the last healthy
                    revision and marks the bad one so it is not re-applied
             drift: observe + plan against the deployed revision; report, and with
                    self_heal revert (a loop guard stops healing drift that keeps coming)

Only the leader acts: one agent per store holds the ``agent`` lease and renews it; a
standby takes over when the lease runs out. The loop owns all mutable state; the HTTP
API reads it through the ``AgentPort`` methods, which take the loop's lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import itertools
import logging
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from gitswarm.errors import GitswarmError, HealthError, NotFoundError, SwarmError
from gitswarm.model.agent import Readiness, TriggerRequest
from gitswarm.model.config import RepoConfig, SyncPolicy, Target
from gitswarm.model.events import Event, EventKind
from gitswarm.model.observed import ServiceState, StackState
from gitswarm.model.operation import Trigger
from gitswarm.notify import Notifier
from gitswarm.plan import make_plan
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.status import live_status
from gitswarm.reconcile.sync import Reconciler, Rendered, SyncOutcome, SyncRequest
from gitswarm.reconcile.tasks import stack_tasks
from gitswarm.repo import load_config
from gitswarm.source.repo import RepoSource
from gitswarm.source.tree import GitTree
from gitswarm.store import AGENT_LOCK, Store
from gitswarm.swarm.client import DockerSwarm, EventStream, Swarm

log = logging.getLogger("gitswarm.agent")

DEPLOY_FAILURES = frozenset(
    {
        HealthError.HEALTH_TIMEOUT,
        HealthError.SWARM_ROLLED_BACK,
        HealthError.TASKS_FAILING,
        HealthError.UPDATE_PAUSED,
    }
)

_ROUND = "drift round"  # the reason of the periodic drift checks of every app


@dataclass(frozen=True)
class AgentSettings:
    """Every setting of the loop, with its default (see `gitswarm serve --help`)."""

    poll_interval: float = 30.0  # seconds between asking the remote for its head
    poll_jitter: float = 0.2  # +/- this fraction of the interval, so agents spread out
    drift_interval: float = 120.0  # periodic full drift check (events catch most sooner)
    lease_ttl: float = 15.0  # the leader's lease; a standby takes over after it runs out
    heal_limit: int = 3  # the same drift healed this many times ...
    heal_window: float = 600.0  # ... within this many seconds: stop healing, alert
    environments: tuple[str, ...] = ()  # only these environments (empty: all)
    workers: int = 4
    git_backoff_max: float = 300.0
    events: bool = True  # watch Docker events for drift
    shutdown_grace: float = 30.0  # SIGTERM: let a running operation finish this long


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    key: tuple[str, ...] = field(compare=False)
    request: TriggerRequest = field(compare=False)


class HealGuard:
    """Stops self-healing drift that keeps coming back (someone or something keeps
    changing the service): at most ``limit`` heals of one app × env within ``window``."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._heals: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def allow(self, app: str, env: str) -> bool:
        now = self.clock()
        heals = self._heals[(app, env)]
        while heals and now - heals[0] > self.window:
            heals.popleft()
        return len(heals) < self.limit

    def record(self, app: str, env: str) -> None:
        self._heals[(app, env)].append(self.clock())


class Agent:
    """The running agent (implements api/port.py's AgentPort)."""

    def __init__(
        self,
        *,
        source: RepoSource,
        store: Store,
        reconciler: Reconciler,
        settings: AgentSettings = AgentSettings(),
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        swarm_for: Callable[[Target], Swarm] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.store = store
        self.reconciler = reconciler
        self.settings = settings
        self.notifier = notifier
        self.metrics = metrics or Metrics()
        self.swarm_for = swarm_for or reconciler.swarm_for
        self.monotonic = monotonic
        self.holder = reconciler.holder
        self.guard = HealGuard(settings.heal_limit, settings.heal_window, monotonic)
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._pending: dict[tuple[str, ...], TriggerRequest] = {}
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._running: set[tuple[str, ...]] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="gitswarm-work")
        self._futures: set[Future[None]] = set()
        # State the loop owns (read by the API under the lock):
        self.leader = False
        self.config: RepoConfig | None = None
        self.head: str | None = None
        self.last_fetch_ok: float | None = None
        self.git_error: GitswarmError | None = None
        self.git_failures = 0
        self.started = monotonic()
        self.syncs_started = 0
        self._rendered: dict[tuple[str, str, str], Rendered] = {}
        self._heal_alerted: set[tuple[str, str]] = set()
        self._streams: set[EventStream] = set()
        self._retries: dict[tuple[str, ...], int] = {}
        self._urgent: set[tuple[str, ...]] = set()
        self._listings: dict[Target, dict[str, list[ServiceState]]] = {}  # the drift round's
        self.metrics.leader.set_function(lambda: 1.0 if self.leader else 0.0)  # issue 16

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for name, target in (("lease", self._lease_loop), ("dispatch", self._dispatch_loop)):
            thread = threading.Thread(target=target, name=f"gitswarm-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking work, let running operations finish (up to the grace period),
        release the lease. An operation cut short stays Running in the store and is
        marked Interrupted by the next agent."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
            for stream in self._streams:
                stream.close()
        grace = self.settings.shutdown_grace if timeout is None else timeout
        deadline = self.monotonic() + grace
        for future in list(self._futures):
            with contextlib.suppress(Exception):
                future.result(timeout=max(0.0, deadline - self.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - self.monotonic()))
        if self.leader:
            with contextlib.suppress(GitswarmError):
                self.store.release_lock(AGENT_LOCK, self.holder)
            self.leader = False
        for pool in (self.swarm_for, self.reconciler.swarm_for):
            close = getattr(pool, "close", None)
            if callable(close):
                close()

    def wait_leader(self, timeout: float) -> bool:
        deadline = self.monotonic() + timeout
        while self.monotonic() < deadline:
            if self.leader:
                return True
            time.sleep(0.05)
        return self.leader

    # --- leadership --------------------------------------------------------------------

    def _lease_loop(self) -> None:
        ttl = self.settings.lease_ttl
        while not self._stop.is_set():
            try:
                if self.leader:
                    if not self.store.renew_lock(AGENT_LOCK, self.holder, ttl):
                        log.warning("lost the agent lease; standing by")
                        self.leader = False
                elif self.store.acquire_lock(AGENT_LOCK, self.holder, ttl):
                    self._become_leader()
            except GitswarmError as exc:
                log.warning("lease: %s", exc.message)
                if self.leader and not self._lease_still_valid():
                    self.leader = False
            self._stop.wait(ttl / 3)

    def _lease_still_valid(self) -> bool:
        with contextlib.suppress(GitswarmError):
            info = self.store.lock_holder(AGENT_LOCK)
            return info is not None and info.holder == self.holder
        return False

    def _become_leader(self) -> None:
        interrupted = self.store.mark_interrupted(exclude_holder=self.holder)
        if interrupted:
            log.warning("marked %d operation(s) of a dead agent as Interrupted", len(interrupted))
        log.info("agent %s is the leader", self.holder)
        with self._wake:
            self.leader = True
            self.head = None  # re-check everything: the previous leader may have died mid-way
            self._enqueue_locked(("git",), TriggerRequest(trigger="agent", reason="leader start"))
            self._schedule_locked(0.0, ("drift-all",), TriggerRequest(trigger="agent"))
            self._wake.notify_all()
        if self.settings.events:
            self._start_event_watchers()

    # --- the queue ---------------------------------------------------------------------

    def _enqueue_locked(self, key: tuple[str, ...], request: TriggerRequest) -> None:
        # A newer request for the same work replaces an older pending one: the last
        # commit wins and a burst of triggers becomes one reconcile.
        self._pending[key] = request

    def _schedule_locked(self, delay: float, key: tuple[str, ...], request: TriggerRequest) -> None:
        heapq.heappush(
            self._timers, _Timer(self.monotonic() + delay, next(self._seq), key, request)
        )

    def enqueue(self, key: tuple[str, ...], request: TriggerRequest) -> None:
        with self._wake:
            self._enqueue_locked(key, request)
            self._wake.notify_all()

    def _dispatch_loop(self) -> None:
        interval = self.settings.poll_interval
        drift_every = self.settings.drift_interval
        with self._wake:
            self._schedule_locked(self._jittered(interval), ("poll",), TriggerRequest("poll"))
            self._schedule_locked(drift_every, ("drift-tick",), TriggerRequest("agent"))
        while not self._stop.is_set():
            with self._wake:
                now = self.monotonic()
                while self._timers and self._timers[0].due <= now:
                    timer = heapq.heappop(self._timers)
                    self._fire_locked(timer)
                ready = [] if not self.leader else self._take_ready_locked()
                if not ready:
                    wait = 1.0
                    if self._timers:
                        wait = min(wait, max(0.0, self._timers[0].due - self.monotonic()))
                    self._wake.wait(timeout=wait)
                    continue
            for key, request in ready:
                future = self._pool.submit(self._run, key, request)
                self._futures.add(future)
                future.add_done_callback(self._futures.discard)

    def _fire_locked(self, timer: _Timer) -> None:
        key = timer.key
        if key == ("poll",):
            self._enqueue_locked(("git",), timer.request)
            self._schedule_locked(
                self._jittered(self._poll_delay()), ("poll",), TriggerRequest("poll")
            )
        elif key == ("drift-tick",):
            self._enqueue_locked(("drift-all",), timer.request)
            self._schedule_locked(self.settings.drift_interval, ("drift-tick",), timer.request)
        else:
            self._enqueue_locked(key, timer.request)

    def _poll_delay(self) -> float:
        if self.git_failures == 0:
            return self.settings.poll_interval
        backoff = self.settings.poll_interval * (2 ** min(self.git_failures, 6))
        return float(min(backoff, self.settings.git_backoff_max))

    def _jittered(self, seconds: float) -> float:
        spread = seconds * self.settings.poll_jitter
        return max(0.1, seconds + random.uniform(-spread, spread))  # noqa: S311 - not crypto

    def _take_ready_locked(self) -> list[tuple[tuple[str, ...], TriggerRequest]]:
        ready = []
        # Syncs of the apps a commit touched go first: with many apps, the one that
        # changed must not wait behind all the no-op syncs of the others.
        for key in sorted(self._pending, key=lambda k: (k not in self._urgent, _priority(k))):
            slot = key[1:] if key[0] in ("sync", "drift") else key
            if slot in self._running:
                continue  # one task per app × env at a time; it stays pending meanwhile
            self._running.add(slot)
            self._urgent.discard(key)
            ready.append((key, self._pending.pop(key)))
        return ready

    def _run(self, key: tuple[str, ...], request: TriggerRequest) -> None:
        slot = key[1:] if key[0] in ("sync", "drift") else key
        try:
            if key[0] == "git":
                self._check_git(request)
            elif key[0] == "sync":
                self._sync(key[1], key[2], request)
            elif key[0] == "drift":
                self._check_drift(key[1], key[2], request)
            elif key[0] == "drift-all":
                self._check_all_drift()
        except GitswarmError as exc:
            log.warning("%s failed: [%s] %s", "/".join(key), exc.reason, exc.message)
        except Exception:
            log.exception("%s crashed", "/".join(key))
        finally:
            with self._wake:
                self._running.discard(slot)
                self._wake.notify_all()

    # --- git ---------------------------------------------------------------------------

    def _check_git(self, request: TriggerRequest) -> None:
        try:
            head, fetched = self.source.poll()
        except GitswarmError as exc:
            with self._lock:
                self.git_failures += 1
                self.git_error = exc
            self.metrics.git_fetch_errors.inc()
            log.warning("git remote unreachable (%s); keeping the last state", exc.message)
            return
        self.metrics.git_polls.labels("yes" if fetched else "no").inc()
        with self._lock:
            self.git_failures = 0
            self.git_error = None
            self.last_fetch_ok = self.monotonic()
            previous = self.head
            moved = head != previous
            self.head = head
        if not moved:
            return  # nothing new: no render, no Docker call
        changed: set[str] | None = None  # None: unknown, every app may be touched
        if previous is not None:
            with contextlib.suppress(GitswarmError):
                changed = set(self.source.changed_files(previous, head))
        try:
            config = load_config(GitTree(self.source.git_dir, head))
        except GitswarmError as exc:
            # A broken gitswarm.yml: each application syncs anyway, so the error is
            # recorded in its history and status (and notified) and nothing is applied.
            log.warning("gitswarm.yml at %s is invalid: %s", head[:12], exc.message)
            if self.config is None:
                return
            config = self.config
        with self._wake:
            self.config = config
            for env in config.environments:
                if self.settings.environments and env.name not in self.settings.environments:
                    continue
                for app in config.apps_for(env.name):
                    if not config.sync_policy(app, env).automated:
                        continue
                    key = ("sync", app.name, env.name)
                    self._enqueue_locked(
                        key, replace(request, app=app.name, env=env.name, revision=head)
                    )
                    if changed is None or _touches(changed, app.files_for(env.name), env.path):
                        self._urgent.add(key)
            self._wake.notify_all()

    # --- sync, with automatic rollback -------------------------------------------------

    def _policy(self, app: str, env: str) -> SyncPolicy:
        config = self.config
        if config is None:
            return SyncPolicy()
        try:
            return config.sync_policy(config.application(app), config.environment(env))
        except KeyError:
            return SyncPolicy()

    def _sync(self, app: str, env: str, request: TriggerRequest) -> None:
        revision = request.revision or self.head
        policy = self._policy(app, env)
        with self._lock:
            self.syncs_started += 1
        trigger: Trigger = request.trigger if request.trigger != "poll" else "poll"
        outcome = self.reconciler.sync(
            SyncRequest(
                app,
                env,
                revision=revision,
                trigger=trigger,
                actor=request.actor,
                heal=policy.self_heal,
                lock_wait=5.0,
                message=request.reason,
                override_window=request.override_window,
            )
        )
        self._count(outcome)
        self._remember_render(outcome)
        if not outcome.retryable:
            with self._lock:
                self._retries.pop(("sync", app, env), None)
        if outcome.reason == "DeploymentWindowClosed":
            self._hold_for_window(app, env, outcome, request)
        elif outcome.retryable:
            self._retry_later(("sync", app, env), request, outcome)
        elif (
            outcome.result == "Failed"
            and outcome.reason in DEPLOY_FAILURES
            and policy.auto_rollback
            and outcome.revision
        ):
            self._auto_rollback(app, env, outcome)

    def _count(self, outcome: SyncOutcome) -> None:
        self.metrics.sync_operations.labels(
            outcome.app, outcome.env, outcome.result, outcome.reason or ""
        ).inc()
        if outcome.result == "Succeeded":
            self.metrics.last_success.labels(outcome.app, outcome.env).set(time.time())
        with contextlib.suppress(GitswarmError):
            status = self.store.get_status(outcome.app, outcome.env)
            if status is not None:
                self.metrics.set_state(outcome.app, outcome.env, status.sync, status.health)

    def _retry_later(
        self, key: tuple[str, ...], request: TriggerRequest, outcome: SyncOutcome
    ) -> None:
        """Transient trouble (Docker restarting, a lock still held by a dead agent, the
        store busy): try again with backoff; a new trigger meanwhile replaces it."""
        with self._wake:
            attempt = self._retries.get(key, 0) + 1
            self._retries[key] = attempt
            delay = min(2.0 * 2 ** min(attempt - 1, 5), 60.0)
            log.warning(
                "%s/%s: %s (%s); retrying in %.0fs", key[1], key[2], outcome.reason,
                outcome.message, delay,
            )  # fmt: skip
            self._schedule_locked(delay, key, request)
            self._wake.notify_all()

    def _hold_for_window(
        self, app: str, env: str, outcome: SyncOutcome, request: TriggerRequest
    ) -> None:
        window = outcome.policy.window if outcome.policy is not None else None
        next_open = getattr(window, "next_open", None)
        if not isinstance(next_open, dt.datetime):
            return
        delay = max(1.0, (next_open - self.reconciler.clock.now()).total_seconds())
        log.info("%s/%s held until the deployment window opens at %s", app, env, next_open)
        self.store.set_status(
            app,
            env,
            reason="DeploymentWindowClosed",
            message=f"waiting for the deployment window: opens {next_open.isoformat()}",
        )
        with self._wake:
            self._schedule_locked(delay, ("sync", app, env), request)
            self._wake.notify_all()

    def _auto_rollback(self, app: str, env: str, failed: SyncOutcome) -> None:
        bad = failed.revision or ""
        self.store.mark_bad(app, env, bad, failed.reason or "Failed", failed.message)
        target = self.store.last_successful_revision(app, env, exclude={bad})
        if target is None:
            log.warning("%s/%s: no healthy revision to roll back to", app, env)
            return
        outcome = self.reconciler.sync(
            SyncRequest(
                app,
                env,
                revision=target,
                trigger="agent",
                kind="rollback",
                force_bad=True,
                lock_wait=5.0,
                message=f"automatic rollback from {bad[:12]} ({failed.reason})",
            )
        )
        self._count(outcome)
        self.metrics.rollbacks.labels(app, env, outcome.result).inc()  # issue 16: alerts
        self._remember_render(outcome)
        if outcome.result != "Succeeded":
            return
        message = (
            f"{bad[:12]} failed ({failed.reason}: {failed.message}); rolled back to "
            f"{target[:12]}; {bad[:12]} will not be applied again until Git moves on"
        )
        self.store.set_status(
            app,
            env,
            sync="OutOfSync",
            health="Healthy",
            last_result="RolledBack",
            revision=target,
            reason=failed.reason,
            message=message,
        )
        self._notify("rollback", app, env, bad, message, failed.reason)

    # --- drift -------------------------------------------------------------------------

    def _check_all_drift(self) -> None:
        config = self.config
        if config is None:
            return
        envs = [
            env
            for env in config.environments
            if not self.settings.environments or env.name in self.settings.environments
        ]
        # One listing of every stack's services per target for the whole round, not one
        # per app: the engine scans all services for each filtered listing (100 stacks,
        # 100 scans: over 1 s on 2 cores; bench/ issue 7). A check uses it only to skip
        # an app with nothing to do; what it flags is read again live (_check_drift).
        listings: dict[Target, dict[str, list[ServiceState]]] = {}
        for env in envs:
            if env.target not in listings:
                with contextlib.suppress(GitswarmError):  # then each app reads live
                    listings[env.target] = self.swarm_for(env.target).services_by_stack()
        with self._wake:
            self._listings = listings
            for env in envs:
                for app in config.apps_for(env.name):
                    # setdefault: a check already pending (an event's) must stay a live one
                    self._pending.setdefault(
                        ("drift", app.name, env.name), TriggerRequest("agent", reason=_ROUND)
                    )
            self._wake.notify_all()

    def _remember_render(self, outcome: SyncOutcome) -> None:
        """A revision just deployed: its render serves the drift checks that follow. A
        service someone changed while the sync rolled it out gets its drift check now
        (reported, and healed with self_heal, once this sync's slot is free)."""
        rendered = outcome.rendered
        if outcome.result != "Succeeded" or rendered is None or outcome.revision is None:
            return
        self._cache_render((outcome.app, outcome.env, outcome.revision), rendered)
        if outcome.drifted:
            self.enqueue(
                ("drift", outcome.app, outcome.env),
                TriggerRequest("agent", reason="changed during the sync"),
            )

    def _cache_render(self, key: tuple[str, str, str], rendered: Rendered) -> None:
        """One render per app x env: that of the revision deployed last."""
        with self._lock:
            self._rendered = {k: v for k, v in self._rendered.items() if k[:2] != key[:2]}
            self._rendered[key] = rendered

    def _deployed_render(self, app: str, env: str) -> Rendered | None:
        status = self.store.get_status(app, env)
        if status is None or status.revision is None:
            return None
        key = (app, env, status.revision)
        cached = self._rendered.get(key)
        if cached is None:
            cached = self.reconciler.render(app, env, status.revision)
            self._cache_render(key, cached)
        return cached

    def _check_drift(self, app: str, env: str, request: TriggerRequest) -> None:
        rendered = self._deployed_render(app, env)
        if rendered is None:
            return  # nothing deployed yet: the first sync comes from the git check
        stack = rendered.desired.stack
        baselines = self.store.baselines(app, env)
        status = self.store.get_status(app, env)
        if request.reason == _ROUND and status is not None and not status.drift:
            with self._lock:
                listing = self._listings.get(rendered.env.target)
            if listing is not None:
                listed = StackState(stack=stack, services=tuple(listing.get(stack, ())), objects=())
                plan = make_plan(rendered.desired, listed, baselines, prune=False, heal=False)
                if not plan.drifted:
                    return  # as of the round's listing nothing drifted, and nothing to undo
        swarm = self.swarm_for(rendered.env.target)
        # Drift is a matter of services (plan.drifted): list them alone, one Docker call
        # instead of three (services, configs, secrets).
        observed = StackState(stack=stack, services=tuple(swarm.services(stack)), objects=())
        plan = make_plan(rendered.desired, observed, baselines, prune=False, heal=False)
        drifted = plan.drifted
        if not drifted:
            if status is not None and status.drift:
                self.store.set_status(app, env, drift={}, sync="Synced", reason=None, message="")
            self._heal_alerted.discard((app, env))
            return
        details = {c.service: c.as_dict() for c in drifted}
        summary = "; ".join(_drift_text(c.as_dict()) for c in drifted)
        message = f"manual change on the swarm: {summary}"
        self.store.set_status(app, env, sync="OutOfSync", drift=details, message=message)
        self.store.record_operation(
            "drift", app, env, "Succeeded", trigger="agent", revision=rendered.revision,
            reason="Drift", message=message,
        )  # fmt: skip
        self.metrics.drift_events.labels(app, env, "detected").inc()
        self._notify(
            "drift_detected", app, env, rendered.revision, message, "Drift", dedupe=summary
        )
        if not self._policy(app, env).self_heal:
            return
        if not self.guard.allow(app, env):
            if (app, env) not in self._heal_alerted:
                self._heal_alerted.add((app, env))
                text = (
                    f"drift keeps coming back ({self.guard.limit} heals within "
                    f"{self.guard.window:.0f}s): self-heal paused; {summary}"
                )
                self.store.set_status(app, env, reason="HealLoop", message=text)
                self._notify("drift_detected", app, env, rendered.revision, text, "HealLoop")
            return
        self.guard.record(app, env)
        outcome = self.reconciler.sync(
            SyncRequest(
                app,
                env,
                revision=rendered.revision,
                trigger="agent",
                kind="heal",
                heal=True,
                force_bad=True,
                lock_wait=5.0,
                message=f"self-heal: {summary}",
            )
        )
        self._count(outcome)
        self._remember_render(outcome)
        if outcome.result == "Succeeded":
            self.metrics.drift_events.labels(app, env, "healed").inc()
            self._notify("drift_healed", app, env, rendered.revision, f"reverted: {summary}", None)

    # --- Docker events -----------------------------------------------------------------

    def _start_event_watchers(self) -> None:
        config = self.config
        targets: dict[str, Target] = {}
        if config is not None:
            for env in config.environments:
                targets[env.target.name] = env.target
        if not targets:
            targets["local"] = Target("local")
        for target in targets.values():
            thread = threading.Thread(
                target=self._watch_events, args=(target,), name=f"gitswarm-events-{target.name}",
                daemon=True,
            )  # fmt: skip
            thread.start()
            self._threads.append(thread)

    def _watch_events(self, target: Target) -> None:
        backoff = 0.5
        since: dt.datetime | None = None
        while not self._stop.is_set() and self.leader:
            try:
                client = DockerSwarm(target, timeout=60)
            except GitswarmError:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            try:
                if since is not None:
                    self._check_all_drift()  # events may have been missed meanwhile
                since = dt.datetime.now(dt.UTC)
                backoff = 0.5
                stream = client.events(since=since)
                with self._lock:
                    self._streams.add(stream)
                if self._stop.is_set():
                    stream.close()
                for event in stream:
                    if self._stop.is_set() or not self.leader:
                        break
                    self._on_event(event)
                    since = dt.datetime.now(dt.UTC)
            except SwarmError as exc:
                log.warning("Docker events from %s: %s; reconnecting", target.name, exc.message)
            finally:
                with self._lock:
                    self._streams = {s for s in self._streams if not s.closed}
                client.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("Type")
        action = str(event.get("Action", ""))
        if kind not in ("service", "config", "secret") or action not in ("update", "remove"):
            return
        name = str(event.get("Actor", {}).get("Attributes", {}).get("name", ""))
        config = self.config
        if config is None:
            return
        for env in config.environments:
            for app in config.apps_for(env.name):
                stack = app.stack_name(env.name)
                if name == stack or name.startswith(stack + "_"):
                    self.enqueue(("drift", app.name, env.name), TriggerRequest("agent"))

    # --- notifications -----------------------------------------------------------------

    def _notify(
        self,
        kind: EventKind,
        app: str,
        env: str,
        revision: str | None,
        message: str,
        reason: str | None,
        *,
        dedupe: str | None = None,
    ) -> None:
        if self.notifier is None:
            return
        event = Event(kind, app, env, revision, message, reason)
        fingerprint = event.fingerprint + (f"|{dedupe}" if dedupe else "")
        try:
            fresh = self.store.record_notification(app, env, kind, fingerprint)
        except GitswarmError:
            fresh = True
        if fresh:
            self.notifier.send(event)
            self.metrics.notifications.labels("queued").inc()

    # --- AgentPort (the HTTP API's view) ----------------------------------------------

    def statuses(self) -> list[dict[str, Any]]:
        source = self._source_state()
        return [
            {**_status_dict(status, self.head), "source": source}
            for status in self.store.all_statuses()
        ]

    def status(self, app: str, env: str) -> dict[str, Any]:
        self._known(app, env)
        return {**live_status(self.reconciler, app, env).as_dict(), "source": self._source_state()}

    def _source_state(self) -> dict[str, Any]:
        """Whether the Git remote answered lately: shown with every status, so a remote
        that is down is visible where people look (the last state is kept meanwhile)."""
        with self._lock:
            error, last = self.git_error, self.last_fetch_ok
        age = None if last is None else round(self.monotonic() - last, 1)
        return {
            "ok": error is None,
            "error": error.message if error is not None else None,
            "seconds_since_fetch": age,
        }

    def history(self, app: str | None, env: str | None, limit: int) -> Sequence[dict[str, Any]]:
        return [_operation_dict(o) for o in self.store.history(app=app, env=env, limit=limit)]

    def operation(self, op_id: int) -> dict[str, Any]:
        return _operation_dict(self.store.get_operation(op_id))

    def dora(
        self,
        env: str,
        app: str | None,
        since: dt.datetime,
        until: dt.datetime,
        failure_window: dt.timedelta,
        drift_threshold: dt.timedelta,
    ) -> dict[str, Any]:
        return self.store.dora(
            env, app, since=since, until=until, failure_window=failure_window,
            drift_threshold=drift_threshold,
        ).as_dict()  # fmt: skip

    def diff(self, app: str, env: str) -> dict[str, Any]:
        self._known(app, env)
        result = live_status(self.reconciler, app, env)
        if result.error is not None:
            raise result.error
        return result.plan.as_dict() if result.plan else {}

    def trigger(self, request: TriggerRequest) -> dict[str, Any]:
        if request.ref is not None and request.ref != self.followed_ref():
            return {"queued": [], "ignored": "ref"}
        if request.trigger == "webhook":
            # A webhook only makes the agent look at Git now, as the next poll would: it
            # fetches the followed branch itself and syncs its head if it moved. Whatever
            # commit, app or environment the body names is never deployed (a replayed
            # old webhook must not roll anything back, nor undo a deployer's choice).
            self.enqueue(("git",), replace(request, app=None, env=None, revision=None))
            return {"queued": ["git"]}
        if request.app is None and request.env is None:
            # A push: ask the remote first.
            self.enqueue(("git",), request)
            return {"queued": ["git"]}
        queued = []
        config = self.config
        if config is None:
            self.enqueue(("git",), request)
            return {"queued": ["git"]}
        for env in config.environments:
            if request.env not in (None, env.name):
                continue
            for app in config.apps_for(env.name):
                if request.app not in (None, app.name):
                    continue
                # An explicit revision is honoured, like `gitswarm sync --revision`.
                self.enqueue(
                    ("sync", app.name, env.name), replace(request, app=app.name, env=env.name)
                )
                queued.append(f"{app.name}/{env.name}")
        if not queued:
            raise NotFoundError(f"no application {request.app!r} in environment {request.env!r}")
        return {"queued": queued}

    def readiness(self) -> Readiness:
        checks: dict[str, Any] = {}
        try:
            holder = self.store.lock_holder(AGENT_LOCK)
            checks["store"] = {"ok": True, "detail": self.store.location}
        except GitswarmError as exc:
            holder = None
            checks["store"] = {"ok": False, "detail": exc.message}
        checks["leader"] = {
            "ok": True,
            "detail": "active"
            if self.leader
            else f"standby (leader: {holder.holder if holder else '-'})",
        }
        try:
            self.swarm_for(self._first_target()).ping()
            checks["docker"] = {"ok": True, "detail": "reachable"}
        except GitswarmError as exc:
            checks["docker"] = {"ok": False, "detail": exc.message}
        limit = 3 * self.settings.poll_interval
        with self._lock:
            last = self.last_fetch_ok
            error = self.git_error
        age = None if last is None else self.monotonic() - last
        fresh = (age is not None and age <= limit) or (
            last is None and self.monotonic() - self.started <= limit and error is None
        )
        detail = "never fetched" if age is None else f"last fetch {age:.0f}s ago"
        if error is not None:
            detail += f"; {error.message}"
        checks["git"] = {"ok": fresh or not self.leader, "detail": detail}
        return Readiness(all(c["ok"] for c in checks.values()), checks)

    def followed_ref(self) -> str:
        try:
            return self.source.branch_ref()
        except GitswarmError:
            return self.source.ref()  # the remote is down: compare with what we know

    def tasks(self, app: str, env: str) -> list[dict[str, Any]]:
        """The tasks of an app × env's stack (the dashboard): a thin delegation."""
        self._known(app, env)
        config = self.config
        if config is None:
            return []
        environment = config.environment(env)
        stack = config.application(app).stack_name(env)
        return stack_tasks(self.swarm_for(environment.target), stack)

    def _first_target(self) -> Target:
        config = self.config
        if config is not None and config.environments:
            return config.environments[0].target
        return Target("local")

    def _known(self, app: str, env: str) -> None:
        config = self.config
        if config is None:
            return
        try:
            config.environment(env)
            config.application(app)
        except KeyError as exc:
            raise NotFoundError(str(exc.args[0])) from None

    # --- test helpers ------------------------------------------------------------------

    def idle(self) -> bool:
        with self._lock:
            return not self._pending and not self._running

    @contextlib.contextmanager
    def running(self) -> Iterator[Agent]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def _touches(changed: set[str], files: Sequence[str], env_path: str) -> bool:
    """Whether a commit's changed files may change an app's render in an environment (a
    cheap guess used for ordering only: every app is synced either way)."""
    shared = ("gitswarm.yml", "applications/", "policies/", env_path + "/")
    return any(f in files or f.startswith(shared) for f in changed)


def _priority(key: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    order = {"git": 0, "sync": 1, "drift": 2, "drift-all": 3}
    return order.get(key[0], 9), key


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _drift_text(change: Mapping[str, Any]) -> str:
    fields = ", ".join(
        f"{d['field']}: {_short(d['before'])} -> {_short(d['after'])}"
        for d in change.get("drift", [])
    )
    if not fields and change.get("note") == "missing":
        fields = "service removed"
    return f"{change['service']} ({fields})"


def _status_dict(status: Any, head: str | None) -> dict[str, Any]:
    return {
        "app": status.app,
        "env": status.env,
        "sync": status.sync,
        "health": status.health,
        "head": head,
        "deployed": status.revision,
        "last_result": status.last_result,
        "reason": status.reason,
        "message": status.message,
        "drift": dict(status.drift),
        "updated_at": status.updated_at.isoformat(),
    }


def _operation_dict(o: Any) -> dict[str, Any]:
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
        "commit_time": o.commit_time.isoformat() if o.commit_time else None,
        "started_at": o.started_at.isoformat(),
        "finished_at": o.finished_at.isoformat() if o.finished_at else None,
        "dry_run": o.dry_run,
        "changes": [
            {"service": c.service, "action": c.action, "fields": list(c.fields)} for c in o.changes
        ],
    }
