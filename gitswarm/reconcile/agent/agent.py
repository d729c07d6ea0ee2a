"""``Agent``: the parts wired together, and the threads that run them.

    lease thread      leader.py: take or renew the lease
    dispatch thread   fire due timers, hand ready tasks to the worker pool (leader only)
    worker pool       one task each: git (gitpoll.py), sync (syncs.py), drift (drift.py),
                      record (the records the store refused: reconcile/journal.py)
    event threads     events.py, one per target, while leader
    API threads       view.py (``Agent`` is an ``AgentView``)

Made by cli/serve.py (``gitswarm serve``), bench/agentproc.py and the tests' rigs.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from gitswarm.errors import GitswarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import RepoConfig, Target
from gitswarm.notify import Notifier
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.reconcile.agent.drift import Drift
from gitswarm.reconcile.agent.events import EventWatch
from gitswarm.reconcile.agent.gitpoll import GitPoll
from gitswarm.reconcile.agent.leader import Leadership
from gitswarm.reconcile.agent.queue import Key, jittered, poll_delay
from gitswarm.reconcile.agent.settings import AgentSettings
from gitswarm.reconcile.agent.state import AgentState
from gitswarm.reconcile.agent.syncs import Syncs
from gitswarm.reconcile.agent.view import AgentView
from gitswarm.reconcile.apply import Stopping, stopping_clock
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.client import Swarm

log = logging.getLogger("gitswarm.agent")


class Agent(AgentView):
    """The running agent (implements api/port.py's AgentPort through AgentView)."""

    def __init__(
        self,
        *,
        source: RepoSource,
        store: Store,
        reconciler: Reconciler,
        settings: AgentSettings | None = None,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        swarm_for: Callable[[Target], Swarm] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        uniform: Callable[[float, float], float] = random.uniform,
        after_burst: Callable[[], object] | None = None,
    ) -> None:
        settings = settings or AgentSettings()
        # One set of metrics and one notifier per process: the Reconciler records every
        # outcome (reconcile/record.py), so it gets the agent's if it was given none.
        metrics = metrics or reconciler.metrics or Metrics()
        if reconciler.metrics is None:
            reconciler.metrics = metrics
        if reconciler.notifier is None:
            reconciler.notifier = notifier
        self.state = AgentState(settings, monotonic)
        self.ctx = AgentContext(
            source=source,
            store=store,
            reconciler=reconciler,
            settings=settings,
            metrics=metrics,
            swarm_for=swarm_for or reconciler.swarm_for,
            monotonic=monotonic,
            state=self.state,
        )
        self.started = monotonic()
        self._uniform = uniform  # the poll jitter's randomness (not crypto)
        # Called on the dispatch thread when the queue goes idle after work (serve: the
        # C allocator's trim, reconcile/allocator.py): what a burst of syncs or a drift
        # round freed goes back to the system instead of staying resident.
        self._after_burst = after_burst
        self._stop = threading.Event()
        # The operation running at stop() ends at its next wait instead of running on
        # (a convergence wait: up to health_timeout) in a pool thread the interpreter
        # joins at exit: in the agent's own container that was Swarm's SIGKILL.
        self._clock = reconciler.clock  # given back by stop(): the reconciler outlives us
        reconciler.clock = stopping_clock(self._stop, reconciler.clock)
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="gitswarm-work")
        self._futures: set[Future[None]] = set()
        self.drift = Drift(self.ctx)
        self.git = GitPoll(self.ctx)
        self.syncs = Syncs(self.ctx, self.drift)
        self.events = EventWatch(self.ctx, self._stop, self.drift.check_all)
        self.leadership = Leadership(self.ctx, self._elected)
        self.ctx.metrics.leader.set_function(lambda: 1.0 if self.state.leader else 0.0)
        self.ctx.metrics.watch_journal(reconciler.journal)

    # --- what the edges and tests use -------------------------------------------------

    @property
    def source(self) -> RepoSource:
        return self.ctx.source

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def reconciler(self) -> Reconciler:
        return self.ctx.reconciler

    @property
    def settings(self) -> AgentSettings:
        return self.ctx.settings

    @property
    def metrics(self) -> Metrics:
        return self.ctx.metrics

    @property
    def holder(self) -> str:
        return self.ctx.holder

    @property
    def leader(self) -> bool:
        return self.state.leader

    @property
    def config(self) -> RepoConfig | None:
        return self.state.config

    @property
    def head(self) -> str | None:
        return self.state.head

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        lease = threading.Thread(
            target=self.leadership.run, args=(self._stop,), name="gitswarm-lease", daemon=True
        )
        dispatch = threading.Thread(target=self._dispatch, name="gitswarm-dispatch", daemon=True)
        for thread in (lease, dispatch):
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking work, end running operations at their next wait (a step that is
        no wait may finish within the grace period), release the lease. An operation cut
        short stays Running in the store and is marked Interrupted by the next agent."""
        self._stop.set()
        with self.state.wake:
            self.state.wake.notify_all()
        self.state.close_streams()
        grace = self.settings.shutdown_grace if timeout is None else timeout
        deadline = self.ctx.monotonic() + grace
        for future in list(self._futures):
            with contextlib.suppress(Exception):
                future.result(timeout=max(0.0, deadline - self.ctx.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - self.ctx.monotonic()))
        self._last_records()
        self.reconciler.clock = self._clock
        self.leadership.release()
        for pool in (self.ctx.swarm_for, self.reconciler.swarm_for):
            close = getattr(pool, "close", None)
            if callable(close):
                close()

    def _last_records(self) -> None:
        """One last try at the records the store refused; what is left is said."""
        journal = self.reconciler.journal
        if journal.backlog() is None:
            return
        with contextlib.suppress(Exception):
            journal.flush()
        left = journal.backlog()
        if left is not None:
            log.error("stopping with records never written to the store: %s", left.detail)

    def wait_leader(self, timeout: float) -> bool:
        deadline = self.ctx.monotonic() + timeout
        while self.ctx.monotonic() < deadline:
            if self.state.leader:
                return True
            time.sleep(0.05)
        return self.state.leader

    @contextlib.contextmanager
    def running(self) -> Iterator[Agent]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _elected(self) -> None:
        self.git.forget()  # a standby may have written the store's agent_source meanwhile
        if self.settings.events:
            self._threads.extend(self.events.start())

    # --- the queue ---------------------------------------------------------------------

    def enqueue(self, key: Key, request: TriggerRequest) -> None:
        """Queue work (replacing a pending request of the same key): queue.py."""
        self.state.put(key, request)

    def _next_poll(self) -> float:
        s = self.settings
        return jittered(
            poll_delay(s.poll_interval, self.state.source.failures, s.git_backoff_max),
            s.poll_jitter,
            self._uniform,
        )

    def _take_ready(self) -> list[tuple[Key, TriggerRequest]]:
        """Fire due timers and take the tasks ready to run (state.lock held)."""
        queue = self.state.queue
        queue.fire_due(self.ctx.monotonic(), self._next_poll, self.settings.drift_interval)
        if self.reconciler.journal.due():  # records the store refused: try again
            queue.offer(("record",), TriggerRequest("agent"))
        return queue.take_ready(self._after)

    def _after(self, key: Key) -> tuple[Key, ...]:
        """What a task waits for: a sync, the syncs of its app's depends_on."""
        config = self.state.config
        if key[0] != "sync" or config is None:
            return ()
        return tuple(("sync", dep, key[2]) for dep in config.dependencies(key[1], key[2]))

    def _dispatch(self) -> None:
        state, settings = self.state, self.settings
        with state.wake:
            now = self.ctx.monotonic()
            state.queue.schedule(now + self._next_poll(), ("poll",), TriggerRequest("poll"))
            state.queue.schedule(
                now + settings.drift_interval, ("drift-tick",), TriggerRequest("agent")
            )
        busy = False  # tasks handed out since the queue was last idle
        while not self._stop.is_set():
            with state.wake:
                if state.leader:
                    ready = self._take_ready()
                else:  # timers still fire; their work waits for the lease
                    state.queue.fire_due(
                        self.ctx.monotonic(), self._next_poll, settings.drift_interval
                    )
                    ready = []
                if not ready:
                    burst_ended = busy and state.queue.idle()
                    if not burst_ended:
                        due = state.queue.next_due()
                        wait = (
                            1.0 if due is None else min(1.0, max(0.0, due - self.ctx.monotonic()))
                        )
                        state.wake.wait(timeout=wait)
                        continue
            if not ready:  # burst_ended: outside the lock, the workers are not kept waiting
                busy = False
                if self._after_burst is not None:
                    try:
                        self._after_burst()
                    except Exception:  # memory not given back is no reason to stop
                        log.exception("after a burst of work")
                continue
            busy = True
            for key, request in ready:
                future = self._pool.submit(self.run_task, key, request)
                self._futures.add(future)
                future.add_done_callback(self._futures.discard)

    def run_task(self, key: Key, request: TriggerRequest) -> None:
        """Run one task on this thread (its slot taken by ``take_ready``, freed here)."""
        try:
            if key[0] == "git":
                self.git.check(request)
            elif key[0] == "sync":
                self.syncs.sync(key[1], key[2], request)
            elif key[0] == "drift":
                self.drift.check(key[1], key[2], request)
            elif key[0] == "drift-all":
                self.drift.check_all()
            elif key[0] == "record":
                self.reconciler.journal.flush()  # its own backoff: journal.due()
        except Stopping:
            log.warning("%s cut short: the agent is stopping (left Running)", "/".join(key))
        except GitswarmError as exc:
            log.warning("%s failed: [%s] %s", "/".join(key), exc.reason, exc.message)
        except Exception:
            log.exception("%s crashed", "/".join(key))
        finally:
            self.state.done(key)

    # --- for tests and tools: the loop without its threads ----------------------------

    def idle(self) -> bool:
        return self.state.idle()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (woken by the loop itself) until nothing is pending or running."""
        with self.state.wake:
            return self.state.wake.wait_for(self.state.queue.idle, timeout)

    def run_pending(self) -> None:
        """Fire due timers and run every ready task on this thread, until none is left
        (the dispatch thread is not started; leadership is not asked)."""
        while True:
            with self.state.wake:
                ready = self._take_ready()
            if not ready:
                return
            for key, request in ready:
                self.run_task(key, request)


__all__ = ["Agent"]
