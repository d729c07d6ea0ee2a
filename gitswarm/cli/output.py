"""Printing results: human text on a terminal, JSON with ``--json``; errors the same way."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from gitswarm.errors import GitswarmError


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def error_text(error: GitswarmError) -> str:
    """The error as a terminal shows it: its message, then every problem (file:line:
    message [rule]) the message does not already spell out, so that no command prints a
    bare "not valid" without the reason."""
    lines = [f"error [{error.reason}]: {error.message}"]
    lines += [f"  {p}" for p in error.problems if p.message not in error.message]
    return "\n".join(lines)


def fail(error: GitswarmError, *, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"ok": False, "error": error.as_dict()})
    else:
        click.echo(error_text(error), err=True)
    sys.exit(error.exit_code)


def guarded(as_json: bool, fn: Callable[[], None]) -> None:
    """Run a command body; any gitswarm error becomes its message and exit code."""
    try:
        fn()
    except GitswarmError as exc:
        fail(exc, as_json=as_json)
