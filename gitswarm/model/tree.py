"""A read-only view of the repository's files at one revision (or the working tree).

render/ reads only through this protocol, so it never touches the filesystem or Git
itself; source/ provides the implementations (a working tree, a Git revision) and an
in-memory one lives in tests. Paths are POSIX, relative to the repository root.
"""

from __future__ import annotations

from typing import Protocol


class Tree(Protocol):
    """Files of one revision. Implementations refuse paths that leave the repository."""

    @property
    def revision(self) -> str | None:
        """The commit id, or None for an uncommitted working tree."""
        ...

    def read(self, path: str, *, limit: int) -> bytes:
        """The bytes of ``path``. Raises PathError if it is missing, not a regular file,
        resolves (through ``..`` or symlinks) outside the repository, or exceeds ``limit``
        bytes."""
        ...

    def exists(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]:
        """Names in folder ``path`` (sorted); empty if it does not exist."""
        ...
