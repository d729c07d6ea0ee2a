"""The overview's "last operation": the newest non-dry-run operation of every app × env,
found without reading the whole history (the newest operations by id, then the
operation each status row points at)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitswarm.store import Store, overview


def test_the_newest_operation_of_each_pair_dry_runs_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overview, "RECENT", 5)
    with Store(str(tmp_path / "s.db")) as store:
        assert store.latest_operations() == {}
        old = store.start_operation("sync", "quiet", "production", holder="h", trigger="poll")
        store.finish_operation(old, "Succeeded")
        store.set_status("quiet", "production", operation_id=old)
        ops = [
            store.start_operation("sync", "web", "staging", holder="h", trigger="poll")
            for _ in range(7)
        ]
        dry = store.start_operation(
            "sync", "web", "staging", holder="h", trigger="user", dry_run=True
        )
        running = store.start_operation("sync", "api", "staging", holder="h", trigger="user")
        latest = store.latest_operations()
    assert latest[("web", "staging")].id == ops[-1] != dry
    assert latest[("api", "staging")].id == running
    assert latest[("api", "staging")].result == "Running"
    assert latest[("quiet", "production")].id == old  # out of the window: its status says
    assert set(latest) == {("web", "staging"), ("api", "staging"), ("quiet", "production")}
