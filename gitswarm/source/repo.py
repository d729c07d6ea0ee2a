"""Where the GitOps repository comes from: a local clone, or a remote in a bare cache.

- A local path (a working clone): revisions are read from its object database; only
  committed content is ever deployed (HEAD of its branch, or an explicit revision).
- A URL (``https://``, ``ssh://``, ``git://``, ``file://``, ``user@host:path``): a bare
  cache under ``$GITSWARM_CACHE`` (default ``~/.cache/gitswarm/repos``). ``poll()`` asks
  the remote for the branch's commit first (``git ls-remote``) and fetches only when it
  moved, so a poll with nothing new costs one round trip and no fetch.

I/O edge: called by reconcile/ and cli/. Errors are ``SourceError`` (retryable).

Thread-safe: the agent's git worker, its sync workers and the API threads share one
RepoSource. Whatever changes the cache (``fetch``, ``poll``, ``head`` when it must fetch,
the remote's default branch once learnt) runs under the source's own lock, one at a
time; readers of revisions (``resolve``, ``commit_info``, trees) need no lock, because
Git updates refs atomically and never changes an object, so a reader sees a commit
either before or after a fetch, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gitswarm.errors import NotFoundError, SourceError, UsageError
from gitswarm.source.git import git_text, run_git

_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[^/\s]+@[^/\s]+:)", re.IGNORECASE)
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def is_url(spec: str) -> bool:
    return bool(_URL.match(spec))


def cache_root() -> Path:
    configured = os.environ.get("GITSWARM_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "gitswarm" / "repos"


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    author: str
    email: str
    committed_at: str  # ISO 8601 with offset
    subject: str


@dataclass
class RepoSource:
    """A repository gitswarm reads revisions from. ``git_dir`` holds the objects."""

    spec: str  # the path or URL the user gave
    git_dir: Path
    branch: str | None = None
    remote: str | None = None  # the URL, when cached from a remote
    work_tree: Path | None = None  # the local clone's working tree, if local
    last_fetched: str | None = field(default=None)
    _default_ref: str | None = field(default=None, repr=False)
    # Serialises what writes the cache or the fields above (see the module docstring).
    _lock: threading.RLock = field(
        default_factory=threading.RLock, init=False, repr=False, compare=False
    )

    # --- construction ------------------------------------------------------------------

    @classmethod
    def open(cls, spec: str, *, branch: str | None = None, cache: Path | None = None) -> RepoSource:
        if is_url(spec):
            return cls._cached(spec, branch=branch, cache=cache or cache_root())
        path = Path(spec).expanduser().resolve()
        if not path.exists():
            raise UsageError(f"--repo {spec}: no such directory; give a path or a Git URL")
        try:
            top = git_text(["rev-parse", "--show-toplevel"], cwd=path)
            git_dir = git_text(["rev-parse", "--absolute-git-dir"], cwd=path)
        except SourceError:
            try:
                git_dir = git_text(["rev-parse", "--absolute-git-dir"], cwd=path)
            except SourceError as exc:
                raise UsageError(f"--repo {spec}: not a Git repository ({exc})") from exc
            return cls(spec=spec, git_dir=Path(git_dir), branch=branch)
        return cls(spec=spec, git_dir=Path(git_dir), branch=branch, work_tree=Path(top))

    @classmethod
    def _cached(cls, url: str, *, branch: str | None, cache: Path) -> RepoSource:
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        git_dir = cache / f"{digest}.git"
        if not (git_dir / "HEAD").exists():
            cache.mkdir(parents=True, exist_ok=True)
            run_git(["init", "--bare", "-q", str(git_dir)])
            run_git(["--git-dir", str(git_dir), "config", "gitswarm.url", url])
        return cls(spec=url, git_dir=git_dir, branch=branch, remote=url)

    # --- revisions -----------------------------------------------------------------------

    def _git(self, *args: str, timeout: float = 120.0) -> str:
        return git_text(["--git-dir", str(self.git_dir), *args], timeout=timeout)

    def ref(self) -> str:
        """The ref gitswarm follows: the configured branch, else the remote's HEAD branch."""
        if self.branch:
            return f"refs/heads/{self.branch}"
        if self.remote is None:
            head = self._git("symbolic-ref", "-q", "HEAD")
            return head or "HEAD"
        return "HEAD"

    def branch_ref(self) -> str:
        """The followed branch as a full ref (the remote's default branch resolved), for
        matching pushed refs in webhooks. Cached once known."""
        ref = self.ref()
        if ref != "HEAD":
            return ref
        if self._default_ref is not None:
            return self._default_ref
        with self._lock:
            if self._default_ref is None and self.remote is not None:
                out = git_text(["ls-remote", "--symref", "--", self.remote, "HEAD"], timeout=30)
                for line in out.splitlines():
                    if line.startswith("ref: ") and line.endswith("\tHEAD"):
                        self._default_ref = line[len("ref: ") : -len("\tHEAD")]
            return self._default_ref or ref

    def remote_head(self, timeout: float = 30.0) -> str:
        """Ask the remote which commit the followed ref points at (no fetch)."""
        if self.remote is None:
            return self.resolve(self.ref())
        ref = self.ref()
        out = git_text(["ls-remote", "--", self.remote, ref], timeout=timeout)
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        raise NotFoundError(f"{self.remote} has no {ref}; check the branch in gitswarm.yml")

    def fetch(self, timeout: float = 300.0) -> str:
        """Fetch the followed ref into the cache; returns its commit."""
        if self.remote is None:
            return self.resolve(self.ref())
        ref = self.ref()
        local = "refs/gitswarm/head"
        with self._lock:
            run_git(
                [
                    "--git-dir",
                    str(self.git_dir),
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--force",
                    "--prune",
                    "--",
                    self.remote,
                    f"+{ref}:{local}",
                    "+refs/heads/*:refs/heads/*",
                ],
                timeout=timeout,
            )
            self.last_fetched = self._git("rev-parse", "--verify", local + "^{commit}")
            return self.last_fetched

    def poll(self) -> tuple[str, bool]:
        """The followed ref's commit, and whether a fetch was needed to get it."""
        with self._lock:  # two polls at once would both fetch
            head = self.remote_head()
            if self.remote is not None and head != self.last_fetched and not self.has(head):
                return self.fetch(), True
            self.last_fetched = head
            return head, False

    def has(self, sha: str) -> bool:
        proc = run_git(
            ["--git-dir", str(self.git_dir), "cat-file", "-e", f"{sha}^{{commit}}"], check=False
        )
        return proc.returncode == 0

    def resolve(self, rev: str) -> str:
        """A full commit id for ``rev`` (sha, branch, tag, HEAD~1 ...)."""
        if rev.startswith("-"):
            raise UsageError(f"invalid revision {rev!r}")
        try:
            return self._git("rev-parse", "--verify", "--end-of-options", rev + "^{commit}")
        except SourceError as exc:
            if self.remote is not None and not _SHA.match(rev):
                try:
                    return self._git(
                        "rev-parse", "--verify", "--end-of-options", f"refs/heads/{rev}^{{commit}}"
                    )
                except SourceError:
                    pass
            raise NotFoundError(f"unknown revision {rev!r} in {self.spec}") from exc

    def head(self) -> str:
        """The commit to deploy when no revision is given."""
        if self.remote is not None:
            known = self.last_fetched  # no lock: a reader never waits for a poll
            if known is not None:
                return known
            with self._lock:  # the first call fetches: once, not once per thread
                return self.last_fetched or self.fetch()
        return self.resolve(self.ref())

    def commit_info(self, sha: str) -> CommitInfo:
        out = self._git("show", "-s", "--format=%H%x00%an%x00%ae%x00%cI%x00%s", sha)
        full, author, email, when, subject = (out.split("\0") + [""] * 5)[:5]
        return CommitInfo(full, author, email, when, subject)

    def commits_between(self, old: str | None, new: str, limit: int = 1000) -> list[CommitInfo]:
        """``git log old..new``: the commits ``new`` brings over ``old``, newest first, at
        most ``limit``; ``new`` alone when ``old`` is None, not a commit id, or unknown
        here (a first deployment, a rewritten history)."""
        if not _SHA.match(new):
            raise UsageError(f"not a commit id: {new!r}")
        spec = [f"{old}..{new}"] if old is not None and _SHA.match(old) and self.has(old) else []
        out = self._git(
            "log",
            f"--max-count={limit if spec else 1}",
            "--format=%H%x00%an%x00%ae%x00%cI%x00%s%x1e",
            *(spec or [new]),
            "--",
        )
        found = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if record:
                sha, author, email, when, subject = (record.split("\0") + [""] * 5)[:5]
                found.append(CommitInfo(sha, author, email, when, subject))
        return found

    def is_ancestor(self, old: str, new: str) -> bool:
        """Whether commit ``old`` is in the history of ``new`` (False when either is
        not a full commit id this cache holds)."""
        if not (_SHA.match(old) and _SHA.match(new)):
            return False
        proc = run_git(
            ["--git-dir", str(self.git_dir), "merge-base", "--is-ancestor", old, new], check=False
        )
        return proc.returncode == 0

    def changed_files(self, old: str, new: str) -> list[str]:
        out = self._git("diff", "--name-only", "--no-renames", old, new)
        return [line for line in out.splitlines() if line]
