"""What one render read from the repository, and whether another revision holds the same.

A commit to one app in a repository of 1,000 must not re-render the other 999 (issue 18).
``RecordingTree`` wraps the Tree a render reads through (model/tree.py) and notes every
question it asked — each file read, each ``exists``/``is_dir``, each folder listed: the
compose files with their bases and ``extends``, the ``.env`` files, config and secret
files, another app's files where they share a stack, ``policies/*.rego``. ``Inputs``
is that list; ``Inputs.digest`` answers the same questions against any revision's tree
by the files' Git object ids (no file is read), so two revisions whose digests are
equal give that render the very same files. The settings it was given (gitswarm.yml,
``applications/*.yml``) are digested beside it by the Reconciler (reconcile/sync.py).

Pure: the trees do the reading.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from gitswarm.errors import GitswarmError
from gitswarm.model.tree import Tree


class IdentifiedTree(Tree, Protocol):
    """A Tree that names a file's content without reading it (source/tree.py GitTree)."""

    def entry_id(self, path: str) -> str:
        """What reading ``path`` gives, as an id: equal ids, equal bytes (or equal error)."""
        ...


@dataclass(frozen=True)
class Inputs:
    """The questions one render asked its tree: (kind, path), kind one of read, exists,
    is_dir, listdir."""

    asked: frozenset[tuple[str, str]]

    def digest(self, tree: IdentifiedTree, memo: dict[tuple[str, str], str] | None = None) -> str:
        """The answers ``tree`` gives to those questions, as one hash. ``memo``: answers
        already known for this tree (apps share their base files and policies/)."""
        memo = {} if memo is None else memo
        out = hashlib.sha256()
        for question in sorted(self.asked):
            answer = memo.get(question)
            if answer is None:
                answer = memo[question] = _answer(tree, *question)
            out.update(f"{question[0]}\0{question[1]}\0{answer}\n".encode())
        return out.hexdigest()


def _answer(tree: IdentifiedTree, kind: str, path: str) -> str:
    try:
        if kind == "read":
            return tree.entry_id(path)
        if kind == "exists":
            return str(tree.exists(path))
        if kind == "is_dir":
            return str(tree.is_dir(path))
        return "\0".join(tree.listdir(path))
    except GitswarmError as exc:  # the same refusal at both revisions is the same input
        return f"error: {exc.message}"


@dataclass
class RecordingTree:
    """``tree``, noting every question asked of it (one render, one thread)."""

    tree: Tree
    _asked: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)

    @property
    def revision(self) -> str | None:
        return self.tree.revision

    def read(self, path: str, *, limit: int) -> bytes:
        self._asked.add(("read", path))
        return self.tree.read(path, limit=limit)

    def exists(self, path: str) -> bool:
        self._asked.add(("exists", path))
        return self.tree.exists(path)

    def is_dir(self, path: str) -> bool:
        self._asked.add(("is_dir", path))
        return self.tree.is_dir(path)

    def listdir(self, path: str) -> list[str]:
        self._asked.add(("listdir", path))
        return self.tree.listdir(path)

    def inputs(self) -> Inputs:
        return Inputs(frozenset(self._asked))


__all__ = ["IdentifiedTree", "Inputs", "RecordingTree"]
