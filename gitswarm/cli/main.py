"""Entry point of the ``gitswarm`` command (SPEC.md section 3).

Exit codes: 0 success, 1 a failed operation, 2 bad input (usage, validation, policy).

Every command that does not deploy must start at once (SPEC.md section 7: within 0.25 s),
so this module imports no command: :data:`COMMANDS` names where each one lives and its
one-line help, ``gitswarm --help`` prints that table, and ``gitswarm NAME`` imports only
NAME's module. The command modules keep their heavy imports (FastAPI, SQLAlchemy, docker,
regopy) inside the functions that need them. tests/unit/test_cli_startup.py checks that
the table's help is each command's own and that ``--help`` imports none of them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from gitswarm import __version__

# name -> (module, attribute, short help). The short help is the first line of the
# command's docstring; a unit test keeps the two equal.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": (
        "gitswarm.cli.main",
        "init",
        "Write the example GitOps repository (MediaNest, three environments) into DIRECTORY.",
    ),
    "render": (
        "gitswarm.cli.render",
        "render",
        "Print the final stack file(s) of an environment exactly as they will be deployed.",
    ),
    "validate": (
        "gitswarm.cli.render",
        "validate",
        "Check every application in every environment: schema, references and policies; "
        "print all problems (file:line: message [rule]).",
    ),
    "policy": (
        "gitswarm.cli.policy",
        "policy",
        "Policies: built-in rules (gitswarm.yml `policies:`) and policies/*.rego.",
    ),
    "secret": (
        "gitswarm.cli.secret",
        "secret",
        "age keys per environment, and encrypted secrets for the repository.",
    ),
    "sync": (
        "gitswarm.cli.ops",
        "sync",
        "Deploy a committed revision of ENV now and wait until it is healthy.",
    ),
    "status": (
        "gitswarm.cli.ops",
        "status",
        "Applications × environments: revision, sync, health, last operation, drift.",
    ),
    "diff": (
        "gitswarm.cli.ops",
        "diff",
        "What a sync of ENV would change, per service, and what drifted.",
    ),
    "history": ("gitswarm.cli.ops", "history", "Past operations in ENV, newest first."),
    "dora": (
        "gitswarm.cli.dora",
        "dora",
        "DORA metrics of ENV: deployment frequency, lead time, change failure, time to restore.",
    ),
    "rollback": (
        "gitswarm.cli.ops",
        "rollback_cmd",
        "Return ENV to a past revision with a Git commit, push it and sync it.",
    ),
    "user": (
        "gitswarm.cli.accounts",
        "user",
        "Dashboard users: add, change the password of, remove and list them.",
    ),
    "token": (
        "gitswarm.cli.accounts",
        "token",
        "API tokens kept in the state store: create (shown once), list, revoke.",
    ),
    "promote": (
        "gitswarm.cli.promote",
        "promote",
        "Promote the image tags deployed and healthy in one environment to the next.",
    ),
    "approve": (
        "gitswarm.cli.promote",
        "approve",
        "Approve a pending promotion; the last approval it needs commits it.",
    ),
    "reject": (
        "gitswarm.cli.promote",
        "reject",
        "Reject a pending promotion: it ends, nothing is committed.",
    ),
    "promotions": (
        "gitswarm.cli.promote",
        "promotions",
        "Promotions waiting for approval, oldest first (--all: every one, newest first).",
    ),
    "hold": (
        "gitswarm.cli.promote",
        "hold",
        "Holds after a rollback: what keeps automation from re-applying a rolled-back tag.",
    ),
    "bootstrap": (
        "gitswarm.cli.ops",
        "bootstrap",
        "Rebuild every application of ENV on an empty swarm from Git alone, then verify.",
    ),
    "serve": (
        "gitswarm.cli.serve",
        "serve",
        "Run the agent: poll and webhooks, sync, drift and self-heal, API, /metrics.",
    ),
}


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or shows its own help).

    Usage errors exit 2 (click's default too) and say what to do.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table
            raise TypeError(f"{module}.{attr} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitswarm")
def cli() -> None:
    """GitOps for Docker Swarm: Git is the source of truth, gitswarm keeps the swarm equal to it."""


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-git", is_flag=True, help="Do not `git init` and commit the example.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def init(directory: Path, no_git: bool, as_json: bool) -> None:
    """Write the example GitOps repository (MediaNest, three environments) into DIRECTORY."""
    from gitswarm.cli.example import write_example
    from gitswarm.cli.output import emit_json, guarded

    def run() -> None:
        notes = write_example(directory, git=not no_git)
        if as_json:
            emit_json({"ok": True, "directory": str(directory), "notes": notes})
            return
        click.echo(f"Wrote the example GitOps repository to {directory}")
        for note in notes:
            click.echo(f"  {note}")
        click.echo(f"Next: gitswarm validate --repo {directory}")

    guarded(as_json, run)


def main() -> None:
    cli(prog_name="gitswarm")
