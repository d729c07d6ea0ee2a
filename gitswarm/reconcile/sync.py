"""One sync of one application in one environment: the agent's loop, once.

    fetch -> verify -> render -> validate -> plan -> apply -> wait -> record -> notify

``Reconciler.sync`` reads top to bottom like that list. Whatever happens, the outcome is
recorded on the way out (``finally``), in one place: history, the app status, metrics and
the notification (reconcile/record.py's Recorder). Bad input (render, validation,
policy) stops before any Docker write and before an operation starts; a failed deploy
is recorded with its stable reason; the sync lock (one sync per app and environment) is
always released. Called by cli/ (sync, rollback, bootstrap) and by the agent
(reconcile/agent/). Its requests and answers are outcome.py's; rendering is
rendering.py's; applying and waiting are apply.py's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Generic

from gitswarm import store as stores  # lazy: SQLAlchemy loads on the first sync_lock
from gitswarm.errors import GitswarmError, Reason, SecretError, UsageError, WindowClosed
from gitswarm.model.config import Environment, RepoConfig, SyncPolicy, Target, VerifySettings
from gitswarm.model.reads import StatusReads
from gitswarm.model.tree import Tree
from gitswarm.notify import Notifier
from gitswarm.plan import Plan, deployable_compose
from gitswarm.policy import raise_for_violations
from gitswarm.policy.floor import PolicyLayer
from gitswarm.policy.rego import RegoEvaluator
from gitswarm.reconcile.apply import (
    Clock,
    Progress,
    Stopping,
    apply_plan,
    collect_garbage,
    follow_rollout,
)
from gitswarm.reconcile.baselines import plan_recorded, save_baselines
from gitswarm.reconcile.journal import Journal
from gitswarm.reconcile.outcome import Rendered, RollbackOf, SyncOutcome, SyncRequest, drift_summary
from gitswarm.reconcile.policylayers import PolicyLayers, audit_let_through, with_loosening
from gitswarm.reconcile.record import Recorder
from gitswarm.reconcile.rendering import StackRenderer, input_digest, reads_commit
from gitswarm.reconcile.settings import Loaded, settings_at
from gitswarm.reconcile.targeting import check_target, secret_created, target_table
from gitswarm.render import to_yaml
from gitswarm.render.inputs import RecordingTree
from gitswarm.render.secrets import Identity
from gitswarm.sandbox.rego import RegoSandbox
from gitswarm.source.keys import load_identity
from gitswarm.source.providers import ProviderSet
from gitswarm.source.repo import CommitInfo, RepoSource
from gitswarm.source.tree import GitTree
from gitswarm.source.verdicts import settings_in_force
from gitswarm.source.verify import Verifier
from gitswarm.swarm.port import Swarm
from gitswarm.swarm.targets import TargetTable

if TYPE_CHECKING:  # metrics: the agent's only; Store: status reads through store/quick.py
    from typing_extensions import TypeVar

    from gitswarm.reconcile.metrics import Metrics
    from gitswarm.store import Store

    # What the Reconciler reads and writes through: a ``Store`` unless said otherwise
    # (``Reconciler`` alone means ``Reconciler[Store]``). ``gitswarm status`` makes a
    # ``Reconciler[LocalReads]`` (store/quick.py): it renders and reads, and mypy refuses
    # any call of a method that records (those take ``self: Reconciler[Store]``).
    StoreT = TypeVar("StoreT", bound=StatusReads, default=Store)
else:  # the default is a type checker's matter (PEP 696); at run time a plain TypeVar
    from typing import TypeVar

    StoreT = TypeVar("StoreT")

log = logging.getLogger("gitswarm.sync")


# The sync lock's lease: short, so a dead holder frees it soon; renewed while syncing.
SYNC_LEASE = 30.0


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Reconciler(Generic[StoreT]):
    """The sync pipeline with its edges passed in (no module globals)."""

    source: RepoSource
    store: StoreT
    swarm_for: Callable[[Target], Swarm]
    notifier: Notifier | None = None
    metrics: Metrics | None = None  # the agent's (the CLI keeps none)
    clock: Clock = field(default_factory=Clock)
    progress: Progress = lambda _msg: None
    holder: str = field(default_factory=holder_id)
    identity_for: Callable[[RepoConfig, Environment], Identity | None] | None = None
    # Where the operator put the age identities: the agent config's `identities:`
    # (environment -> key file) and `project:` (whose keys dir, $GITSWARM_KEYS_DIR/
    # <project>/, is read). Never a commit's choice: see key_project.
    identities: Mapping[str, Path] = field(default_factory=dict)
    project: str | None = None
    verifier: Verifier = field(default_factory=Verifier)
    # Signed-commit settings per environment from the agent's own config: they decide
    # over any `verify:` in Git (source/verdicts.py's settings_in_force).
    pinned_verify: Mapping[str, VerifySettings] = field(default_factory=dict)
    # The policy floor per environment from the agent's own config: rules no commit can
    # loosen (policy/floor.py). Besides it, a commit is always checked under the policies
    # of the revision deployed last too (policy_layers).
    pinned_policies: Mapping[str, PolicyLayer] = field(default_factory=dict)
    # The operator's targets (swarm/targets.py): which endpoint a target name means, and
    # which environments may deploy to it. None: those of ``swarm_for`` (a SwarmPool).
    targets: TargetTable | None = None
    # The operator's secret providers (source/providers.py); none unless configured.
    providers: ProviderSet = field(default_factory=ProviderSet)
    # Evaluates policies/*.rego: in bounded child processes (started on first use).
    rego: RegoEvaluator = field(default_factory=RegoSandbox)
    # How long a sync whose process died keeps others out (serve: 2 x lease_ttl).
    sync_lease: float = SYNC_LEASE
    # Records the store refused, kept in order until it takes them (journal.py).
    journal: Journal = field(default_factory=Journal)
    # The settings of the last few revisions: load_config is a pure function of the
    # commit, and a commit syncs every app x env at one revision. Read once per revision,
    # not once per app (in a repository of 100 apps, re-reading applications/*.yml was
    # 80% of each sync; bench/ issue 7).
    _configs: dict[str, RepoConfig] = field(default_factory=dict, init=False, repr=False)
    # The last settings loaded, with what loading them read (render/inputs.py) and its
    # digest: a revision with the same answers has the same settings (issue 18).
    _loaded: list[Loaded] = field(default_factory=list, init=False, repr=False)
    _configs_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _served: tuple[str, str] | None = field(default=None, init=False, repr=False)
    _served_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @functools.cached_property
    def layers(self) -> PolicyLayers:
        """The policies a revision is checked under besides its own (policylayers.py)."""
        return PolicyLayers(self.pinned_policies, lambda: self.source.git_dir, self.config_at)

    @property
    def recorder(self: Reconciler[Store]) -> Recorder:
        """Where every outcome is written (history, status, metrics, notifications)."""
        return Recorder(self.store, self.source, self.notifier, self.metrics, self.journal)

    # --- the first half: from Git to a validated desired stack (no Docker) -------------

    def key_project(self, config: RepoConfig) -> tuple[str, str]:
        """The project whose keys dir holds the identities, and why that one.

        A commit cannot choose it: renaming ``project:`` in gitswarm.yml to another
        project's name would otherwise decrypt with that project's keys, when one keys dir
        holds several. The agent config's ``project:`` decides; without it, the project of
        the revision this store saw deployed last; only before any deployment the
        commit's own. Fixed for the life of the Reconciler."""
        if self.project is not None:
            return self.project, "the agent config's project:"
        with self._served_lock:
            if self._served is None:
                self._served = self._deployed_project() or (
                    config.project,
                    "gitswarm.yml of the first revision this agent rendered",
                )
            return self._served

    def _deployed_project(self) -> tuple[str, str] | None:
        try:
            statuses = self.store.all_statuses()
        except GitswarmError:
            return None
        for status in sorted(statuses, key=lambda s: s.updated_at, reverse=True):
            revision = status.revision
            if not revision:
                continue
            with contextlib.suppress(GitswarmError):
                project = self.config_at(revision).project
                return project, f"the revision deployed last, {revision[:12]}"
        return None

    def load_identity(
        self, config: RepoConfig, env: Environment
    ) -> tuple[Identity | None, str | None]:
        """``env``'s identity from its own places (source/keys.py), or None and why."""
        if self.identity_for is not None:
            return self.identity_for(config, env), None
        project, why = self.key_project(config)
        try:
            return load_identity(project, env.name, configured=self.identities), None
        except SecretError as exc:
            note = ""
            if project != config.project:
                note = (
                    f"; the keys dir is that of project {project!r} ({why}), not of "
                    f"{config.project!r} as gitswarm.yml now says: a commit cannot move the "
                    "agent to another project's keys. To rename the project, set `project:` "
                    "in the agent config"
                )
            return None, f"{exc}{note}"

    def render(
        self,
        app_name: str,
        env_name: str,
        revision: str | None,
        *,
        verify: bool = False,
        override_window: str | None = None,
        redeploy: bool = False,
    ) -> Rendered:
        """Fetch, verify (when asked: before deploying), render and validate.
        ``redeploy``: ``revision`` is a rollback's target, a revision gitswarm deployed
        before, chosen by the store or a deployer (never by a commit): judged under its
        own policies and the floor, not those of the revision it replaces."""
        self.progress("fetch")
        rev = self.source.resolve(revision) if revision else self.source.head()  # fetch
        commit = self.source.commit_info(rev)
        tree = GitTree(self.source.git_dir, rev)
        config = self.config_at(rev, tree)
        try:
            env = config.environment(env_name)
            app = config.application(app_name)
        except KeyError as exc:
            raise UsageError(f"{exc.args[0]} (in gitswarm.yml at {rev[:12]})") from None
        self.check_target(env)  # a commit cannot move an environment to another swarm
        if verify:
            self._verify(rev, app.name, env)  # verify
        self.progress(f"render {app.name}/{env.name} at {rev[:12]}")
        recording = RecordingTree(tree)  # what it reads: the inputs of this app's render
        renderer = self.renderer(recording, config, commit)
        desired = renderer.render(app.name, env)  # render
        report = renderer.evaluate(  # validate
            desired,
            env,
            now=self.clock.now(),
            override_window=override_window,
            secret_created=secret_created(self.swarm_for, env, desired),
            layers=self.layers.for_revision(
                self.store, app.name, env, rev, renderer.rego(), floor_only=redeploy
            ),
        )
        inputs, commit_read = recording.inputs(), reads_commit(renderer.rego())
        digest = None if commit_read else input_digest(inputs, tree, config, app, env)
        return Rendered(rev, commit, config, app, env, desired, report, inputs, digest)

    def check_target(self, env: Environment) -> None:
        """Refuse a commit that moves ``env`` to a target the operator's pins do not allow."""
        check_target(target_table(self.targets, self.swarm_for), env)

    def renderer(
        self, tree: Tree, config: RepoConfig, commit: CommitInfo | None = None
    ) -> StackRenderer:
        """How this Reconciler renders and judges ``tree`` (reconcile/rendering.py): with
        its own identities; ``commit``: the tree's, when already at hand."""
        return StackRenderer(
            tree,
            config,
            lambda env: self.load_identity(config, env),
            (lambda _sha: commit) if commit is not None else self.source.commit_info,
            self.rego,
            lambda env, refs: self.providers.resolve(env.name, refs),
        )

    def config_at(self, revision: str, tree: GitTree | None = None) -> RepoConfig:
        """The repository settings at commit ``revision`` (``tree``: its tree, if at hand),
        read once."""
        with self._configs_lock:  # held while loading: concurrent syncs wait, not re-read
            config = self._configs.get(revision)
            if config is None:
                tree = tree or GitTree(self.source.git_dir, revision)
                config = settings_at(tree, self._loaded)  # a bad commit raises, none kept
                self._configs[revision] = config
                names = {e.name for e in config.environments}
                for setting, given in (
                    ("verify", self.pinned_verify),
                    ("policies", self.pinned_policies),
                    ("identities", self.identities),
                ):
                    unknown = set(given) - names
                    if unknown:  # a typo would leave the real environment unguarded / keyless
                        log.warning(
                            "the agent's %s: names environments that %s does not have: %s",
                            setting,
                            revision[:12],
                            ", ".join(sorted(unknown)),
                        )
                while len(self._configs) > 4:
                    del self._configs[next(iter(self._configs))]  # the oldest
            return config

    def _verify(self, revision: str, app: str, env: Environment) -> None:
        """The commit must be signed by a trusted key when the environment says so. The
        agent's pinned settings decide, else those of the last deployed revision (a commit
        cannot switch its own check off; see source/verdicts.py's settings_in_force)."""
        pinned = self.pinned_verify.get(env.name)
        trusted = None
        status = self.store.get_status(app, env.name)
        if (
            pinned is None
            and status is not None
            and status.revision
            and status.revision != revision
        ):
            with contextlib.suppress(GitswarmError, KeyError):
                deployed = self.config_at(status.revision)
                trusted = deployed.environment(env.name).verify
        settings = settings_in_force(trusted, env.verify, pinned)
        if settings is None:
            return
        self.progress(f"verify the signature of {revision[:12]}")
        self.verifier.verify(self.source.git_dir, revision, settings)

    # --- the whole pipeline -----------------------------------------------------------

    def sync(self: Reconciler[Store], req: SyncRequest) -> SyncOutcome:
        started = self.clock.monotonic()
        outcome = SyncOutcome(req.app, req.env, req.revision, "Failed", Reason.UNKNOWN)
        op_id: int | None = None  # a started operation, finished by the recorder
        rendered: Rendered | None = None
        planned: list[Plan] = []  # the plan, once made: a failed deploy is recorded with it
        stopping = False
        try:
            with (
                self.store.lock(
                    stores.sync_lock(req.app, req.env),
                    self.holder,
                    ttl_seconds=self.sync_lease,
                    wait=req.lock_wait,
                ) as lease,
                lease.kept_alive(self.sync_lease / 3),
            ):
                # A previous holder that died (kill -9) left its operation Running.
                self.store.mark_interrupted(app=req.app, env=req.env, exclude_holder=self.holder)
                rendered = self.render(  # fetch, verify, render, validate
                    req.app,
                    req.env,
                    req.revision,
                    verify=not req.dry_run,
                    override_window=req.override_window,
                    redeploy=req.rollback_of is not None,
                )
                if rendered.policy is not None:
                    raise_for_violations(rendered.policy)  # before any operation starts
                if not req.dry_run:  # what the gate let through, and why
                    audit_let_through(self.store, req, rendered, req.actor or self.holder)
                op_id = self._start(req, rendered)
                outcome = self._deploy(req, rendered, op_id, planned)  # plan, apply, wait
                outcome = with_loosening(outcome, rendered)
        except GitswarmError as exc:
            outcome = replace(
                outcome,
                revision=rendered.revision if rendered else outcome.revision,
                result="Failed",
                reason=exc.reason,
                message=exc.message,
                problems=exc.problems,
                exit_code=exc.exit_code,
                operation_id=op_id,
                plan=planned[-1] if planned else None,
                policy=rendered.policy if rendered else None,
                retry_at=_window_opens(rendered) if isinstance(exc, WindowClosed) else None,
            )
        except Stopping:  # SIGTERM: left Running, lock released (apply.py); no outcome
            stopping = True
            raise
        finally:
            if not stopping:
                outcome = replace(outcome, rendered=rendered)
                seconds = self.clock.monotonic() - started
                outcome = self.recorder.finished(req, outcome, op_id, seconds)  # record, notify
        return outcome

    def _start(self: Reconciler[Store], req: SyncRequest, rendered: Rendered) -> int:
        last = self.store.get_status(req.app, req.env)
        return self.store.start_operation(
            req.kind,
            req.app,
            req.env,
            holder=self.holder,
            trigger=req.trigger,
            actor=req.actor,
            revision=rendered.revision,
            previous_revision=last.revision if last else None,
            author=rendered.commit.author,
            commit_time=dt.datetime.fromisoformat(rendered.commit.committed_at),
            dry_run=req.dry_run,
            message=req.message,
        )

    def _deploy(
        self: Reconciler[Store], req: SyncRequest, r: Rendered, op_id: int, planned: list[Plan]
    ) -> SyncOutcome:
        policy = r.config.sync_policy(r.app, r.env)
        base = SyncOutcome(
            req.app, req.env, r.revision, "Failed", operation_id=op_id, policy=r.policy
        )
        if (
            not req.force_bad
            and not req.dry_run
            and self.store.is_bad(req.app, req.env, r.revision)
        ):
            return replace(
                base,
                result="Skipped",
                reason=Reason.REVISION_MARKED_BAD,
                message=f"revision {r.revision[:12]} failed before and was rolled back; "
                "waiting for a new commit (or sync it explicitly with --revision)",
            )
        swarm = self.swarm_for(r.env.target)
        self.progress("plan")
        observed = swarm.observe(r.desired.stack)  # plan
        plan = plan_recorded(self.store, r.desired, observed, prune=policy.prune, heal=req.heal)
        planned.append(plan)
        base = replace(base, plan=plan)
        if req.dry_run:
            return replace(base, result="Succeeded", message="dry run: nothing was changed")
        if plan.empty:
            # Finish a GC a kill -9 cut short (from what was observed: no extra read).
            keep = policy.keep_versions
            collect_garbage(swarm, r.desired, keep=keep, progress=self.progress, observed=observed)
            return replace(base, result="Succeeded", message="already in sync: nothing to do")
        since = self.clock.now()
        compose = to_yaml(replace(r.desired, compose=deployable_compose(r.desired, plan.to_deploy)))
        self.clock.checkpoint()  # nothing applied yet: a stopping agent applies nothing
        apply_plan(  # apply
            swarm,
            plan,
            compose if plan.to_deploy else None,
            resolve_image=policy.resolve_image,
            progress=self.progress,
        )
        rollout = follow_rollout(  # read what was applied, wait
            swarm,
            r.desired,
            plan.to_deploy,
            wait=req.wait,
            since=since,
            timeout=policy.health_timeout,
            clock=self.clock,
            progress=self.progress,
        )
        verdict, live = rollout.verdict, rollout.services
        drifted = save_baselines(self.store, swarm, r.desired, plan, rollout.applied, live=live)
        collect_garbage(  # from the stack as last read
            swarm, r.desired, keep=policy.keep_versions, progress=self.progress, clock=self.clock,
            services=live,
        )  # fmt: skip
        deployed = ", ".join(plan.to_deploy) or "none"
        removed = ", ".join(c.service for c in plan.to_remove) or "none"
        message = f"deployed: {deployed}; removed: {removed}"
        if drifted:
            message += "; changed on the swarm during the sync: " + drift_summary(drifted)
        return replace(base, result="Succeeded", verdict=verdict, message=message, drifted=drifted)


def _window_opens(rendered: Rendered | None) -> dt.datetime | None:
    window = rendered.policy.window if rendered and rendered.policy else None
    return window.next_open if window is not None else None


__all__ = ["Reconciler", "Rendered", "RollbackOf", "SyncOutcome", "SyncPolicy", "SyncRequest"]
