"""The two real Trees render/ reads through (I/O edge): a working tree and a Git revision.

``WorkTree(path)`` reads the files on disk, for ``gitswarm render``/``validate`` as a
pre-commit check. ``GitTree(repo, revision)`` reads one commit straight from the object
database — ``git ls-tree`` once, blobs with ``git cat-file --batch`` — with no checkout,
so the agent renders exactly what was committed and never what lies around in a folder.
A commit whose files together stay under ``PREFETCH`` bytes (a GitOps repository is
small) has all of them read by the first ``cat-file``: one git process per render, not
one per file (``gitswarm status`` ran seven; issue 13).

Both enforce the Tree protocol (model/tree.py): paths are repository-relative; ``..``
out of the repository, absolute paths, and symlinks whose target leaves the repository
are refused with PathError, as are files over the caller's size limit, folders, and
anything under ``.git``. In a GitTree a symlink is a blob of mode 120000 whose content
is the target; it is resolved virtually, inside the commit.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from gitswarm.errors import PathError, SourceError, UsageError
from gitswarm.model.tree import (
    RULE_MISSING,
    RULE_NOT_FILE,
    RULE_TOO_LARGE,
    join_path,
    normalize_path,
    path_error,
)
from gitswarm.source.git import run_git

MAX_SYMLINK_HOPS = 40
PREFETCH = 1 << 20  # bytes: a commit's files up to this size in all are read at once


def _too_large(path: str, size: int, limit: int) -> PathError:
    return path_error(
        f"{path} is {size} bytes, over the limit of {limit} bytes for this kind of file; "
        "keep large data out of the GitOps repository",
        RULE_TOO_LARGE,
        path,
    )


def _is_git_dir(rel: str) -> bool:
    return rel == ".git" or rel.startswith(".git/")


class WorkTree:
    """The files of a working tree on disk (uncommitted changes included)."""

    def __init__(self, path: str | Path) -> None:
        root = Path(path)
        if not root.is_dir():
            raise UsageError(f"{path} is not a folder; give --repo the repository's folder")
        self.root = root.resolve()

    @property
    def revision(self) -> str | None:
        return None

    def _inside(self, real: Path) -> bool:
        return real == self.root or self.root in real.parents

    def _resolve(self, path: str) -> tuple[str, Path]:
        rel = normalize_path(path)
        if _is_git_dir(rel):
            raise path_error(f"{rel}: files under .git are not part of the repository's content")
        real = Path(os.path.realpath(self.root / rel))
        if not self._inside(real):
            raise path_error(
                f"{rel} is a symlink (or lies under one) that points outside the repository "
                f"(to {real}); gitswarm only reads files inside the repository"
            )
        return rel, real

    def read(self, path: str, *, limit: int) -> bytes:
        rel, real = self._resolve(path)
        try:
            info = real.stat()
        except FileNotFoundError:
            raise path_error(f"{rel} does not exist", RULE_MISSING, rel) from None
        except OSError as exc:
            raise path_error(f"{rel} cannot be read: {exc.strerror}", RULE_MISSING, rel) from None
        if not stat.S_ISREG(info.st_mode):
            raise path_error(f"{rel} is not a regular file", RULE_NOT_FILE, rel)
        if info.st_size > limit:
            raise _too_large(rel, info.st_size, limit)
        try:
            with real.open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise path_error(f"{rel} cannot be read: {exc.strerror}", RULE_MISSING, rel) from None
        if len(data) > limit:
            raise _too_large(rel, len(data), limit)
        return data

    def exists(self, path: str) -> bool:
        try:
            rel = normalize_path(path)
        except PathError:
            return False
        return os.path.lexists(self.root / rel)

    def is_dir(self, path: str) -> bool:
        if path in ("", "."):
            return True
        try:
            _, real = self._resolve(path)
        except PathError:
            return False
        return real.is_dir()

    def listdir(self, path: str) -> list[str]:
        if path in ("", "."):
            real = self.root
        else:
            try:
                _, real = self._resolve(path)
            except PathError:
                return []
        if not real.is_dir():
            return []
        return sorted(p.name for p in real.iterdir() if p.name != ".git")


@dataclass(frozen=True, slots=True)
class _Entry:
    mode: str
    kind: str  # blob | tree | commit
    oid: str
    size: int | None


class GitTree:
    """One commit of a Git repository (bare or not), read without a checkout."""

    def __init__(self, repo_path: str | Path, revision: str) -> None:
        self.repo = Path(repo_path)
        if not revision or revision.startswith("-"):
            raise UsageError(f"invalid revision {revision!r}")
        probe = run_git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"],
            cwd=self.repo,
            check=False,
        )
        if probe.returncode != 0:
            raise UsageError(
                f"{revision!r} is not a commit in {self.repo}; give a branch, tag or commit id"
            )
        self._commit = probe.stdout.decode().strip()
        listing = run_git(
            ["ls-tree", "-r", "-t", "-l", "-z", "--full-tree", self._commit], cwd=self.repo
        ).stdout
        self._entries: dict[str, _Entry] = {}
        for record in listing.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split()
            self._entries[name.decode("utf-8", "surrogateescape")] = _Entry(
                mode, kind, oid, None if size == "-" else int(size)
            )
        self._blobs: dict[str, bytes] = {}
        self._prefetched = False

    @property
    def revision(self) -> str | None:
        return self._commit

    def _blob(self, oid: str, size: int) -> bytes:
        cached = self._blobs.get(oid)
        if cached is not None:
            return cached
        wanted = {oid: size}
        if not self._prefetched:
            self._prefetched = True
            files = {
                e.oid: e.size
                for e in self._entries.values()
                if e.kind == "blob" and e.mode != "160000" and e.size is not None
            }
            if sum(files.values()) <= PREFETCH:
                wanted.update((o, n) for o, n in files.items() if o not in self._blobs)
        batch = "".join(f"{o}\n" for o in wanted).encode()
        out = run_git(["cat-file", "--batch"], cwd=self.repo, input=batch).stdout
        for asked, expected in wanted.items():
            header, _, out = out.partition(b"\n")
            fields = header.split()
            if len(fields) == 2 and fields[1] == b"missing" and asked != oid:
                continue  # not needed yet (a partial clone may lack it): read when asked
            if len(fields) != 3 or fields[1] != b"blob" or int(fields[2]) != expected:
                raise SourceError(
                    f"git cat-file returned an unexpected object for {asked}: {header!r}"
                )
            self._blobs[asked], out = out[:expected], out[expected + 1 :]
        return self._blobs[oid]

    def _resolve(self, path: str) -> str:
        """Follow symlinks in every component, virtually, inside the commit."""
        original = normalize_path(path)
        parts = original.split("/")
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            candidate = "/".join([*done, part])
            entry = self._entries.get(candidate)
            if entry is not None and entry.mode == "120000":
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise path_error(f"{original}: too many levels of symlinks")
                target = self._blob(entry.oid, entry.size or 0).decode("utf-8", "replace")
                if target.startswith("/"):
                    raise path_error(
                        f"{candidate} is a symlink to the absolute path {target!r}, outside the "
                        "repository; gitswarm only reads files inside the repository"
                    )
                try:
                    spliced = join_path("/".join(done), target)
                except PathError:
                    raise path_error(
                        f"{candidate} is a symlink to {target!r}, which points outside the "
                        "repository; gitswarm only reads files inside the repository"
                    ) from None
                parts = spliced.split("/") + parts
                done = []
                continue
            done.append(part)
        resolved = "/".join(done)
        if _is_git_dir(resolved):
            raise path_error(f"{original}: files under .git are not part of the repository")
        return resolved

    def read(self, path: str, *, limit: int) -> bytes:
        resolved = self._resolve(path)
        entry = self._entries.get(resolved)
        shown = normalize_path(path)
        if entry is None:
            raise path_error(
                f"{shown} does not exist in commit {self._commit[:12]}", RULE_MISSING, shown
            )
        if entry.kind != "blob" or entry.mode == "160000":
            raise path_error(
                f"{shown} is not a regular file (it is a {entry.kind})", RULE_NOT_FILE, shown
            )
        size = entry.size or 0
        if size > limit:
            raise _too_large(shown, size, limit)
        return self._blob(entry.oid, size)

    def entry_id(self, path: str) -> str:
        """What ``read(path)`` gives, named without reading it (render/inputs.py): the
        resolved entry's mode, kind and object id; equal ids, equal bytes."""
        entry = self._entries.get(self._resolve(path))
        return "missing" if entry is None else f"{entry.mode} {entry.kind} {entry.oid}"

    def exists(self, path: str) -> bool:
        try:
            rel = normalize_path(path)
        except PathError:
            return False
        if rel in self._entries:
            return True
        try:
            return self._resolve(rel) in self._entries
        except PathError:
            return False

    def is_dir(self, path: str) -> bool:
        if path in ("", "."):
            return True
        try:
            entry = self._entries.get(self._resolve(path))
        except PathError:
            return False
        return entry is not None and entry.kind == "tree"

    def listdir(self, path: str) -> list[str]:
        if path in ("", "."):
            prefix = ""
        else:
            if not self.is_dir(path):
                return []
            prefix = self._resolve(path) + "/"
        names = {
            name[len(prefix) :]
            for name in self._entries
            if name.startswith(prefix) and "/" not in name[len(prefix) :]
        }
        return sorted(names)
