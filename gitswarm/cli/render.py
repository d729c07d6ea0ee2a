"""``gitswarm render`` and ``gitswarm validate`` (edge): the rendered stacks, or every
problem at once.

Without ``--revision`` both read the working tree of ``--repo`` (default: the current
folder), so they work as a pre-commit check; with it they read that commit from Git.
Secret values are never printed: only the names of the Swarm secrets gitswarm creates.
Nothing is printed until every stack has rendered, so bad input gives an error and no
partial output.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

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
from gitswarm.errors import ConfigError, InputError, Problem, UsageError
from gitswarm.model.stack import DesiredStack
from gitswarm.render import to_yaml
from gitswarm.repo import load_config


def _header(desired: DesiredStack) -> str:
    revision = desired.revision or "working tree (uncommitted changes included)"
    return (
        f"# gitswarm render: application {desired.app}, environment {desired.env}, "
        f"stack {desired.stack}\n# revision: {revision}\n"
        f"# files: {', '.join(desired.files)}\n"
    )


def _as_json(desired: DesiredStack) -> dict[str, Any]:
    return {
        "app": desired.app,
        "env": desired.env,
        "stack": desired.stack,
        "revision": desired.revision,
        "files": list(desired.files),
        "compose": desired.compose,
        "service_hashes": dict(desired.service_hashes),
        "objects": [
            {"kind": o.kind, "key": o.key, "name": o.name, "source": o.source}
            for o in desired.objects
        ],
        "yaml": to_yaml(desired),
    }


@click.command()
@click.option("--env", "env_name", required=True, help="The environment to render.")
@click.option("--app", "app_name", help="Only this application (default: all in --env).")
@click.option(
    "--revision", help="Render this commit (branch, tag, id) instead of the working tree."
)
@click.option("--repo", default=".", show_default=True, help=REPO_HELP)
@click.option("--identity", type=click.Path(path_type=Path), help=IDENTITY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def render(
    env_name: str,
    app_name: str | None,
    revision: str | None,
    repo: str,
    identity: Path | None,
    as_json: bool,
) -> None:
    """Print the final stack file(s) of an environment exactly as they will be deployed."""

    def run() -> None:
        tree = open_tree(repo, revision)
        config = load_config(tree)
        try:
            env = config.environment(env_name)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        apps = [app_name] if app_name else [a.name for a in config.apps_for(env.name)]
        if not apps:
            raise UsageError(f"no application is deployed to environment {env.name!r}")
        renderer = local_renderer(tree, config, repo, identity_option(env.name, identity))
        stacks = [renderer.render(app, env) for app in apps]
        if as_json:
            emit_json({"ok": True, "stacks": [_as_json(d) for d in stacks]})
            return
        click.echo("---\n".join(_header(d) + to_yaml(d) for d in stacks), nl=False)

    guarded(as_json, run)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


@click.command()
@click.option("--env", "env_name", help="Only this environment (default: all).")
@click.option("--revision", help="Validate this commit instead of the working tree.")
@click.option("--repo", default=".", show_default=True, help=REPO_HELP)
@click.option("--identity", type=click.Path(path_type=Path), help=IDENTITY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def validate(
    env_name: str | None, revision: str | None, repo: str, identity: Path | None, as_json: bool
) -> None:
    """Check every application in every environment: schema, references and policies;
    print all problems (file:line: message [rule]). Exit 2 if there is any. Policy
    warnings and a closed deployment window are shown but are not problems. The agent
    may be stricter (its config's policy floor, the deployed revision's policies)."""

    def run() -> None:
        from gitswarm.promote.core.settings import promotion_settings

        flags = identity_option(env_name, identity)
        tree = open_tree(repo, revision)
        try:
            config = load_config(tree)
        except ConfigError as exc:
            report(list(exc.problems) or [Problem(str(exc))], [], [])
            return
        if env_name is not None:
            try:
                envs = [config.environment(env_name).name]
            except KeyError as exc:
                raise UsageError(str(exc.args[0])) from None
        else:
            envs = [e.name for e in config.environments]
        renderer = local_renderer(tree, config, repo, flags)
        try:
            now = dt.datetime.now(dt.UTC)
            problems: list[Problem] = []
            warnings: list[Problem] = []
            results: list[dict[str, Any]] = []
            for env in envs:
                try:  # the promotion: block (promote/core/settings.py), file:line
                    promotion_settings(config, env)
                except ConfigError as exc:
                    problems.extend(exc.problems or [Problem(exc.message, rule="promotion")])
                for app in config.apps_for(env):
                    try:
                        environment = config.environment(env)
                        desired = renderer.render(app.name, environment)
                        checked = Checked(renderer.evaluate(desired, environment, now=now))
                    except InputError as exc:
                        found = list(exc.problems) or [Problem(exc.message, rule=exc.reason)]
                        problems.extend(found)
                        results.append(
                            {"app": app.name, "env": env, "ok": False, "problems": len(found)}
                        )
                        continue
                    problems.extend(r.problem() for r in checked.violations)
                    warnings.extend(r.problem() for r in checked.warnings)
                    results.append(
                        {
                            "app": app.name,
                            "env": env,
                            "ok": checked.ok,
                            "stack": desired.stack,
                            "services": len(desired.services),
                            "configs": sum(o.kind == "config" for o in desired.objects),
                            "secrets": sum(o.kind == "secret" for o in desired.objects),
                            "policy_violations": len(checked.violations),
                            "policy_warnings": len(checked.warnings),
                            "window": checked.window_note(),
                        }
                    )
        finally:
            renderer.close()  # the Rego child processes
        report(_unique(problems), _unique(warnings), results)

    def report(
        problems: list[Problem], warnings: list[Problem], results: list[dict[str, Any]]
    ) -> None:
        if as_json:
            emit_json(
                {
                    "ok": not problems,
                    "problems": [p.as_dict() for p in problems],
                    "warnings": [p.as_dict() for p in warnings],
                    "stacks": results,
                }
            )
        else:
            for result in results:
                where = f"{result['app']} in {result['env']}"
                if "stack" not in result:
                    click.echo(f"FAIL  {where}")
                    continue
                click.echo(
                    f"{'ok  ' if result['ok'] else 'FAIL'}  {where}: stack {result['stack']}, "
                    f"{result['services']} services, {result['configs']} configs, "
                    f"{result['secrets']} secrets; policies: "
                    f"{result['policy_violations']} violations, "
                    f"{result['policy_warnings']} warnings"
                )
                if result["window"]:
                    click.echo(f"      {result['window']}")
            for problem in (*problems, *warnings):
                click.echo(str(problem))
            if problems:
                click.echo(f"{len(problems)} problem(s) found", err=True)
        if problems:
            raise SystemExit(2)

    guarded(as_json, run)
