"""Which policies a revision is checked under besides its own (SPEC.md section 5, the
trust model): a commit cannot switch off the checks meant for it.

    the commit's own policies
    + the agent config's floor for the environment  (Reconciler.pinned_policies)
    + the environment's policies and Rego at the revision deployed last, when the commit
      changes them: a loosening applies from the commit after it

policy/floor.py combines the layers (the strictest verdict of each finding wins);
``Reconciler.render`` (reconcile/sync.py) asks ``PolicyLayers.for_revision`` which ones.
A rollback to a revision gitswarm deployed before (chosen by the store or a deployer,
never by a commit) is judged under its own policies and the floor only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gitswarm.errors import GitswarmError
from gitswarm.model.config import Environment, RepoConfig
from gitswarm.model.reads import StatusReads
from gitswarm.policy import settings_for
from gitswarm.policy.floor import PolicyLayer
from gitswarm.reconcile.outcome import Rendered, SyncOutcome, SyncRequest
from gitswarm.repo.policies import rego_sources
from gitswarm.source.tree import GitTree

if TYPE_CHECKING:  # SQLAlchemy loads with the store, not with this module
    from gitswarm.store import Store

log = logging.getLogger("gitswarm.sync")

KEEP_REGO = 4  # revisions whose policies/*.rego are kept read


@dataclass
class PolicyLayers:
    """The floor per environment, and the Rego of the last few deployed revisions (read
    once each, not once per app and sync; its own lock)."""

    floors: Mapping[str, PolicyLayer]
    git_dir: Callable[[], Path]
    config_at: Callable[[str], RepoConfig]
    _rego_at: dict[str, Mapping[str, str]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def for_revision(
        self,
        store: StatusReads,
        app: str,
        env: Environment,
        revision: str,
        rego: Mapping[str, str],
        *,
        floor_only: bool = False,
    ) -> list[PolicyLayer]:
        """The layers ``revision`` of ``app`` is checked under in ``env`` (``rego``: its
        own policies/*.rego)."""
        layers: list[PolicyLayer] = []
        floor = self.floors.get(env.name)
        if floor is not None:
            layers.append(floor)
        if floor_only:
            return layers
        status = store.get_status(app, env.name)
        deployed = status.revision if status is not None else None
        if not deployed or deployed == revision:
            return layers
        try:
            old = self.config_at(deployed).environment(env.name)
            old_rego = self._rego_of(deployed)
            old_settings = settings_for(old)
        except (GitswarmError, KeyError) as exc:  # gone, or unreadable by this version
            log.warning(
                "%s/%s: the policies of %s, deployed last, cannot be read (%s); "
                "checking %s under its own only",
                app, env.name, deployed[:12], getattr(exc, "message", exc), revision[:12],
            )  # fmt: skip
            return layers
        if old.policies == env.policies and old_rego == rego:
            return layers
        label = f"{deployed[:12]}, the revision deployed last"
        changed = old_rego if old_rego != rego else None
        layers.append(PolicyLayer("deployed", label, old_settings, changed))
        return layers

    def _rego_of(self, revision: str) -> Mapping[str, str]:
        with self._lock:
            found = self._rego_at.get(revision)
            if found is None:
                found = rego_sources(GitTree(self.git_dir(), revision))
                self._rego_at[revision] = found
                while len(self._rego_at) > KEEP_REGO:
                    del self._rego_at[next(iter(self._rego_at))]  # the oldest
            return found


def with_loosening(outcome: SyncOutcome, rendered: Rendered) -> SyncOutcome:
    """The outcome's message says which loosening of this commit's policies was held."""
    if rendered.policy is None or not rendered.policy.loosened:
        return outcome
    held = "; ".join(rendered.policy.loosened)
    return replace(
        outcome,
        message=f"{outcome.message}; this commit's policies are looser than those it was "
        f"checked under: {held}",
    )


def audit_let_through(store: Store, req: SyncRequest, rendered: Rendered, actor: str) -> None:
    """Audit what the policy gate let through a sync, before it starts: a loosening of
    this commit's policies that was held (it was checked under the stricter ones), and a
    deployment window overridden with a reason."""
    target = f"{req.app}/{req.env}"
    if rendered.policy is not None and rendered.policy.loosened:
        held = list(rendered.policy.loosened)
        store.audit(actor, "policy-loosening-held", target,
                    {"revision": rendered.revision, "held": held})  # fmt: skip
    if req.override_window:
        store.audit(actor, "override-deployment-window", target,
                    {"revision": rendered.revision, "reason": req.override_window})  # fmt: skip
