"""Entry point of the ``gitswarm`` command (SPEC.md section 3).

Exit codes: 0 success, 1 a failed operation, 2 bad input (usage, validation, policy).
"""

from __future__ import annotations

from pathlib import Path

import click

from gitswarm import __version__
from gitswarm.cli.example import write_example
from gitswarm.cli.ops import register
from gitswarm.cli.output import emit_json, guarded
from gitswarm.cli.policy import policy
from gitswarm.cli.render import render, validate
from gitswarm.cli.secret import secret
from gitswarm.cli.serve import serve


class _Group(click.Group):
    """Usage errors exit 2 (click's default too) and say what to do."""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitswarm")
def cli() -> None:
    """GitOps for Docker Swarm: Git is the source of truth, gitswarm keeps the swarm equal to it."""


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-git", is_flag=True, help="Do not `git init` and commit the example.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def init(directory: Path, no_git: bool, as_json: bool) -> None:
    """Write the example GitOps repository (MediaNest, three environments) into DIRECTORY."""

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


cli.add_command(render)
cli.add_command(validate)
cli.add_command(secret)
cli.add_command(policy)
register(cli)
cli.add_command(serve)


def main() -> None:
    cli(prog_name="gitswarm")
