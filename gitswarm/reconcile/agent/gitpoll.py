"""The git task: ask the remote for the followed branch's head; when it moved, queue a
sync of every automated app x env at that head.

Triggered by the poll timer (jittered, backing off while the remote fails), by webhooks
and the API (api/), and once when an agent becomes leader. A poll with nothing new costs
one ``git ls-remote`` and nothing else: no fetch, no render, no Docker call. A remote that
is down keeps the last known state (shown with every status: view.py), never fails a
deployment. The syncs of apps whose files the commit touched go first (queue.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace

from gitswarm.errors import GitswarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.repo import load_config
from gitswarm.source.tree import GitTree

log = logging.getLogger("gitswarm.agent")


class GitPoll:
    def __init__(self, ctx: AgentContext) -> None:
        self.source, self.settings, self.state = ctx.source, ctx.settings, ctx.state
        self.metrics = ctx.metrics

    def check(self, request: TriggerRequest) -> None:
        try:
            head, fetched = self.source.poll()
        except GitswarmError as exc:
            self.state.fetch_failed(exc)
            self.metrics.git_fetch_errors.inc()
            log.warning("git remote unreachable (%s); keeping the last state", exc.message)
            return
        self.metrics.git_polls.labels("yes" if fetched else "no").inc()
        previous = self.state.fetched(head)
        if head == previous:
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
            known = self.state.config
            if known is None:
                return
            config = known
        self.state.set_config(config)
        syncs = [
            (
                ("sync", app.name, env.name),
                replace(request, app=app.name, env=env.name, revision=head),
                changed is None or touches(changed, app.files_for(env.name), env.path),
            )
            for env in config.environments
            if self.settings.watches(env.name)
            for app in config.apps_for(env.name)
            if config.sync_policy(app, env).automated
        ]
        self.state.put_all(syncs)


def touches(changed: set[str], files: Sequence[str], env_path: str) -> bool:
    """Whether a commit's changed files may change an app's render in an environment (a
    cheap guess used for ordering only: every app is synced either way)."""
    shared = ("gitswarm.yml", "applications/", "policies/", env_path + "/")
    return any(f in files or f.startswith(shared) for f in changed)


__all__ = ["GitPoll", "touches"]
