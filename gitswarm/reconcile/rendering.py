"""Render and validate one tree: the middle of the loop (SPEC.md section 2), one way.

    tree + its settings + each environment's identity
        -> render_stack (render/)  -> evaluate (policy/: rules, policies/*.rego, input.commit)

``Reconciler.render`` (reconcile/sync.py) runs it on the revision it is about to deploy;
``gitswarm render``, ``validate`` and ``policy check`` (cli/) on the working tree of
``--repo`` or on a ``--revision``, so that a pre-commit check sees exactly what the agent
will deploy and judge. The one thing that differs is where the age identities come
from, and that is passed in (``IdentityLookup``): the agent's configured keys
(``Reconciler.load_identity``), or for a local checkout ``LocalIdentities`` (``--identity``,
else the project's keys dir; source/keys.py).

What a render depends on is digested here too (``input_digest``): the files it read
(render/inputs.py) and the settings it was given. The agent renders an app at a new
revision only when that digest changed (reconcile/agent/gitpoll.py).

No store and no Docker here: ``gitswarm render`` imports this module and must start at
once (tests/unit/test_cli_startup.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gitswarm.errors import SecretError
from gitswarm.model.config import Application, Environment, RepoConfig
from gitswarm.model.policy import PolicyReport
from gitswarm.model.stack import DesiredStack, ProviderRef
from gitswarm.model.tree import Tree
from gitswarm.policy import evaluate
from gitswarm.policy.floor import PolicyLayer
from gitswarm.policy.rego import RegoEvaluator
from gitswarm.render import render_stack
from gitswarm.render.inputs import IdentifiedTree, Inputs
from gitswarm.render.secrets import Identity
from gitswarm.render.stack import ProviderValuesNeeded
from gitswarm.repo.policies import rego_sources
from gitswarm.source.keys import load_identity
from gitswarm.source.repo import CommitInfo

# An environment's identity, or None and why there is none (said by each secret that needs one).
IdentityLookup = Callable[[Environment], tuple[Identity | None, str | None]]
# A commit's author, time and message, by id (RepoSource.commit_info).
CommitLookup = Callable[[str], CommitInfo]
# The values of an environment's provider secrets (source/providers.py ProviderSet.resolve):
# run by the edge that deploys, never by render/.
ProviderLookup = Callable[[Environment, Sequence[ProviderRef]], Mapping[tuple[str, str], bytes]]


def policy_context(commit: CommitInfo) -> dict[str, Any]:
    """What Rego policies read as ``input.commit`` (documented in policy/rego.py); the
    same for `gitswarm sync`, the agent and `gitswarm policy check --revision`."""
    return {
        "commit": {
            "sha": commit.sha,
            "author": commit.author,
            "email": commit.email,
            "message": commit.subject,
            "time": commit.committed_at,
        }
    }


@dataclass
class DigestMemo:
    """What one revision answers for every app (each app asks): the tree's answers
    (render/inputs.py), and per environment the shape of all apps and who deploys to
    which stack. One per (tree, config); the agent checks 1,000 apps with one."""

    answers: dict[tuple[str, str], str] = field(default_factory=dict)
    shapes: dict[str, str] = field(default_factory=dict)  # env -> digest
    stacks: dict[str, dict[str, list[tuple[str, tuple[str, ...]]]]] = field(default_factory=dict)


def settings_digest(
    config: RepoConfig, app: Application, env: Environment, memo: DigestMemo | None = None
) -> str:
    """The settings one app's render and sync in ``env`` depend on: its own declaration
    and its environment's in full (files, sync policy, policies, verify...), the project,
    the targets, and of every other app and environment what a render looks at (names,
    stacks, folders: other environments' objects; the files of an app deploying to the
    same stack). Not where in gitswarm.yml each was written (only error messages use
    that)."""
    memo = memo or DigestMemo()
    shape = memo.shapes.get(env.name)
    stacks = memo.stacks.get(env.name)
    if shape is None or stacks is None:
        shapes = [(a.name, a.stack, a.environments) for a in config.applications]
        folders = [(e.name, e.path, e.target) for e in config.environments]
        text = repr((config.project, sorted(config.targets.items()), folders, shapes))
        shape = memo.shapes[env.name] = hashlib.sha256(text.encode()).hexdigest()
        stacks = memo.stacks[env.name] = {}
        for other in config.applications:
            entry = (other.name, other.files)
            stacks.setdefault(other.stack_name(env.name), []).append(entry)
    sharing = stacks.get(app.stack_name(env.name), [])
    mine = (replace(app, positions={}), replace(env, positions={}))
    return hashlib.sha256(repr((shape, sharing, mine)).encode()).hexdigest()


def stored_digest(digest: str) -> str:
    """``digest`` as the store keeps it with a deployed status: with the gitswarm version
    that rendered it, since another version may render the same inputs differently (a
    new agent then renders every app once)."""
    import gitswarm

    return f"{gitswarm.__version__}:{digest}"


def input_digest(
    inputs: Inputs,
    tree: IdentifiedTree,
    config: RepoConfig,
    app: Application,
    env: Environment,
    memo: DigestMemo | None = None,
) -> str:
    """Everything the render of ``app`` in ``env`` took from the revision of ``tree``
    (whose settings are ``config``), as one hash: equal digests, equal renders. ``memo``:
    shared by the apps checked at one revision."""
    memo = memo or DigestMemo()
    both = f"{inputs.digest(tree, memo.answers)}\0{settings_digest(config, app, env, memo)}"
    return hashlib.sha256(both.encode()).hexdigest()


def reads_commit(rego: Mapping[str, str]) -> bool:
    """Whether a policy may look at ``input.commit`` (then every commit is an input of
    every app: its author or message can change the verdict)."""
    return any("commit" in src or "input[" in src or "walk(" in src for src in rego.values())


@dataclass
class StackRenderer:
    """One tree, rendered and judged the one way gitswarm does it.

    ``commits`` tells who made the tree's revision (``input.commit``); it is asked only
    when a policy is evaluated for a committed revision (a working tree has no commit).
    ``policies/*.rego`` is read once per renderer and evaluated by ``evaluator``: the
    bounded child processes of gitswarm/sandbox (the Reconciler's, or the CLI's own,
    ended by ``close()``).

    ``providers`` resolves provider secrets (the agent and `gitswarm sync`); without it
    (the pre-commit commands) they get placeholder names and no value: nothing the
    operator's providers would print is ever fetched for a render that deploys nothing."""

    tree: Tree
    config: RepoConfig
    identity: IdentityLookup
    commits: CommitLookup
    evaluator: RegoEvaluator
    providers: ProviderLookup | None = None
    _rego: Mapping[str, str] | None = field(default=None, init=False, repr=False)
    _context: Mapping[str, Any] | None = field(default=None, init=False, repr=False)

    def render(self, app: str, env: Environment) -> DesiredStack:
        """``app``'s stack in ``env``; an InputError with every problem when it is bad."""
        identity, why = self.identity(env)
        if self.providers is None:
            return render_stack(self.tree, self.config, app, env.name, identity, no_identity=why)
        try:  # the values first only when the stack is sound and has provider secrets
            return render_stack(
                self.tree, self.config, app, env.name, identity, no_identity=why, provided={}
            )
        except ProviderValuesNeeded as needed:
            values = self.providers(env, needed.refs)
        return render_stack(
            self.tree, self.config, app, env.name, identity, no_identity=why, provided=values
        )

    def rego(self) -> Mapping[str, str]:
        """The repository's policies/*.rego: path -> source. With any, the evaluator's child
        process starts in the background (while the stacks render)."""
        if self._rego is None:
            self._rego = rego_sources(self.tree)
            prestart = getattr(self.evaluator, "prestart", None)
            if self._rego and callable(prestart):
                prestart()
        return self._rego

    def close(self) -> None:
        """End the evaluator's child processes, if this renderer owns them (the CLI's)."""
        close = getattr(self.evaluator, "close", None)
        if callable(close):
            close()

    def context(self) -> Mapping[str, Any] | None:
        """``input.commit`` for a committed revision; a working tree has none."""
        revision = self.tree.revision
        if revision is None:
            return None
        if self._context is None:
            self._context = policy_context(self.commits(revision))
        return self._context

    def evaluate(
        self,
        desired: DesiredStack,
        env: Environment,
        *,
        now: dt.datetime,
        override_window: str | None = None,
        secret_created: Mapping[str, dt.datetime] | None = None,
        layers: Sequence[PolicyLayer] = (),
    ) -> PolicyReport:
        """The policy gate over ``desired`` (policy.evaluate), with this tree's inputs;
        ``secret_created``: when each secret version appeared on the target (the agent's);
        ``layers``: settings the commit cannot loosen (policy/floor.py)."""
        return evaluate(
            desired,
            env,
            rego_sources=self.rego(),
            now=now,
            context=self.context(),
            override_window=override_window,
            rego=self.evaluator,
            secret_created=secret_created,
            layers=layers,
        )


@dataclass
class LocalIdentities:
    """The identity lookup of a local checkout (the CLI's pre-commit commands).

    Each environment's identity is loaded on first use, and only from that environment's
    own places (source/keys.py) in the keys dir of ``project``; ``flags`` (``--identity``)
    names a file for an environment, and a bad one is an error. A missing key is kept as
    the reason, so a stack without secrets still renders."""

    project: str
    flags: Mapping[str, Path] = field(default_factory=dict)
    _loaded: dict[str, tuple[Identity | None, str | None]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __call__(self, env: Environment) -> tuple[Identity | None, str | None]:
        return self.get(env.name)

    def get(self, env: str) -> tuple[Identity | None, str | None]:
        if env in self.flags and env not in self._loaded:  # asked for: a bad file is an error
            self._loaded[env] = (load_identity(self.project, env, identity=self.flags[env]), None)
        if env not in self._loaded:
            try:
                self._loaded[env] = (load_identity(self.project, env), None)
            except SecretError as exc:
                self._loaded[env] = (None, str(exc))
        return self._loaded[env]


__all__ = [
    "CommitLookup",
    "DigestMemo",
    "IdentityLookup",
    "LocalIdentities",
    "ProviderLookup",
    "StackRenderer",
    "input_digest",
    "policy_context",
    "reads_commit",
    "settings_digest",
    "stored_digest",
]
