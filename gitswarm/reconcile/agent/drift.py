"""The drift tasks: is the swarm still what gitswarm applied? Report it, and with
``self_heal`` put it back.

    drift-all   the periodic round (``drift_interval``, and after the event stream was
                down): one listing of every stack's services per target and one read of
                every status and baseline; each app's cached render planned against
                them, and a drift check queued for each app that shows drift, has drift
                reported or has no cached render (the others: nothing to do); with one
                read of every task per target, each deployed app's health is re-assessed
                (health.py: a task that dies after a sync sends no event)
                (and a sync of each automated app whose secrets come from a provider:
                a value rotated at the provider deploys as a new secret version)
    drift       one app x env: its deployed revision's render (cached: the render of the
                revision deployed last, kept from the sync that deployed it) planned
                against the live services and the baselines (what was applied)
                  nothing drifted  a drift reported before is cleared
                  drifted          reported (status, history, notification once per
                                   distinct drift); with self_heal, a heal sync reverts
                                   it, unless the heal guard says the same drift keeps
                                   coming back (then self-heal pauses and alerts),
                                   or Swarm itself rolled it back (a heal would roll
                                   out again what Swarm rolled back: reported only)

Triggered by Docker events (events.py), by the round, and after a sync during which
someone changed a service it rolled out (syncs.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitswarm.errors import GitswarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import Application, Environment, Target
from gitswarm.model.observed import ServiceState, StackState
from gitswarm.model.operation import AppStatus, Baseline
from gitswarm.model.stack import LABEL_PROVIDER
from gitswarm.plan import make_plan
from gitswarm.policy.certs import earliest_expiry
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.reconcile.agent.health import HealthRound
from gitswarm.reconcile.baselines import unsettled
from gitswarm.reconcile.sync import Rendered, SyncOutcome, SyncRequest
from gitswarm.swarm.port import gc_paused

ROUND = "drift round"  # the reason of the periodic drift checks of every app
PROVIDER_REFRESH = "provider secrets refresh"  # a round's re-sync of provider secrets


@dataclass(frozen=True)
class Snapshot:
    """The store as a drift round starts: every status and baseline, read once."""

    statuses: Mapping[tuple[str, str], AppStatus]
    baselines: Mapping[tuple[str, str], Mapping[str, Baseline]]


class Drift:
    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.health = HealthRound(ctx)

    def check_all(self) -> None:
        """The round: a drift check of every app x env this agent deploys — a task for
        each that may have drifted (``_quiet``). With the cyclic GC paused: the round's
        listing, statuses and baselines (~400,000 containers at 1,000 apps) are made and
        freed again within it, none in a cycle, and each collection they would trigger
        traverses the agent's whole heap (bench/profile_round.py, issue 18)."""
        with gc_paused():
            self._check_all()

    def _check_all(self) -> None:
        ctx = self.ctx
        config = ctx.state.config
        if config is None:
            return
        envs = [env for env in config.environments if ctx.settings.watches(env.name)]
        # Statuses and baselines of every app in one read each, before the listings (a
        # sync in between can only make an app look drifted, and a check reads it again).
        snapshot: Snapshot | None = None
        with contextlib.suppress(GitswarmError):  # then each app is checked as a task
            statuses = {(s.app, s.env): s for s in ctx.store.all_statuses()}
            # Without the specs: only a service whose version moved needs one, and that
            # one looks drifted here and is checked with the full baseline.
            snapshot = Snapshot(statuses, ctx.store.all_baselines(specs=False))
        # One listing of every stack's services per target for the whole round, not one
        # per app: the engine scans all services for each filtered listing (100 stacks,
        # 100 scans: over 1 s on 2 cores; bench/ issue 7). A check uses it only to skip
        # an app with nothing to do; what it flags is read again live (check).
        ctx.state.set_listings({})  # the last round's, freed before this one is read
        listings: dict[Target, dict[str, list[ServiceState]]] = {}
        for env in envs:
            if env.target not in listings:
                with contextlib.suppress(GitswarmError):  # then each app reads live
                    listings[env.target] = ctx.swarm_for(env.target).services_by_stack()
        # one read of every task per target (health.py), the statuses of the round's read
        self.health.check(listings, None if snapshot is None else snapshot.statuses)
        flagged = [
            (app, env)
            for env in envs
            for app in config.apps_for(env.name)
            if not self._quiet(app.name, env.name, listings.get(env.target), snapshot)
        ]
        keys = [("drift", app.name, env.name) for app, env in flagged]
        ctx.state.set_listings(self._kept(flagged, listings, snapshot))
        del listings  # 5,000 services with their specs at 1,000 apps: not kept to the next
        # offer: a check already pending (an event's) must stay a live one
        ctx.state.offer_all(keys, TriggerRequest("agent", reason=ROUND))
        self._refresh_provider_secrets()

    def _kept(
        self,
        flagged: list[tuple[Application, Environment]],
        listings: Mapping[Target, Mapping[str, list[ServiceState]]],
        snapshot: Snapshot | None,
    ) -> dict[Target, dict[str, list[ServiceState]]]:
        """What of the round's listings its checks can use (``check``): the stacks of the
        apps it flagged, by their settings' and their deployed render's stack name. The
        rest would sit in memory until the next round (bench/ issue 18)."""
        kept: dict[Target, dict[str, list[ServiceState]]] = {}
        for app, env in flagged:
            listing = listings.get(env.target)
            if listing is None:
                continue
            status = snapshot.statuses.get((app.name, env.name)) if snapshot else None
            rendered = (
                self.ctx.state.render_of(app.name, env.name, status.revision)
                if status is not None and status.revision
                else None
            )
            for stack in {app.stack_name(env.name), rendered.desired.stack if rendered else ""}:
                if stack in listing:
                    kept.setdefault(env.target, {})[stack] = listing[stack]
        return kept

    def _quiet(
        self,
        app: str,
        env: str,
        listing: Mapping[str, list[ServiceState]] | None,
        snapshot: Snapshot | None,
    ) -> bool:
        """Whether the round can pass ``app`` by without a task: nothing deployed yet, or
        its deployed render (cached) planned against the round's listing, status and
        baselines shows nothing drifted and nothing to undo — what ``check`` would find
        first, without 1,000 tasks and 3,000 store reads (bench/ issue 18). Anything else
        (drift reported, render not cached, no listing) gets its check."""
        if snapshot is None or listing is None:
            return False
        status = snapshot.statuses.get((app, env))
        if status is None or not status.revision:
            return True  # check() would find nothing deployed: the git check syncs it
        if status.drift:
            return False
        rendered = self.ctx.state.render_of(app, env, status.revision)
        if rendered is None:
            return False
        stack = rendered.desired.stack
        listed = StackState(stack=stack, services=tuple(listing.get(stack, ())), objects=())
        baselines = snapshot.baselines.get((app, env), {})
        plan = make_plan(rendered.desired, listed, baselines, prune=False, heal=False)
        return not plan.drifted

    def _refresh_provider_secrets(self) -> None:
        """A provider's value changes outside Git (a rotation in Vault): every round
        re-syncs the automated apps whose deployed render took a value from a provider, so
        a new value rolls out as a new secret version (a no-op when nothing changed)."""
        ctx = self.ctx
        keys = [
            ("sync", app, env)
            for app, env, rendered in ctx.state.renders()
            if any(o.labels.get(LABEL_PROVIDER) for o in rendered.desired.objects)
            and ctx.policy(app, env).automated
            and ctx.settings.watches(env)
        ]
        if keys:
            ctx.state.offer_all(keys, TriggerRequest("agent", reason=PROVIDER_REFRESH))

    def after_sync(self, outcome: SyncOutcome) -> None:
        """A revision just deployed: its render serves the drift checks that follow. A
        service someone changed while the sync rolled it out gets its drift check now
        (reported, and healed with self_heal, once this sync's slot is free)."""
        rendered = outcome.rendered
        if outcome.result != "Succeeded" or rendered is None or outcome.revision is None:
            return
        self.ctx.state.remember_render(outcome.app, outcome.env, outcome.revision, rendered)
        expiries = earliest_expiry(rendered.desired)  # in memory, from the deployed render
        self.ctx.metrics.set_certificates(outcome.app, outcome.env, expiries)
        if outcome.drifted:
            self.ctx.state.put(
                ("drift", outcome.app, outcome.env),
                TriggerRequest("agent", reason="changed during the sync"),
            )

    def _deployed_render(self, app: str, env: str) -> Rendered | None:
        ctx = self.ctx
        status = ctx.store.get_status(app, env)
        if status is None or status.revision is None:
            return None
        cached = ctx.state.render_of(app, env, status.revision)
        if cached is None:
            cached = ctx.reconciler.render(app, env, status.revision)
            ctx.state.remember_render(app, env, status.revision, cached)
        return cached

    def check(self, app: str, env: str, request: TriggerRequest) -> None:
        ctx = self.ctx
        rendered = self._deployed_render(app, env)
        if rendered is None:
            return  # nothing deployed yet: the first sync comes from the git check
        stack = rendered.desired.stack
        baselines = ctx.store.baselines(app, env)
        status = ctx.store.get_status(app, env)
        left = unsettled(ctx.store, status)  # a failed deploy's own writes: not drift
        if request.reason == ROUND and status is not None and not status.drift:
            listing = ctx.state.listing(rendered.env.target)
            if listing is not None:
                listed = StackState(stack=stack, services=tuple(listing.get(stack, ())), objects=())
                plan = make_plan(
                    rendered.desired, listed, baselines, prune=False, heal=False, unsettled=left
                )
                if not plan.drifted:
                    return  # as of the round's listing nothing drifted, and nothing to undo
        swarm = ctx.swarm_for(rendered.env.target)
        # Drift is a matter of services (plan.drifted): list them alone, one Docker call
        # instead of three (services, configs, secrets).
        observed = StackState(stack=stack, services=tuple(swarm.services(stack)), objects=())
        plan = make_plan(
            rendered.desired, observed, baselines, prune=False, heal=False, unsettled=left
        )
        drifted = plan.drifted
        recorder = ctx.reconciler.recorder  # every status and notification goes there
        if not drifted:
            if status is not None and status.drift:
                recorder.drift_cleared(app, env, rendered.revision, sorted(status.drift))
            ctx.state.heal_settled(app, env)
            return
        details = {c.service: c.as_dict() for c in drifted}
        summary = "; ".join(drift_text(c.as_dict()) for c in drifted)
        recorder.drift_detected(app, env, rendered.revision, details, summary)
        if not ctx.policy(app, env).self_heal:
            return
        if not any(c.healable for c in drifted):
            # Swarm rolled back what gitswarm deployed: a heal would deploy again the
            # spec Swarm just rolled back (a redeploy loop of a broken revision).
            return
        if not ctx.state.admit_heal(app, env):
            if ctx.state.first_heal_alert(app, env):
                limit, window = ctx.state.heal_limits
                text = (
                    f"drift keeps coming back ({limit} heals within "
                    f"{window:.0f}s): self-heal paused; {summary}"
                )
                recorder.heal_paused(app, env, rendered.revision, text)
            return
        outcome = ctx.reconciler.sync(
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
                reverts=summary,
            )
        )
        self.after_sync(outcome)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def drift_text(change: Mapping[str, Any]) -> str:
    """``worker (deploy.replicas: 1 -> 3)``, values shortened, for messages."""
    fields = ", ".join(
        f"{d['field']}: {_short(d['before'])} -> {_short(d['after'])}"
        for d in change.get("drift", [])
    )
    note = change.get("note") or ""
    if not fields and note == "missing":
        fields = "service removed"
    elif note and note != "missing":
        fields = f"{fields}; {note}" if fields else note
    return f"{change['service']} ({fields})"


__all__ = ["ROUND", "Drift", "drift_text"]
