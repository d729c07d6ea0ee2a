"""The Git harness: a real bare remote over file://, git:// and http://, and its off switch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from harness.gitserve import GitRemote, GitServer
from harness.system import HarnessError


def test_a_push_over_http_is_seen_over_every_url(git_remote: GitRemote) -> None:
    wc = git_remote.clone()  # over HTTP, of the empty remote
    sha = wc.commit("first", files={"gitswarm.yml": "project: demo\n"})
    wc.push()

    assert git_remote.head() == sha
    for url in (git_remote.url, git_remote.git_url, git_remote.file_url):
        assert git_remote.ls_remote(url) == {"HEAD": sha, "refs/heads/main": sha}


def test_a_push_over_git_protocol_and_a_clone_over_http_agree(git_remote: GitRemote) -> None:
    first = git_remote.seed({"a.txt": "1\n"})
    wc = git_remote.clone(url=git_remote.git_url)
    assert wc.head() == first
    wc.write("dir/b.txt", "2\n")
    wc.remove("a.txt")
    second = wc.commit("second")
    wc.push()

    other = git_remote.clone()
    assert other.head() == second
    assert (other.path / "dir" / "b.txt").read_text() == "2\n"
    assert not (other.path / "a.txt").exists()


def test_commit_author_and_dates_are_what_the_test_says(git_remote: GitRemote) -> None:
    wc = git_remote.clone(url=git_remote.file_url)
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    wc.commit(
        "feat: x",
        files={"x": "x"},
        author="Grace Hopper <grace@example.com>",
        date=when,
        committer="CI Bot <ci@example.com>",
        committer_date="2026-03-02T08:00:00+00:00",
    )
    log = wc.git("log", "-1", "--format=%an|%ae|%aI|%cn|%ce|%cI|%s")
    assert log == (
        "Grace Hopper|grace@example.com|2026-03-01T12:30:00+00:00|"
        "CI Bot|ci@example.com|2026-03-02T08:00:00+00:00|feat: x"
    )


def test_a_large_push_over_http_arrives_whole(git_remote: GitRemote) -> None:
    # Above git's 1 MiB http.postBuffer the client sends a chunked request body.
    blob = bytes(range(256)) * 8192
    wc = git_remote.clone()
    sha = wc.commit("big", files={"big.bin": blob})
    wc.push()
    assert git_remote.head() == sha
    assert (git_remote.clone().path / "big.bin").read_bytes() == blob


def test_stopped_remote_refuses_and_comes_back_on_the_same_urls(git_remote: GitRemote) -> None:
    sha = git_remote.seed({"a.txt": "1\n"})
    urls = (git_remote.url, git_remote.git_url)

    git_remote.stop()
    for url in urls:
        with pytest.raises(HarnessError):
            git_remote.ls_remote(url)
    assert git_remote.ls_remote(git_remote.file_url)["HEAD"] == sha  # the files are still there

    git_remote.start()
    assert (git_remote.url, git_remote.git_url) == urls
    for url in urls:
        assert git_remote.ls_remote(url)["refs/heads/main"] == sha


def test_one_server_holds_several_remotes(git_server: GitServer) -> None:
    a, b = git_server.remote("a"), git_server.remote("b")
    sha_a = a.seed({"a": "a"})
    sha_b = b.seed({"b": "b"})
    assert a.ls_remote()["HEAD"] == sha_a
    assert b.ls_remote(b.git_url)["HEAD"] == sha_b
    with pytest.raises(HarnessError):
        git_server.remote("a")
