"""A read-only view of the repository's files at one revision (or the working tree).

render/ reads only through this protocol, so it never touches the filesystem or Git
itself; source/ provides the implementations (a working tree, a Git revision) and an
in-memory one lives in tests. Paths are POSIX, relative to the repository root.
"""

from __future__ import annotations

from typing import Protocol

from gitswarm.errors import GitswarmError, PathError, Problem

# Rules of the PathErrors a Tree raises (``Problem.rule``), so callers can tell them apart.
RULE_OUTSIDE = "path-outside-repo"  # absolute, "..", symlink out, .git
RULE_MISSING = "file-missing"
RULE_NOT_FILE = "not-a-file"
RULE_TOO_LARGE = "file-too-large"


def path_error(message: str, rule: str = RULE_OUTSIDE, path: str | None = None) -> PathError:
    """A PathError whose problem carries ``rule``."""
    return PathError(message, problems=[Problem(message, file=path, rule=rule)])


def rule_of(error: GitswarmError, default: str = RULE_MISSING) -> str:
    """The rule of a Tree's error (``default`` for errors without one)."""
    for problem in error.problems:
        if problem.rule:
            return problem.rule
    return default


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


def normalize_path(path: str, *, source: str | None = None) -> str:
    """``path`` as a clean repository-relative POSIX path (``a/b/c``), or PathError if it
    is absolute, empty, or climbs out of the repository with ``..``. ``source`` names the
    file that wrote the path, for the message. Pure: symlinks are the Tree's business."""
    where = f"{source}: " if source else ""
    if not path or "\0" in path:
        raise path_error(f"{where}empty or invalid path {path!r}")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":" and path[0].isalpha()):
        raise path_error(
            f"{where}{path!r} is an absolute path; files must be inside the repository, "
            "written relative to the compose file's folder"
        )
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise path_error(f"{where}{path!r} leaves the repository; files must be inside it")
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise path_error(f"{where}{path!r} is the repository root, not a file")
    return "/".join(parts)


def join_path(folder: str, path: str, *, source: str | None = None) -> str:
    """``path`` written relative to repository folder ``folder`` (``""`` is the root)."""
    if path.startswith("/"):
        return normalize_path(path, source=source)  # raises: absolute
    return normalize_path(f"{folder}/{path}" if folder else path, source=source)
