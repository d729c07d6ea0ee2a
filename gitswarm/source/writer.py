"""Changing the GitOps repository: commits for rollbacks and promotions, then a push.

Work happens in a private temporary clone of the followed branch, never in a user's
working tree: the commit is pushed to the remote (or, for a local repository without a
remote, fast-forwarded onto its branch when that is safe). A push that loses a race is
retried on top of the new head. I/O edge, called by reconcile/ (rollback).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gitswarm.errors import SourceError, UsageError
from gitswarm.source.git import git_text, run_git
from gitswarm.source.repo import RepoSource

DEFAULT_AUTHOR = ("gitswarm", "gitswarm@localhost")


@dataclass
class WorkingCopy:
    path: Path
    branch: str
    base: str  # the commit the clone started from

    def git(self, *args: str) -> str:
        return git_text(list(args), cwd=self.path)

    def restore(self, revision: str, paths: Sequence[str]) -> None:
        """Make ``paths`` exactly as they were at ``revision`` (files added since removed)."""
        existing = [p for p in paths if self._exists_at(revision, p) or (self.path / p).exists()]
        if not existing:
            return
        run_git(
            ["restore", f"--source={revision}", "--staged", "--worktree", "--", *existing],
            cwd=self.path,
        )

    def _exists_at(self, revision: str, path: str) -> bool:
        proc = run_git(["cat-file", "-e", f"{revision}:{path}"], cwd=self.path, check=False)
        return proc.returncode == 0

    def write(self, path: str, data: bytes) -> None:
        target = (self.path / path).resolve()
        if not target.is_relative_to(self.path.resolve()):
            raise UsageError(f"refusing to write outside the repository: {path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        run_git(["add", "--", path], cwd=self.path)

    def read(self, path: str) -> bytes:
        return (self.path / path).read_bytes()

    def dirty(self) -> bool:
        return bool(self.git("status", "--porcelain"))

    def commit(self, message: str, author: tuple[str, str] = DEFAULT_AUTHOR) -> str | None:
        """Commit staged changes; None when there is nothing to commit."""
        run_git(["add", "-A"], cwd=self.path)
        if not self.git("status", "--porcelain"):
            return None
        name, email = author
        run_git(
            [
                "-c",
                f"user.name={name}",
                "-c",
                f"user.email={email}",
                "commit",
                "-q",
                "--no-verify",
                "-F",
                "-",
            ],
            cwd=self.path,
            input=message.encode(),
        )
        return self.git("rev-parse", "HEAD")


def _branch_of(source: RepoSource) -> str:
    ref = source.ref()
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    if source.remote is not None:
        out = git_text(["ls-remote", "--symref", "--", source.remote, "HEAD"])
        for line in out.splitlines():
            if line.startswith("ref: ") and line.endswith("\tHEAD"):
                return line[len("ref: refs/heads/") : -len("\tHEAD")]
    raise UsageError(f"{source.spec}: cannot tell which branch to commit to; set `branch:`")


@contextmanager
def working_copy(source: RepoSource) -> Iterator[WorkingCopy]:
    """A temporary clone of the followed branch, removed afterwards."""
    branch = _branch_of(source)
    tmp = Path(tempfile.mkdtemp(prefix="gitswarm-wc-"))
    try:
        origin = source.remote or str(source.git_dir)
        run_git(
            ["clone", "-q", "--branch", branch, "--single-branch", "--", origin, str(tmp / "wc")]
        )
        path = tmp / "wc"
        yield WorkingCopy(path, branch, git_text(["rev-parse", "HEAD"], cwd=path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def push(source: RepoSource, wc: WorkingCopy, *, attempts: int = 3) -> str:
    """Publish the working copy's commits on its branch; returns the new head.

    Remote: ``git push``; when the remote moved meanwhile, rebase and try again. Local
    repository: update its branch only as a fast-forward, and refuse when the branch is
    checked out with uncommitted changes (they would be silently mixed up)."""
    head = wc.git("rev-parse", "HEAD")
    if source.remote is None:
        return _push_local(source, wc, head)
    for attempt in range(attempts):
        proc = run_git(
            ["push", "-q", "origin", f"HEAD:refs/heads/{wc.branch}"], cwd=wc.path, check=False
        )
        if proc.returncode == 0:
            return wc.git("rev-parse", "HEAD")
        err = proc.stderr.decode(errors="replace")
        if attempt + 1 < attempts and ("rejected" in err or "fetch first" in err):
            run_git(["pull", "-q", "--rebase", "origin", wc.branch], cwd=wc.path)
            continue
        raise SourceError(f"git push to {source.remote} failed: {err.strip()}")
    raise SourceError(f"git push to {source.remote} kept losing races; try again")


def _push_local(source: RepoSource, wc: WorkingCopy, head: str) -> str:
    repo = source.work_tree or source.git_dir
    ref = f"refs/heads/{wc.branch}"
    run_git(["fetch", "-q", str(wc.path), "HEAD:refs/gitswarm/incoming"], cwd=repo)
    current = git_text(["rev-parse", ref], cwd=repo)
    if current != wc.base:
        raise SourceError(
            f"{source.spec}: branch {wc.branch} moved while gitswarm was committing; try again"
        )
    checked_out = source.work_tree is not None and (
        git_text(["symbolic-ref", "-q", "HEAD"], cwd=repo) == ref
    )
    if checked_out:
        if git_text(["status", "--porcelain", "--untracked-files=no"], cwd=repo):
            raise UsageError(
                f"{source.spec} has uncommitted changes on {wc.branch}; commit or stash them, "
                "or give --repo a remote URL"
            )
        run_git(["merge", "-q", "--ff-only", "refs/gitswarm/incoming"], cwd=repo)
    else:
        run_git(["update-ref", ref, head, current], cwd=repo)
    run_git(["update-ref", "-d", "refs/gitswarm/incoming"], cwd=repo)
    upstream = run_git(
        ["rev-parse", "--abbrev-ref", f"{wc.branch}@{{upstream}}"], cwd=repo, check=False
    )
    if upstream.returncode == 0 and source.work_tree is not None:
        remote_name = upstream.stdout.decode().strip().split("/", 1)[0]
        run_git(["push", "-q", remote_name, f"{ref}:{ref}"], cwd=repo)
    return head
