"""The agent: ``gitswarm serve``'s loop — triggers, syncs, drift, self-heal, rollback.
Read this first; each file below is one part of the flow.

    triggers: poll timer, webhooks and the API (view.py), Docker events (events.py),
              the periodic drift round
        -> the work queue (queue.py, pure): one pending request per piece of work,
           timers, priorities, at most one task per app x env at a time
        -> the dispatcher (agent.py) hands ready tasks to a pool of workers:
             git    gitpoll.py  ask the remote for the head; if it moved, queue syncs
             sync   syncs.py    Reconciler.sync (reconcile/sync.py: verify, render,
                                validate, plan, apply, wait, record, notify); retry
                                with backoff, hold for a window, roll back a failed
                                deploy automatically
             drift  drift.py    plan the live services against what was applied;
                                report, and with self_heal revert (a guard stops
                                healing drift that keeps coming back)

Only the leader acts (leader.py): one agent per store holds the ``agent`` lease.
``Agent`` (agent.py) wires the parts (context.py: what each is given) and runs them.

The state, and its one owner
----------------------------
Everything the loop knows that changes lives in one ``AgentState`` (state.py), behind
one lock, ``AgentState.lock`` (an RLock; ``AgentState.wake`` is a Condition on it,
notified when work is queued or a task ends). Every read and write goes through a
state method that takes the lock and hands out immutable values; the lock is never held
across I/O.

    state                          written by                       read by
    leader                         lease thread (leader.py)         dispatcher, events,
                                                                    view (readiness,
                                                                    /metrics)
    head, config, git health       git worker (gitpoll.py)          syncs, drift, events,
      (last good fetch, error,                                      view, dispatcher
      failures in a row)                                            (poll backoff)
    work queue: pending, timers,   gitpoll, syncs, drift, events,   dispatcher, idle()
      running slots, urgent,         view (trigger), dispatcher
      retry attempts
    render cache (the render of    sync and drift workers           drift workers
      each app's deployed revision)
    heal guard counts, heal-loop   drift workers                    drift workers
      alerts
    the drift round's listings     drift-all worker                 drift workers
    open Docker event streams      event threads                    Agent.stop

Not in it, each with its own owner: the store (transactions; status, history and
notifications are written by the Reconciler's recorder), the Reconciler's caches (its
locks), the Git cache (``RepoSource``'s lock serialises fetches), the metrics
(prometheus_client is thread-safe).
"""

from gitswarm.reconcile.agent.agent import Agent
from gitswarm.reconcile.agent.settings import AgentSettings
from gitswarm.reconcile.agent.state import AgentState, HealGuard

__all__ = ["Agent", "AgentSettings", "AgentState", "HealGuard"]
