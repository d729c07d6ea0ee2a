"""What a run leaves behind is found (the session-finish check) and removed (the reaper)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from harness import system
from harness.gitserve import GitServer


def test_leftovers_of_a_dead_owner_are_found_and_cleaned(tmp_path: Path) -> None:
    with subprocess.Popen(["true"]) as gone:
        pass
    owner = gone.pid  # a run that died (kill -9): its journal and mark remain
    server = GitServer(tmp_path / "git", owner=owner).start()
    ns, folder = f"gsh-l{uuid.uuid4().hex[:7]}", tmp_path / "data"
    system.journal(owner, "test", ns, netns=[ns], dirs=[folder])
    system.create_netns(ns)
    folder.mkdir()
    try:
        found = system.leftovers(owner)
        assert any(x.startswith("process ") and "git daemon" in x for x in found), found
        assert f"network namespace {ns}" in found
        assert f"folder {folder}" in found

        assert f"git {server.root}" in system.clean(owner)
        assert system.leftovers(owner) == []
        assert not system.netns_exists(ns) and not folder.exists()
    finally:
        server.stop()
        system.clean(owner)


def test_reap_removes_empty_cgroup_parents_of_engines_that_are_gone() -> None:
    hierarchy = next(d for d in Path("/sys/fs/cgroup").iterdir() if (d / "cgroup.procs").exists())
    parent = hierarchy / f"gitswarm-harness-z{uuid.uuid4().hex[:7]}"
    (parent / "container").mkdir(parents=True)  # as dockerd's --cgroup-parent leaves them
    try:
        system.reap_stale()
        assert not parent.exists()
    finally:
        for d in (parent / "container", parent):
            if d.exists():
                d.rmdir()
