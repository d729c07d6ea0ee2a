"""source/: reading revisions from a local clone or a cached remote; committing and pushing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitswarm.errors import NotFoundError, UsageError
from gitswarm.source.repo import RepoSource, is_url
from gitswarm.source.writer import push, working_copy


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture()
def remote(tmp_path: Path) -> tuple[Path, Path]:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    (work / "a.txt").write_text("1\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "first")
    git(work, "push", "-q", "origin", "HEAD:main")
    return bare, work


def commit_file(work: Path, name: str, text: str, message: str) -> str:
    (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-qm", message)
    git(work, "push", "-q", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD")


def test_urls_and_paths_are_told_apart() -> None:
    assert is_url("https://x/y.git") and is_url("file:///r.git") and is_url("git@host:r.git")
    assert not is_url("./repo") and not is_url("/srv/repo")


def test_a_poll_fetches_only_when_the_remote_moved(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, work = remote
    src = RepoSource.open(f"file://{bare}", cache=tmp_path / "cache")
    first, fetched = src.poll()
    assert fetched and first == git(work, "rev-parse", "HEAD")
    again, fetched = src.poll()
    assert again == first and not fetched
    new = commit_file(work, "b.txt", "2\n", "second")
    head, fetched = src.poll()
    assert head == new and fetched
    info = src.commit_info(new)
    assert info.subject == "second" and info.author == "t"
    assert src.changed_files(first, new) == ["b.txt"]


def test_local_clone_reads_committed_head_only(remote: tuple[Path, Path]) -> None:
    _, work = remote
    src = RepoSource.open(str(work))
    head = src.head()
    (work / "a.txt").write_text("uncommitted\n")
    assert src.head() == head
    with pytest.raises(NotFoundError):
        src.resolve("no-such-branch")
    with pytest.raises(UsageError):
        src.resolve("--upload-pack=evil")


def test_not_a_repository_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a Git repository"):
        RepoSource.open(str(tmp_path))


def test_commit_and_push_to_a_remote_survives_a_race(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, work = remote
    src = RepoSource.open(f"file://{bare}", cache=tmp_path / "cache")
    src.poll()
    with working_copy(src) as wc:
        wc.write("env/.env", b"APP_VERSION=2\n")
        assert wc.commit("promote 2") is not None
        commit_file(work, "other.txt", "x\n", "meanwhile")  # someone pushes first
        head = push(src, wc)
    log = git(bare, "log", "--format=%s", "main")
    assert log.splitlines()[:2] == ["promote 2", "meanwhile"]
    assert git(bare, "rev-parse", "main") == head


def test_restore_brings_a_folder_back_to_a_revision(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, work = remote
    first = git(work, "rev-parse", "HEAD")
    (work / "env").mkdir()
    commit_file(work, "env/new.txt", "added later\n", "add")
    src = RepoSource.open(f"file://{bare}", cache=tmp_path / "cache")
    src.poll()
    with working_copy(src) as wc:
        wc.restore(first, ["env", "a.txt"])
        assert not (wc.path / "env" / "new.txt").exists()
        assert wc.commit("rollback") is not None
        push(src, wc)
    assert "env/new.txt" not in git(bare, "ls-tree", "-r", "--name-only", "main")


def test_local_push_fast_forwards_a_clean_checkout_and_refuses_a_dirty_one(
    remote: tuple[Path, Path],
) -> None:
    _, work = remote
    src = RepoSource.open(str(work))
    with working_copy(src) as wc:
        wc.write("c.txt", b"c\n")
        wc.commit("add c")
        push(src, wc)
    assert (work / "c.txt").read_text() == "c\n"
    assert git(work, "status", "--porcelain") == ""
    (work / "a.txt").write_text("dirty\n")
    with working_copy(src) as wc, pytest.raises(UsageError, match="uncommitted"):
        wc.write("d.txt", b"d\n")
        wc.commit("add d")
        push(src, wc)
