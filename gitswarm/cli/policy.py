"""``gitswarm policy check`` (edge), and the policy step of ``gitswarm validate``.

Step "validate" of the loop (SPEC.md sections 2 and 5) run on its own, as a pre-commit
check: render each application of the environment from the working tree of ``--repo``
(or from ``--revision``), then evaluate the same policy gate as `gitswarm sync` and the
agent (policy.evaluate: built-in rules, ``policies/*.rego``, the clock, the commit) and
print every result. The rendering and the evaluation are reconcile/rendering.py's, the
same as the agent's; cli/render.py's ``validate`` runs the same through cli/worktree.py.

A closed deployment window is informational here: it says when a sync may apply the
change, not that the change is wrong, so it never makes ``policy check`` or ``validate``
fail. `gitswarm sync` refuses while an enforced window is closed (WindowClosed).

Only the repository is read: the agent checks a commit under the policy floor of its
config and the policies of the revision it deployed last too (policy/floor.py), so it
may refuse what passes here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from pathlib import Path

import click

from gitswarm.cli.output import emit_json, guarded
from gitswarm.cli.worktree import (
    IDENTITY_HELP,
    REPO_HELP,
    Checked,
    identity_option,
    local_renderer,
    open_tree,
)
from gitswarm.errors import UsageError
from gitswarm.model.policy import WINDOW_RULE, PolicyResult
from gitswarm.repo import load_config

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
@click.option("--identity", type=click.Path(path_type=Path), help=IDENTITY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(
    env_name: str,
    app_name: str | None,
    revision: str | None,
    repo: str,
    identity: Path | None,
    as_json: bool,
) -> None:
    """Render ENV and evaluate its policies; print every result (file:line: mode: rule:
    message). Exit 2 on any enforced violation or policy error. A closed deployment window
    is reported but does not fail the check: it concerns when to sync, not the commit.
    The agent may be stricter: it also applies its config's policy floor and the
    policies of the revision it deployed last."""

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
        renderer = local_renderer(tree, config, repo, identity_option(env.name, identity))
        now = dt.datetime.now(dt.UTC)
        with contextlib.closing(renderer):  # ends the Rego child processes
            renderer.rego()  # read first: the Rego child starts while the stacks render
            checked = [
                Checked(renderer.evaluate(renderer.render(app, env), env, now=now)) for app in apps
            ]
            files = len(renderer.rego())
        ok = all(c.ok for c in checked)
        if as_json:
            emit_json({"ok": ok, "reports": [c.to_dict() for c in checked]})
        else:
            for one in checked:
                print_checked(one, files)
            if not ok:
                count = sum(len(c.violations) for c in checked)
                click.echo(
                    f"policy check failed: {_plural(count, 'blocking result')} in {env.name}",
                    err=True,
                )
        if not ok:
            sys.exit(2)

    guarded(as_json, run)


__all__ = ["check", "policy", "print_checked", "result_line"]
