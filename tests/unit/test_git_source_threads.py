"""One RepoSource shared by the agent's git worker, its sync workers and the API threads:
the cache is fetched by one of them at a time, and readers meanwhile see whole commits.
Real git throughout; only the count of fetches running at once is taken on the way."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from gitswarm.source import repo as repo_module
from gitswarm.source.repo import RepoSource
from tests.unit.test_git_source import commit_file, git, remote  # noqa: F401 - fixture


class FetchMeter:
    """Wraps the real run_git: counts fetches, and the most running at the same time."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.lock = threading.Lock()
        self.running = self.most = self.fetches = 0

    def __call__(self, args: Sequence[str], **kwargs: Any) -> Any:
        if "fetch" not in args:
            return self.real(args, **kwargs)
        with self.lock:
            self.running += 1
            self.fetches += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.005)  # widen the window two unserialised fetches would share
            return self.real(args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def _at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except Exception as exc:  # noqa: BLE001 - reported below, not lost on the thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.fixture()
def meter(monkeypatch: pytest.MonkeyPatch) -> FetchMeter:
    meter = FetchMeter(repo_module.run_git)
    monkeypatch.setattr(repo_module, "run_git", meter)
    return meter


def test_polls_from_many_threads_fetch_once_and_never_two_at_a_time(
    remote: tuple[Path, Path],  # noqa: F811 - the fixture
    tmp_path: Path,
    meter: FetchMeter,
) -> None:
    bare, work = remote
    src = RepoSource.open(f"file://{bare}", cache=tmp_path / "cache")
    src.poll()
    meter.fetches = meter.most = 0
    new = commit_file(work, "b.txt", "2\n", "second")

    results = _at_once(8, src.poll)

    assert [r[0] for r in results] == [new] * 8, results
    assert meter.most == 1 and meter.fetches == 1
    assert sum(fetched for _, fetched in results) == 1


def test_the_first_head_is_fetched_once_however_many_threads_ask(
    remote: tuple[Path, Path],  # noqa: F811 - the fixture
    tmp_path: Path,
    meter: FetchMeter,
) -> None:
    bare, work = remote
    src = RepoSource.open(f"file://{bare}", cache=tmp_path / "cache")
    results = _at_once(6, src.head)
    assert results == [git(work, "rev-parse", "HEAD")] * 6
    assert meter.fetches == 1


def test_readers_see_whole_commits_while_fetches_run(
    remote: tuple[Path, Path],  # noqa: F811 - the fixture
    tmp_path: Path,
    meter: FetchMeter,
) -> None:
    bare, work = remote
    src = RepoSource.open(f"file://{bare}", cache=tmp_path / "cache")
    first, _ = src.poll()
    done = threading.Event()
    seen: list[str] = []
    errors: list[Exception] = []

    def read() -> None:
        while not done.is_set():
            try:
                head = src.head()
                seen.append(src.commit_info(head).sha)
                src.resolve(first)
            except Exception as exc:  # noqa: BLE001 - asserted empty below
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    shas = [first]
    for n in range(4):
        shas.append(commit_file(work, f"f{n}.txt", f"{n}\n", f"commit {n}"))
        assert _at_once(3, src.poll)[0][0] == shas[-1]
    done.set()
    for thread in readers:
        thread.join(10)
    assert errors == []
    assert set(seen) <= set(shas) and seen
    assert meter.most == 1
