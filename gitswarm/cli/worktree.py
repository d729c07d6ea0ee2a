"""What the pre-commit commands share (edge): ``gitswarm render``, ``validate`` and
``policy check`` (cli/render.py, cli/policy.py) read the working tree of ``--repo``, or a
``--revision`` of it, and render and judge it the way the agent does
(reconcile/rendering.py). Here: their options, opening the tree, and how a pre-commit
check reads a policy report (a closed deployment window is a note, not a failure).

The command modules import this one, never each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitswarm.errors import UsageError
from gitswarm.model.config import RepoConfig
from gitswarm.model.policy import WINDOW_RULE, PolicyReport, PolicyResult
from gitswarm.model.tree import Tree
from gitswarm.reconcile.rendering import LocalIdentities, StackRenderer
from gitswarm.source.repo import CommitInfo, RepoSource
from gitswarm.source.tree import GitTree, WorkTree

REPO_HELP = "The GitOps repository's folder (default: the current folder)."
IDENTITY_HELP = (
    "The age identity (key file) of --env, instead of where gitswarm looks for it "
    "(README, 'Secrets')."
)


def open_tree(repo: str, revision: str | None) -> Tree:
    """``--repo``'s working tree, or its commit ``revision``."""
    if "://" in repo or repo.startswith("git@"):
        raise UsageError(
            f"--repo {repo!r} looks like a URL; render and validate read a local repository: "
            "clone it and pass its folder"
        )
    if revision:
        return GitTree(repo, revision)
    return WorkTree(repo)


def identity_option(env_name: str | None, identity: Path | None) -> dict[str, Path]:
    """``--identity FILE``, as the one environment it belongs to -> FILE."""
    if identity is None:
        return {}
    if env_name is None:
        raise UsageError(
            "--identity is one environment's key: give --env too (other environments' keys "
            "are looked up where gitswarm looks for them; README, 'Secrets')"
        )
    return {env_name: identity}


def local_renderer(
    tree: Tree, config: RepoConfig, repo: str, flags: Mapping[str, Path]
) -> StackRenderer:
    """The agent's render and policy gate over a local tree; identities as the CLI finds
    them (``flags``: ``--identity``). Flagged identities are loaded at once, so a bad
    ``--identity`` file is the first error. Its Rego sandbox starts only if a policy is
    evaluated; the caller ends it with ``close()`` (``contextlib.closing``)."""
    from gitswarm.sandbox.rego import RegoSandbox

    def commits(sha: str) -> CommitInfo:  # only for a --revision with policies to check
        return RepoSource.open(repo).commit_info(sha)

    identities = LocalIdentities(config.project, flags)
    for env in flags:
        identities.get(env)
    return StackRenderer(tree, config, identities, commits, RegoSandbox())


@dataclass(frozen=True)
class Checked:
    """One application's policy report, read as a pre-commit check reads it: a closed
    deployment window is neither a violation nor a warning, only a note."""

    report: PolicyReport

    @property
    def violations(self) -> tuple[PolicyResult, ...]:
        return tuple(r for r in self.report.violations if r.rule != WINDOW_RULE)

    @property
    def warnings(self) -> tuple[PolicyResult, ...]:
        return tuple(r for r in self.report.warnings if r.rule != WINDOW_RULE)

    @property
    def window(self) -> tuple[PolicyResult, ...]:
        return tuple(r for r in self.report.results if r.rule == WINDOW_RULE)

    @property
    def ok(self) -> bool:
        return not self.violations

    def window_note(self) -> str | None:
        """One sentence on the deployment window, when the environment has windows."""
        state = self.report.window
        if state is None:
            return None
        if state.open:
            note = f"deployment window open: {state.reason}"
            if state.closes_at is not None:
                note += f"; closes {state.closes_at.isoformat()}"
            return note
        note = f"deployment window closed: {state.reason}"
        if state.next_open is not None:
            note += f"; next opens {state.next_open.isoformat()}"
        if self.report.modes.get(WINDOW_RULE) == "enforce":
            return (
                note + " -- a sync waits for it (DeploymentWindowClosed); the commit itself is fine"
            )
        return note + " -- deployment_windows is warn: a sync now deploys anyway"

    def to_dict(self) -> dict[str, Any]:
        """PolicyReport.to_dict(), plus ``passes``: no violation other than a window."""
        return {**self.report.to_dict(), "passes": self.ok}


__all__ = [
    "IDENTITY_HELP",
    "REPO_HELP",
    "Checked",
    "identity_option",
    "local_renderer",
    "open_tree",
]
