"""Where a node of a YAML file was written, and the one way to look it up (pure).

A *path* names a node of a parsed document: ``("services", "web", "image")``.
repo/yamlsrc.py records where each node was written while it parses a file; the tables
built from that are kept by ``Document`` (repo/yamlsrc.py: path -> line, column),
``Environment`` and ``Application`` (model/config.py: paths inside their YAML),
``Merged`` (render/compose.py) and ``SourceMap`` (model/stack.py: path in the rendered
stack -> file, line, column), and policy/settings.py (paths inside ``policies:``).

A message about a node that was never written (a default, a missing key) belongs at
the nearest written ancestor: :func:`nearest` is that lookup for every one of those
tables, and :func:`problem_at` turns it into a located ``Problem``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gitswarm.errors import Problem

Path = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line, column

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A place in a repository file."""

    file: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based


def nearest(table: Mapping[Path, T], path: Sequence[str | int]) -> T | None:
    """What ``table`` holds for ``path``, else for its nearest ancestor (the document
    itself is ``()``); None if not even that is known."""
    for end in range(len(path), -1, -1):
        found = table.get(tuple(path[:end]))
        if found is not None:
            return found
    return None


def problem_at(
    file: str,
    positions: Mapping[Path, Position],
    path: Sequence[str | int],
    message: str,
    rule: str,
) -> Problem:
    """A ``Problem`` in ``file`` at the nearest written position of ``path``."""
    line, column = nearest(positions, path) or (None, None)
    return Problem(message, file=file, line=line, column=column, rule=rule)


__all__ = ["Path", "Position", "SourceLocation", "nearest", "problem_at"]
