"""The git task: ask the remote for the followed branch's head; when it moved, queue a
sync of every automated app x env at that head. After each poll it records what it saw
(the head, the apps x environments watched there, or the poll's error) in the store, for
``gitswarm status`` to read (store/source.py).

Triggered by the poll timer (jittered, backing off while the remote fails), by webhooks
and the API (api/), and once when an agent becomes leader. A poll with nothing new costs
one ``git ls-remote`` and nothing else: no fetch, no render, no Docker call. A remote that
is down keeps the last known state (shown with every status: view.py), never fails a
deployment. The syncs of apps whose files the commit touched go first (queue.py).

Apps whose inputs did not change are not synced at all (issue 18): an app deployed and
Synced at revision D, whose render at D read files and settings (render/inputs.py,
reconcile/rendering.py) that are the same at the new head, renders the same stack there.
Its status moves to the head in one write for all such apps (Recorder.unchanged) and
its cached render serves the drift checks: no render, no Docker call (an app without
automated sync moves too: its deployed revision renders what Git says). A new agent (a
restart, a new leader) has no render in memory: it takes what the store says the
deployed render read and its digest (``AppStatus.render_inputs``/``render_digest``,
written with every successful deploy, forgotten with any other change of the deployed
revision), unless an operation of the app was left unfinished since. An app this agent
already deployed at the new head (a sync of Git's newest commit that the dashboard asked
for before the poll saw it: syncs.py then asks Git) is left as it is. Every other app
— its inputs changed, or its status is not a success at D (failed, held by a closed
window, drifted, rolled back, deployed at another revision by hand), or its
environment checks signatures, or a policy reads the commit, or records wait in the
journal — syncs as before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from gitswarm.errors import GitswarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import RepoConfig
from gitswarm.model.operation import AppStatus
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.reconcile.agent.queue import Key
from gitswarm.reconcile.outcome import Rendered
from gitswarm.reconcile.rendering import DigestMemo, input_digest, stored_digest
from gitswarm.render.inputs import Inputs
from gitswarm.source.tree import GitTree
from gitswarm.store import AGENT_LOCK

log = logging.getLogger("gitswarm.agent")

Work = tuple[Key, TriggerRequest, bool]  # a sync to queue: key, request, urgent
# What the agent_source row says: head, apps (None: not known here), the poll's error.
Seen = tuple[str | None, tuple[tuple[str, str, str], ...] | None, str | None]


class GitPoll:
    def __init__(self, ctx: AgentContext) -> None:
        self.source, self.settings, self.state = ctx.source, ctx.settings, ctx.state
        self.metrics, self.store, self.reconciler = ctx.metrics, ctx.store, ctx.reconciler
        self.holder = ctx.holder
        # What this agent last wrote to agent_source: (head, apps, error); None: nothing
        # yet, or it became leader again (another agent may have written since).
        self._recorded: Seen | None = None
        self._apps: tuple[tuple[str, str, str], ...] | None = None  # kept over forget()

    def forget(self) -> None:
        """The store's agent_source row may not be ours any more: the next poll writes
        it whole (the apps this agent watches too)."""
        if self._recorded is not None and self._recorded[1] is not None:
            self._apps = self._recorded[1]
        self._recorded = None

    def check(self, request: TriggerRequest) -> None:
        try:
            head, fetched = self.source.poll()
        except GitswarmError as exc:
            self.state.fetch_failed(exc)
            self.metrics.git_fetch_errors.inc()
            log.warning("git remote unreachable (%s); keeping the last state", exc.message)
            self._record(None, error=exc.message)
            return
        self.metrics.git_polls.labels("yes" if fetched else "no").inc()
        previous = self.state.fetched(head)
        if head == previous:
            self._record(head)
            return  # nothing new: no render, no Docker call
        changed: set[str] | None = None  # None: unknown, every app may be touched
        if previous is not None:
            with contextlib.suppress(GitswarmError):
                changed = set(self.source.changed_files(previous, head))
        tree: GitTree | None = None
        try:
            tree = GitTree(self.source.git_dir, head)
            config = self.reconciler.config_at(head, tree)  # read once: the syncs reuse it
        except GitswarmError as exc:
            # A broken gitswarm.yml: each application syncs anyway, so the error is
            # recorded in its history and status (and notified) and nothing is applied.
            log.warning("gitswarm.yml at %s is invalid: %s", head[:12], exc.message)
            known = self.state.config
            if known is None:
                self._record(head, apps=())
                return
            config, tree = known, None  # and no app is passed by: each records the error
        self.state.set_config(config)
        # Every watched app x env: the automated ones sync; every one whose inputs are the
        # same at the head moves there (so a manual-sync app stays Synced in the store).
        works: list[Work] = [
            (
                ("sync", app.name, env.name),
                replace(request, app=app.name, env=env.name, revision=head),
                changed is None or touches(changed, app.files_for(env.name), env.path),
            )
            for env in config.environments
            if self.settings.watches(env.name)
            for app in config.apps_for(env.name)
        ]
        automated = {
            (app.name, env.name)
            for env in config.environments
            for app in config.apps_for(env.name)
            if config.sync_policy(app, env).automated
        }
        # Recorded before the syncs are queued: status shows the head, and until each
        # sync ends (or the app is moved, unchanged), an app whose deployed revision is
        # not there yet (cli/ops.py).
        self._record(
            head,
            apps=[(a, e, config.application(a).stack_name(e)) for _, a, e in (w[0] for w in works)],
        )
        # The apps the commit touched are queued first, their syncs under way while the
        # others (1,000 apps: a second or more) are checked for unchanged inputs.
        memo = DigestMemo()  # apps share files and settings: each answered once
        for part in ([w for w in works if w[2]], [w for w in works if not w[2]]):
            left = part if tree is None else self._changed(head, config, part, tree, memo)
            self.state.put_all([work for work in left if work[0][1:] in automated])

    def _record(
        self,
        head: str | None,
        *,
        apps: Sequence[tuple[str, str, str]] | None = None,
        error: str | None = None,
    ) -> None:
        """What this poll saw, for ``gitswarm status`` (store/source.py), written only
        when it differs from what this agent wrote last: a poll with nothing new writes
        nothing (SPEC 7), so ``polled_at`` is when the head was first seen. A store that
        refuses it costs the status its freshness, never the poll."""
        before = self._recorded
        if apps is None and before is None:
            apps = self._apps  # after forget(): write what this agent watches
        seen = (
            head if error is None else (before[0] if before else None),
            tuple(apps) if apps is not None else (before[1] if before else None),
            error,
        )  # what the row says once written (store/source.py keeps head/apps not given)
        if seen == before:
            return
        try:
            self.store.record_source(AGENT_LOCK, self.holder, head=head, apps=apps, error=error)
        except GitswarmError as exc:
            log.warning("could not record the poll of %s: %s", (head or "?")[:12], exc.message)
            self._recorded = None  # the row is not known: write again next time
            return
        self._recorded = seen

    def _changed(
        self, head: str, config: RepoConfig, syncs: list[Work], tree: GitTree, memo: DigestMemo
    ) -> list[Work]:
        """The syncs to run: those of apps whose inputs at ``head`` are not the same as
        at their deployed revision (the module docstring); the others move on at once."""
        if not syncs or self.reconciler.journal.backlog() is not None:
            return syncs  # records wait: the store may not say yet what is deployed
        try:
            statuses = {(s.app, s.env): s for s in self.store.all_statuses()}
        except GitswarmError:
            return syncs
        pinned = self.reconciler.pinned_verify
        unfinished: dict[tuple[str, str], int] | None = None  # read when first needed
        there: set[tuple[str, str]] = set()
        same: dict[tuple[str, str], tuple[str, Rendered | None]] = {}
        for work in syncs:
            _, app, env = work[0]
            status = statuses.get((app, env))
            if status is None or not status.revision or status.drift:
                continue
            if (status.sync, status.health, status.last_result) != (
                "Synced",
                "Healthy",
                "Succeeded",
            ):
                continue
            if self.state.busy(app, env):
                continue
            cached = self.state.render_of(app, env, status.revision)
            if cached is not None:
                if status.revision == head:
                    there.add((app, env))  # deployed at this head already (a user's sync)
                elif unchanged_at(cached, tree, config, memo, pinned):
                    same[(app, env)] = (status.revision, cached)
                continue
            # No render in memory (a new agent): what the store says the deployed render
            # read — unless an operation a dead agent left after it must be done again.
            if unfinished is None:
                try:
                    unfinished = self.store.unfinished_operations()
                except GitswarmError:
                    return syncs
            if unfinished.get((app, env), 0) > (status.operation_id or 0):
                continue
            if stored_unchanged(status, tree, config, memo, pinned):
                same[(app, env)] = (status.revision, None)
        syncs = [work for work in syncs if work[0][1:] not in there]
        if not same:
            return syncs
        # At the head already (a new agent, the same commit): nothing to move or record.
        skipped = {key for key, (before, _) in same.items() if before == head}
        moves = [(app, env, before) for (app, env), (before, _) in same.items() if before != head]
        moved = self.reconciler.recorder.unchanged(moves, head) if moves else set()
        if moved:
            commit = self.source.commit_info(head)
            for key in moved:
                cached = same[key][1]
                if cached is not None:
                    self.state.remember_render(*key, head, cached.moved_to(head, commit, config))
        skipped |= moved
        if not skipped:
            return syncs
        log.info(
            "%s: %d of %d app syncs skipped, their inputs unchanged", head[:12], len(skipped),
            len(syncs),
        )  # fmt: skip
        return [work for work in syncs if work[0][1:] not in skipped]


def stored_unchanged(
    status: AppStatus,
    tree: GitTree,
    config: RepoConfig,
    memo: DigestMemo,
    pinned_verify: Mapping[str, object],
) -> bool:
    """Whether the render the store says is deployed (``status``: what it read, the
    digest) is also the render at ``tree``'s revision: ``unchanged_at`` for an agent that
    did not render it itself."""
    if status.render_digest is None or status.render_inputs is None:
        return False
    if status.env in pinned_verify:
        return False
    try:
        app, env = config.application(status.app), config.environment(status.env)
    except KeyError:
        return False
    if env.verify is not None:
        return False
    inputs = Inputs(frozenset(status.render_inputs))
    return stored_digest(input_digest(inputs, tree, config, app, env, memo)) == status.render_digest


def unchanged_at(
    rendered: Rendered,
    tree: GitTree,
    config: RepoConfig,
    memo: DigestMemo,
    pinned_verify: Mapping[str, object],
) -> bool:
    """Whether ``rendered`` is also the render at ``tree``'s revision (settings
    ``config``): the same inputs, and no signature to check for a new commit."""
    name = rendered.env.name
    if rendered.digest is None or rendered.inputs is None or name in pinned_verify:
        return False
    try:
        app, env = config.application(rendered.app.name), config.environment(name)
    except KeyError:
        return False
    if env.verify is not None:
        return False
    return input_digest(rendered.inputs, tree, config, app, env, memo) == rendered.digest


def touches(changed: set[str], files: Sequence[str], env_path: str) -> bool:
    """Whether a commit's changed files may change an app's render in an environment (a
    cheap guess used for ordering only: every app is synced either way)."""
    shared = ("gitswarm.yml", "applications/", "policies/", env_path + "/")
    return any(f in files or f.startswith(shared) for f in changed)


__all__ = ["GitPoll", "stored_unchanged", "touches", "unchanged_at"]
