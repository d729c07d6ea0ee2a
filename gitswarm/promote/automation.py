"""The agent's promotion timer: image automation, automatic promotion, holds, expiry.

``Automation.tick(now)`` does one round and says what it did (a list of ``Action``);
``start_automation`` runs it on a thread until a stop event, as `gitswarm serve` starts
retention. One agent acts per store: each round first takes the store lock
``promotion-automation`` (so a standby agent, or a second agent on one PostgreSQL,
does nothing).

A round, in order:

1. **Expiry**: pending promotions older than their target's ``expires`` end.
2. **Holds**: every successful rollback (by the agent's automatic rollback, the CLI or
   the API) of the last day becomes a hold on its app and environment, once, holding
   the tags it rolled back (tags of the revision rolled back from that differ from the
   revision rolled back to). A rollback wins: while a hold is active, neither of the
   next two steps touches that app in that environment with a held tag. A person
   releases it (`gitswarm hold release ID`, the API, or a manual `gitswarm promote`);
   a tag newer than the held one releases it by itself.
3. **Image automation** (Flux-style): for each ``image_automation`` entry whose interval
   is up, the registry's tags (promote/registry.py; rate limits respected), the newest
   under its policy (core/tags.py); when it is newer than what Git has, it is
   committed with the promotion commit's message and trailers (the target's policy and
   window gates apply). The agent's poll then deploys it.
4. **Automatic promotion**: for each environment with ``auto: true``, when the source
   runs other tags than the target and has soaked long enough, a promotion is made as
   ``gitswarm promote`` would (with approvals it waits as pending, once).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gitswarm.errors import GitswarmError, PromotionError, Reason, RegistryError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import RepoConfig
from gitswarm.model.promotion import Hold
from gitswarm.promote.core.edits import current_images
from gitswarm.promote.core.settings import (
    ImageAutomation,
    PromotionSettings,
    promotion_settings,
)
from gitswarm.promote.pipeline import AUTOMATION_USER, Promoter, PromoteRequest
from gitswarm.promote.registry import RateLimited, RegistryClient
from gitswarm.store import Store

log = logging.getLogger("gitswarm.promote.automation")

LOCK = "promotion-automation"
HOLD_LOOKBACK = dt.timedelta(days=1)
RETRY_FAILED = 600.0  # seconds before a failed automatic promotion is tried again


@dataclass(frozen=True)
class Action:
    """One thing a round did (or chose not to do, and why)."""

    kind: str  # expired | hold | released | committed | pending | skipped | failed | waiting
    app: str
    env: str
    message: str
    reason: Reason | None = None
    revision: str | None = None  # committed: the commit the round pushed


def deploy_requests(actions: Iterable[Action]) -> list[TriggerRequest]:
    """The syncs the agent should run for a round's commits, each naming the commit it
    was made for: an unnamed sync deploys whatever head the agent knows when it runs
    (the one before this commit, or a later commit) under this commit's message. As
    Flux's Kustomization names the source revision it applies, never "latest". A
    later commit is the git task's to find (syncs.py looks at Git after a named
    revision that is not the head it knew)."""
    return [
        TriggerRequest(trigger="agent", app=a.app, env=a.env, revision=a.revision, reason=a.message)
        if a.revision
        else TriggerRequest(trigger="agent", reason=a.message)  # no commit known: look at Git
        for a in actions
        if a.kind == "committed"
    ]


@dataclass
class Automation:
    promoter: Promoter
    registry: RegistryClient = field(default_factory=RegistryClient)
    holder: str = "gitswarm-automation"
    lease: float = 60.0
    # Shared with the API's PromotionService: a round and a request never interleave.
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Timers on the monotonic clock (a step of the wall clock neither fires nor stalls
    # them): when each image automation is due, when each automatic promotion was tried.
    _due: dict[tuple[str, str], float] = field(default_factory=dict, init=False)
    _tried: dict[tuple[str, str], tuple[frozenset[tuple[str, str]], float]] = field(
        default_factory=dict, init=False
    )
    _said: set[tuple[str, str, str]] = field(default_factory=set, init=False)

    @property
    def store(self) -> Store:
        return self.promoter.store

    def _monotonic(self) -> float:
        return self.promoter.reconciler.clock.monotonic()

    def tick(self, now: dt.datetime | None = None) -> list[Action]:
        with self.lock:
            return self._tick(now or self.promoter.now())

    def _tick(self, now: dt.datetime) -> list[Action]:
        if not self.store.acquire_lock(LOCK, self.holder, self.lease):
            return []
        actions: list[Action] = []
        try:
            if self.promoter.source.remote is not None:
                self.promoter.source.fetch()
            _head, config = self.promoter.config()
            actions += [
                Action("expired", o.app, o.target, o.message, o.reason)
                for o in self.promoter.expire()  # by the store's shared clock
            ]
            actions += self.hold_rollbacks(config, now)
            actions += self.image_automation(config, now)
            actions += self.auto_promotion(config, now)
        finally:
            self.store.release_lock(LOCK, self.holder)
        for action in actions:
            level = logging.WARNING if action.kind == "failed" else logging.INFO
            log.log(level, "%s %s/%s: %s", action.kind, action.app, action.env, action.message)
        return actions

    # --- holds -------------------------------------------------------------------------

    def hold_rollbacks(self, config: RepoConfig, now: dt.datetime) -> list[Action]:
        out: list[Action] = []
        for op in self.store.history(kinds=("rollback",), since=now - HOLD_LOOKBACK, limit=200):
            if op.result != "Succeeded" or op.dry_run:
                continue
            if self.store.hold_of_operation(op.id) is not None:
                continue  # seen in an earlier round (and maybe released since)
            if any(
                h.to_revision == op.revision for h in self.store.holds(op.app, op.env, active=None)
            ):
                continue  # `gitswarm rollback` held it before pushing its commit
            images: dict[str, str] = {}
            try:
                before = self._images_at(op.app, op.env, op.previous_revision)
                after = self._images_at(op.app, op.env, op.revision)
                images = {r: t for r, t in before.items() if after.get(r) != t}
            except GitswarmError as exc:
                log.warning("hold for rollback %d: cannot read its tags: %s", op.id, exc.message)
            hold, created = self.store.create_hold(
                op.app,
                op.env,
                reason=f"rolled back by {op.actor or op.trigger} (operation {op.id}): {op.message}"[
                    :500
                ],
                created_by=AUTOMATION_USER,
                images=images,
                operation_id=op.id,
                from_revision=op.previous_revision,
                to_revision=op.revision,
            )
            if created:
                held = ", ".join(f"{r}:{t}" for r, t in sorted(images.items())) or "its revision"
                out.append(
                    Action("hold", op.app, op.env, f"hold {hold.id}: {held} stays rolled back")
                )
        return out

    def _images_at(self, app: str, env: str, revision: str | None) -> dict[str, str]:
        if not revision:
            return {}
        rendered = self.promoter.reconciler.render(app, env, revision)
        return current_images(rendered.desired)

    # --- image automation --------------------------------------------------------------

    def image_automation(self, config: RepoConfig, now: dt.datetime) -> list[Action]:
        out: list[Action] = []
        for env in config.environments:
            try:
                settings = promotion_settings(config, env.name)
            except GitswarmError as exc:
                out += self._once("failed", "*", env.name, exc.message, exc.reason)
                continue
            for entry in settings.image_automation:
                key = (env.name, entry.repository)
                mono = self._monotonic()
                if self._due.get(key, mono) > mono:
                    continue
                self._due[key] = mono + entry.interval.total_seconds()
                out += self._automate(config, env.name, entry)
        return out

    def _automate(self, config: RepoConfig, env: str, entry: ImageAutomation) -> list[Action]:
        try:
            tags = self.registry.tags(entry.repository)
        except RateLimited as exc:
            return self._once("waiting", "*", env, exc.message, exc.reason)
        except RegistryError as exc:
            return self._once("failed", "*", env, exc.message, exc.reason)
        try:
            newest = entry.policy.newest(tags)
        except ValueError as exc:  # a filter pattern that runs too long on some tag
            return self._once("failed", "*", env, str(exc), PromotionError.reason)
        if newest is None:
            return self._once(
                "waiting", "*", env, f"no tag of {entry.repository} matches its policy"
            )
        out: list[Action] = []
        apps = entry.apps or tuple(a.name for a in config.apps_for(env))
        head = self.promoter.source.head()
        for app in apps:
            try:
                running = self._images_at(app, env, head)
            except GitswarmError as exc:
                out += self._once("failed", app, env, exc.message, exc.reason)
                continue
            current = running.get(entry.repository)
            if current is None or current == newest or not entry.policy.newer(newest, current):
                continue
            # A rollback may have landed since this round began: it wins.
            out += self.hold_rollbacks(config, self.promoter.now())
            holds = self.store.holds(app, env)
            if self._held(holds, {entry.repository: newest}, entry):
                out += self._once(
                    "skipped",
                    app,
                    env,
                    f"{entry.repository}:{newest} is held after a rollback (hold "
                    f"{', '.join(str(h.id) for h in holds)}); push a newer tag or run "
                    "`gitswarm hold release`",
                    PromotionError.HOLD_ACTIVE,
                )
                continue
            out += self._release(holds, app, env, f"new tag {entry.repository}:{newest}")
            outcome = self.promoter.promote(
                PromoteRequest(
                    app,
                    "registry",
                    env,
                    actor=AUTOMATION_USER,
                    trigger="agent",
                    automation={entry.repository: newest},
                )
            )
            kind = "committed" if outcome.result == "Committed" else "failed"
            if outcome.result == "Unchanged":
                kind = "skipped"
            out.append(Action(kind, app, env, outcome.message, outcome.reason, outcome.commit))
        return out

    def _held(
        self, holds: Iterable[Hold], images: Mapping[str, str], entry: ImageAutomation | None
    ) -> bool:
        """Whether any of ``images`` is held: the same tag, or (image automation, which
        can order tags) a tag not newer than the held one. A hold without tags holds
        everything until a person releases it or (image automation) a newer tag comes."""
        for hold in holds:
            if not hold.images and entry is None:
                return True
            for repo, tag in images.items():
                held = hold.images.get(repo)
                if held is None:
                    continue
                if tag == held or (entry is not None and not entry.policy.newer(tag, held)):
                    return True
        return False

    def _release(self, holds: Iterable[Hold], app: str, env: str, why: str) -> list[Action]:
        out = []
        for hold in holds:
            if self.store.release_hold(hold.id, AUTOMATION_USER, f"released by {why}"):
                out.append(Action("released", app, env, f"hold {hold.id} released by {why}"))
        return out

    # --- automatic promotion -----------------------------------------------------------

    def auto_promotion(self, config: RepoConfig, now: dt.datetime) -> list[Action]:
        out: list[Action] = []
        for env in config.environments:
            try:
                settings = promotion_settings(config, env.name)
            except GitswarmError:
                continue  # said by image_automation already
            if not settings.auto or settings.source is None:
                continue
            in_source = {a.name for a in config.apps_for(settings.source)}
            for app in config.apps_for(env.name):
                if app.name not in in_source:
                    continue
                out += self._auto(app.name, settings.source, env.name, settings, now)
        return out

    def _auto(
        self, app: str, source: str, target: str, settings: PromotionSettings, now: dt.datetime
    ) -> list[Action]:
        status = self.store.get_status(app, source)
        if status is None or status.sync != "Synced" or status.health != "Healthy":
            return []
        try:
            found = self.promoter.check_source(app, source)
            head = self.promoter.source.head()
            running = self._images_at(app, target, head)
        except GitswarmError as exc:
            return self._once("waiting", app, target, exc.message, exc.reason)
        wanted = {r: t for r, t in found.images.items() if r in running and running[r] != t}
        if not wanted:
            return []
        soak = settings.gates.source_healthy_for
        if soak and (found.healthy_for is None or found.healthy_for < soak):
            return []  # the soak gate would fail: wait quietly
        out = self.hold_rollbacks(self.promoter.config()[1], now)
        holds = self.store.holds(app, target)
        if self._held(holds, wanted, None):
            return out + self._once(
                "skipped",
                app,
                target,
                "held after a rollback: " + ", ".join(f"{r}:{t}" for r, t in wanted.items()),
                PromotionError.HOLD_ACTIVE,
            )
        images = frozenset(wanted.items())
        tried = self._tried.get((app, target))
        if tried is not None and tried[0] == images and self._monotonic() - tried[1] < RETRY_FAILED:
            return out
        for pending in self.store.pending_promotions(app, target):
            if dict(pending.images) == wanted:
                return out
        released = self._release(
            holds, app, target, "new tags " + ", ".join(sorted(wanted.values()))
        )
        outcome = self.promoter.promote(
            PromoteRequest(app, source, target, actor=AUTOMATION_USER, trigger="agent")
        )
        self._tried[(app, target)] = (images, self._monotonic())
        kind = {"Committed": "committed", "Pending": "pending"}.get(outcome.result, "failed")
        if outcome.result == "Unchanged":
            kind = "skipped"
        done = Action(kind, app, target, outcome.message, outcome.reason, outcome.commit)
        return [*out, *released, done]

    def _once(
        self, kind: str, app: str, env: str, message: str, reason: Reason | None = None
    ) -> list[Action]:
        """An action that would repeat every round is reported once until it changes."""
        key = (app, env, message)
        if key in self._said:
            return []
        self._said.add(key)
        if len(self._said) > 1000:
            self._said.clear()
        return [Action(kind, app, env, message, reason)]


def start_automation(
    automation: Automation,
    stop: threading.Event,
    every: float = 30.0,
    on_actions: Callable[[list[Action]], None] | None = None,
) -> threading.Thread:
    """Run ``automation.tick`` every ``every`` seconds until ``stop`` is set. The hook
    for the agent: `gitswarm serve` calls this next to ``start_retention``;
    ``on_actions`` (e.g. the agent's ``trigger``, to deploy a commit at once) gets
    each round's actions."""

    def loop() -> None:
        while not stop.wait(every):
            try:
                actions = automation.tick()
            except GitswarmError as exc:
                log.warning("promotion automation: %s; trying again next round", exc.message)
                continue
            except Exception:
                log.exception("promotion automation round failed")
                continue
            if actions and on_actions is not None:
                on_actions(actions)

    thread = threading.Thread(target=loop, name="gitswarm-promotion", daemon=True)
    thread.start()
    return thread


__all__ = ["LOCK", "Action", "Automation", "deploy_requests", "start_automation"]
