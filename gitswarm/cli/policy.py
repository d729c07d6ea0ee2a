"""``gitswarm policy check`` (edge), and the policy step of ``gitswarm validate``.

Step "validate" of the loop (SPEC.md sections 2 and 5) run on its own, as a pre-commit
check: render each application of the environment from the working tree of ``--repo``
(or from ``--revision``), then evaluate the same policy gate as `gitswarm sync` and the
agent (policy.evaluate: built-in rules, ``policies/*.rego``, the clock, the commit) and
print every result. cli/render.py's ``validate`` calls :class:`PolicyGate` for the same
evaluation.

A closed deployment window is informational here: it says when a sync may apply the
change, not that the change is wrong, so it never makes ``policy check`` or ``validate``
fail. `gitswarm sync` refuses while an enforced window is closed (WindowClosed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from gitswarm.cli.output import emit_json, guarded
from gitswarm.cli.render import REPO_HELP, _Keys, _render, open_tree
from gitswarm.errors import UsageError
from gitswarm.model.config import Environment
from gitswarm.model.policy import WINDOW_RULE, PolicyReport, PolicyResult
from gitswarm.model.stack import DesiredStack
from gitswarm.model.tree import Tree
from gitswarm.policy import evaluate
from gitswarm.reconcile.sync import policy_context
from gitswarm.repo import load_config
from gitswarm.repo.policies import rego_sources
from gitswarm.sandbox.rego import RegoSandbox
from gitswarm.source.repo import RepoSource


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


@dataclass
class PolicyGate:
    """The policy evaluation of one Tree, as `gitswarm sync` does it: the same rules, the
    same ``policies/*.rego`` (read once), the same input document, the same bounded Rego
    child process (``close()`` ends it)."""

    tree: Tree
    repo: str
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    sandbox: RegoSandbox = field(default_factory=RegoSandbox)
    _rego: Mapping[str, str] | None = None
    _context: Mapping[str, Any] | None = None

    def rego(self) -> Mapping[str, str]:
        """The policies, read once; with any, the Rego child starts in the background."""
        if self._rego is None:
            self._rego = rego_sources(self.tree)
            if self._rego:
                self.sandbox.prestart()
        return self._rego

    def close(self) -> None:
        self.sandbox.close()

    def context(self) -> Mapping[str, Any] | None:
        """``input.commit`` for a committed revision; a working tree has none."""
        if self.tree.revision is None:
            return None
        if self._context is None:
            commit = RepoSource.open(self.repo).commit_info(self.tree.revision)
            self._context = policy_context(commit)
        return self._context

    def check(self, desired: DesiredStack, env: Environment) -> Checked:
        report = evaluate(
            desired,
            env,
            rego_sources=self.rego(),
            now=self.now,
            context=self.context(),
            rego=self.sandbox,
        )
        return Checked(report)


# --- printing -------------------------------------------------------------------------


def result_line(result: PolicyResult) -> str:
    """``file:line: MODE: rule: detail``, and why a service is exempt."""
    line = str(result)
    if result.status == "exempt" and result.reason:
        line += f" (exempt: {result.reason})"
    return line


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def print_checked(checked: Checked, files: int) -> None:
    report = checked.report
    modes = list(report.modes.values())
    revision = (report.revision or "")[:12] or "working tree"
    click.echo(
        f"{report.app} in {report.env} (stack {report.stack}, {revision}): "
        f"rules {modes.count('enforce')} enforce, {modes.count('warn')} warn, "
        f"{modes.count('off')} off; {_plural(files, 'Rego file')}"
    )
    for result in report.results:
        if result.rule != WINDOW_RULE:
            click.echo(f"  {result_line(result)}")
    note = checked.window_note()
    if note is not None:
        click.echo(f"  {note}")
    errors = sum(r.status == "error" for r in checked.violations)
    counts = [_plural(len(checked.violations) - errors, "violation")]
    if errors:
        counts.append(_plural(errors, "policy error"))
    counts.append(_plural(len(checked.warnings), "warning"))
    click.echo(f"  {'passes' if checked.ok else 'FAILS'}: {', '.join(counts)}")


# --- the command ----------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Policies: built-in rules (gitswarm.yml `policies:`) and policies/*.rego."""


@policy.command()
@click.option("--env", "env_name", required=True, help="The environment whose policies apply.")
@click.option("--app", "app_name", help="Only this application (default: all in --env).")
@click.option("--revision", help="Check this commit (branch, tag, id) instead of the working tree.")
@click.option("--repo", default=".", show_default=True, help=REPO_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(
    env_name: str, app_name: str | None, revision: str | None, repo: str, as_json: bool
) -> None:
    """Render ENV and evaluate its policies; print every result (file:line: mode: rule:
    message). Exit 2 on any enforced violation or policy error. A closed deployment window
    is reported but does not fail the check: it concerns when to sync, not the commit."""

    def run() -> None:
        tree = open_tree(repo, revision)
        config = load_config(tree)
        try:
            env = config.environment(env_name)
            deployed = [a.name for a in config.apps_for(env.name)]
            if app_name is not None:
                config.application(app_name)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        if app_name is not None and app_name not in deployed:
            raise UsageError(f"application {app_name!r} is not deployed to {env.name!r}")
        apps = [app_name] if app_name else deployed
        if not apps:
            raise UsageError(f"no application is deployed to environment {env.name!r}")
        keys = _Keys(config, {})
        with contextlib.closing(PolicyGate(tree, repo)) as gate:
            gate.rego()  # read first: the Rego child starts while the stacks render
            checked = [gate.check(_render(tree, config, keys, app, env.name), env) for app in apps]
        ok = all(c.ok for c in checked)
        if as_json:
            emit_json({"ok": ok, "reports": [c.to_dict() for c in checked]})
        else:
            for one in checked:
                print_checked(one, len(gate.rego()))
            if not ok:
                count = sum(len(c.violations) for c in checked)
                click.echo(
                    f"policy check failed: {_plural(count, 'blocking result')} in {env.name}",
                    err=True,
                )
        if not ok:
            sys.exit(2)

    guarded(as_json, run)


__all__ = ["Checked", "PolicyGate", "check", "policy", "print_checked", "result_line"]
