"""The agent's retention setting: `retention:` in the serve config (whole days; 0 or
absent keeps everything; the audit trail kept unless configured), bad values refused
with file and line, and one round of the job pruning a real store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitswarm.cli.serve import load_serve_config
from gitswarm.errors import ConfigError
from gitswarm.reconcile.retention import RetentionSettings, prune_once
from gitswarm.store import Store


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text("repo: /srv/gitops\n" + text)
    return path


def test_retention_is_read_from_the_config(tmp_path: Path) -> None:
    path = _config(tmp_path, "retention:\n  operations_days: 90\n")
    config = load_serve_config(path, {}, {})
    assert config.retention == RetentionSettings(operations_days=90, audit_days=0)
    assert load_serve_config(_config(tmp_path, ""), {}, {}).retention.enabled is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("retention:\n  operations_days: -1\n",
         "agent.yml:3: retention.operations_days must be a whole number of days"),
        ("retention:\n  audit_days: 1.5\n",
         "agent.yml:3: retention.audit_days must be a whole number of days"),
        ("retention:\n  history_days: 3\n",
         "agent.yml:3: retention.history_days: unknown setting (known: operations_days"),
        ("retention: 30\n", "agent.yml:2: retention must be a mapping like"),
    ],
)  # fmt: skip
def test_bad_retention_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_serve_config(_config(tmp_path, text), {}, {})
    assert caught.value.message.startswith(f"{tmp_path}/{message}")


def test_one_round_prunes_old_operations_and_keeps_the_audit(tmp_path: Path) -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    clock = [now - timedelta(days=100)]
    with Store(str(tmp_path / "state.db"), clock=lambda: clock[0]) as store:
        old = store.record_operation("drift", "web", "prod", "Succeeded", trigger="agent")
        store.audit("alice", "sync", "web/prod")
        clock[0] = now
        new = store.record_operation("drift", "web", "prod", "Succeeded", trigger="agent")
        pruned = prune_once(store, RetentionSettings(operations_days=30), now=lambda: now)
        assert pruned.operations == 1 and pruned.audit_events == 0
        assert [o.id for o in store.history()] == [new] and old != new
        assert len(store.audit_events()) == 1
        prune_once(store, RetentionSettings(audit_days=30), now=lambda: now)
        assert store.audit_events() == []
