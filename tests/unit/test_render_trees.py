"""The Tree protocol: an in-memory Tree for unit tests, and one contract that it, the
working tree (WorkTree) and a Git commit (GitTree, real git) all keep."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from gitswarm.errors import PathError, UsageError
from gitswarm.model.tree import Tree, join_path, normalize_path
from gitswarm.source.tree import GitTree, WorkTree


class MemoryTree:
    """Files (path -> bytes) and symlinks (path -> target), resolved like GitTree."""

    def __init__(
        self,
        files: Mapping[str, bytes | str],
        symlinks: Mapping[str, str] | None = None,
        revision: str | None = None,
    ) -> None:
        self.files = {
            normalize_path(k): v.encode() if isinstance(v, str) else v for k, v in files.items()
        }
        self.symlinks = dict(symlinks or {})
        self._revision = revision

    @property
    def revision(self) -> str | None:
        return self._revision

    def _dirs(self) -> set[str]:
        out: set[str] = set()
        for path in [*self.files, *self.symlinks]:
            parts = path.split("/")
            out.update("/".join(parts[:i]) for i in range(1, len(parts)))
        return out

    def _resolve(self, path: str) -> str:
        parts = normalize_path(path).split("/")
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            candidate = "/".join([*done, part])
            if candidate in self.symlinks:
                hops += 1
                if hops > 40:
                    raise PathError(f"{path}: too many levels of symlinks")
                target = self.symlinks[candidate]
                if target.startswith("/"):
                    raise PathError(f"{candidate} is a symlink outside the repository")
                try:
                    parts = join_path("/".join(done), target).split("/") + parts
                except PathError:
                    raise PathError(f"{candidate} is a symlink outside the repository") from None
                done = []
                continue
            done.append(part)
        return "/".join(done)

    def read(self, path: str, *, limit: int) -> bytes:
        real = self._resolve(path)
        if real not in self.files:
            if real in self._dirs():
                raise PathError(f"{path} is not a regular file")
            raise PathError(f"{path} does not exist")
        data = self.files[real]
        if len(data) > limit:
            raise PathError(f"{path} is {len(data)} bytes, over the limit of {limit} bytes")
        return data

    def exists(self, path: str) -> bool:
        try:
            clean = normalize_path(path)
        except PathError:
            return False
        if clean in self.symlinks:
            return True
        try:
            real = self._resolve(clean)
        except PathError:
            return False
        return real in self.files or real in self._dirs()

    def is_dir(self, path: str) -> bool:
        if path in ("", "."):
            return True
        try:
            return self._resolve(path) in self._dirs()
        except PathError:
            return False

    def listdir(self, path: str) -> list[str]:
        prefix = "" if path in ("", ".") else self._resolve(path) + "/"
        names = {
            p[len(prefix) :].split("/")[0]
            for p in [*self.files, *self.symlinks]
            if p.startswith(prefix)
        }
        return sorted(names)


# --- one contract, three implementations ----------------------------------------------------

CONTENT = {
    "gitswarm.yml": "project: x\n",
    "base/docker-compose.yml": "services: {}\n",
    "environments/dev/configs/app.yml": "a: 1\n",
    "big.bin": "x" * 2000,
}
LINKS = {
    "environments/dev/link.yml": "configs/app.yml",  # inside: fine
    "shared": "environments/dev",  # a folder link, inside
    "escape.yml": "../outside.txt",  # leaves the repository
    "abs.yml": "/etc/passwd",  # absolute
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _write(root: Path) -> None:
    for path, text in CONTENT.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for path, target in LINKS.items():
        os.symlink(target, root / path)


def make_git_repo(
    root: Path, files: Mapping[str, str | bytes], links: Mapping[str, str] | None = None
) -> str:
    """A real repository with one commit; returns the commit id."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        (root / path).write_bytes(data)
    for path, target in (links or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / path)
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "test")
    return _git(root, "rev-parse", "HEAD").strip()


@pytest.fixture(params=["memory", "worktree", "gittree"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tree]:
    (tmp_path / "outside.txt").write_text("secret outside")
    if request.param == "memory":
        yield MemoryTree(CONTENT, LINKS)
        return
    root = tmp_path / "repo"
    root.mkdir()
    _write(root)
    if request.param == "worktree":
        yield WorkTree(root)
        return
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    # the working tree moves on; the GitTree must still show the commit
    (root / "gitswarm.yml").write_text("project: changed\n")
    yield GitTree(root, "main")


def test_reads_files(tree: Tree) -> None:
    assert tree.read("gitswarm.yml", limit=100) == b"project: x\n"
    assert tree.read("./base//docker-compose.yml", limit=100) == b"services: {}\n"


def test_follows_symlinks_inside_the_repository(tree: Tree) -> None:
    assert tree.read("environments/dev/link.yml", limit=100) == b"a: 1\n"
    assert tree.read("shared/configs/app.yml", limit=100) == b"a: 1\n"
    assert tree.is_dir("shared")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("escape.yml", "outside the repository"),
        ("abs.yml", "outside the repository"),
        ("../outside.txt", "leaves the repository"),
        ("base/../../outside.txt", "leaves the repository"),
        ("/etc/shadow", "absolute path"),
        ("missing.yml", "does not exist"),
        ("base", "not a regular file"),
    ],
)
def test_refuses(tree: Tree, path: str, words: str) -> None:
    with pytest.raises(PathError) as info:
        tree.read(path, limit=1000)
    assert words in str(info.value)
    assert "secret outside" not in str(info.value)


def test_size_limit(tree: Tree) -> None:
    assert len(tree.read("big.bin", limit=2000)) == 2000
    with pytest.raises(PathError, match="2000 bytes, over the limit of 1999"):
        tree.read("big.bin", limit=1999)


def test_listing(tree: Tree) -> None:
    assert tree.listdir("environments/dev") == ["configs", "link.yml"]
    assert tree.listdir("nope") == []
    assert "gitswarm.yml" in tree.listdir("")
    assert tree.exists("base/docker-compose.yml")
    assert not tree.exists("base/other.yml")
    assert not tree.exists("../outside.txt")
    assert tree.is_dir("base") and not tree.is_dir("gitswarm.yml")


def test_git_tree_reads_the_commit_not_the_working_tree(tmp_path: Path) -> None:
    commit = make_git_repo(tmp_path / "r", {"a.txt": "one"})
    (tmp_path / "r" / "a.txt").write_text("two (uncommitted)")
    (tmp_path / "r" / "new.txt").write_text("not committed")
    tree = GitTree(tmp_path / "r", "HEAD")
    assert tree.revision == commit
    assert tree.read("a.txt", limit=10) == b"one"
    assert not tree.exists("new.txt")
    assert WorkTree(tmp_path / "r").read("a.txt", limit=100) == b"two (uncommitted)"
    assert WorkTree(tmp_path / "r").revision is None


def test_git_tree_refuses_unknown_revisions_and_options(tmp_path: Path) -> None:
    make_git_repo(tmp_path / "r", {"a.txt": "one"})
    with pytest.raises(UsageError, match="not a commit"):
        GitTree(tmp_path / "r", "no-such-branch")
    with pytest.raises(UsageError, match="invalid revision"):
        GitTree(tmp_path / "r", "--output=/tmp/x")


def test_worktree_refuses_git_internals(tmp_path: Path) -> None:
    make_git_repo(tmp_path / "r", {"a.txt": "one"})
    with pytest.raises(PathError, match=r"\.git"):
        WorkTree(tmp_path / "r").read(".git/config", limit=10_000)


def test_symlink_loops_are_refused(tmp_path: Path) -> None:
    tree = MemoryTree({"x": "1"}, {"a": "b", "b": "a"})
    with pytest.raises(PathError, match="too many levels"):
        tree.read("a", limit=10)
    make_git_repo(tmp_path / "r", {"x": "1"}, {"a": "b", "b": "a"})
    with pytest.raises(PathError, match="too many levels"):
        GitTree(tmp_path / "r", "HEAD").read("a", limit=10)


def test_errors_carry_a_rule(tmp_path: Path) -> None:
    from gitswarm.model.tree import rule_of

    make_git_repo(tmp_path / "r", {"a.txt": "one", "d/b.txt": "two"}, {"out": "../x"})
    for tree in (WorkTree(tmp_path / "r"), GitTree(tmp_path / "r", "HEAD")):
        for path, rule in [
            ("missing", "file-missing"),
            ("d", "not-a-file"),
            ("out", "path-outside-repo"),
            ("../x", "path-outside-repo"),
        ]:
            with pytest.raises(PathError) as info:
                tree.read(path, limit=10)
            assert rule_of(info.value) == rule, (tree, path)
        with pytest.raises(PathError) as info:
            tree.read("a.txt", limit=1)
        assert rule_of(info.value) == "file-too-large"


def test_a_small_commit_is_read_by_one_git_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 13: one ``git cat-file`` per file was seven git processes per status."""
    import gitswarm.source.tree as tree_module

    files = {"a.txt": "one", "b/c.yml": "x: 1\n", "b/d.yml": "", "e.txt": "e" * 5000}
    make_git_repo(tmp_path / "r", files)
    calls: list[list[str]] = []
    real = tree_module.run_git

    def counting(args: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(list(args))
        return real(args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tree_module, "run_git", counting)
    tree = GitTree(tmp_path / "r", "HEAD")
    for name, text in files.items():
        assert tree.read(name, limit=10_000) == text.encode()
    assert [c[0] for c in calls] == ["rev-parse", "ls-tree", "cat-file"]
    with pytest.raises(PathError, match=r"e\.txt is 5000 bytes, over the limit of 100 bytes"):
        tree.read("e.txt", limit=100)  # read already, the caller's limit still holds
    monkeypatch.setattr(tree_module, "PREFETCH", 10)  # a large commit: file by file
    calls.clear()
    tree = GitTree(tmp_path / "r", "HEAD")
    assert tree.read("b/c.yml", limit=100) == b"x: 1\n"
    assert tree.read("a.txt", limit=100) == b"one"
    assert [c[0] for c in calls] == ["rev-parse", "ls-tree", "cat-file", "cat-file"]
