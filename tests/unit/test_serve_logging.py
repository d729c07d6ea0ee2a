"""`gitswarm serve --log-format json`: one JSON object per line, bound with app/env/revision."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gitswarm.cli.serve import load_serve_config, setup_logging
from gitswarm.errors import ConfigError, UsageError


def test_json_logs_carry_the_bound_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    setup_logging("json", "info")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    monkeypatch.setattr(handler, "stream", stream)
    logging.getLogger("gitswarm.sync").info(
        "sync %s", "Succeeded", extra={"app": "shop", "env": "prod", "revision": "abc"}
    )
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["event"] == "sync Succeeded"
    assert (record["app"], record["env"], record["revision"]) == ("shop", "prod", "abc")
    assert record["level"] == "info" and "timestamp" in record
    logging.getLogger().handlers.clear()


def test_serve_settings_precedence_and_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "agent.yml"
    config.write_text("repo: /srv/repo\npoll_interval: 10\nenvironments: [dev]\n")
    loaded = load_serve_config(config, {"poll_interval": 3.0}, {"GITSWARM_STATE": "/x.db"})
    assert loaded.repo == "/srv/repo" and loaded.state == "/x.db"
    assert loaded.agent.poll_interval == 3.0 and loaded.agent.environments == ("dev",)
    with pytest.raises(UsageError, match="no repository"):
        load_serve_config(None, {}, {})
    with pytest.raises(ConfigError, match=r"^\$GITSWARM_POLL_INTERVAL: poll_interval must be"):
        load_serve_config(config, {}, {"GITSWARM_POLL_INTERVAL": "soon"})
    config.write_text("repo: x\n# the interval\npoll_intervall: 3\n")
    with pytest.raises(ConfigError, match=r"agent.yml:3: unknown setting 'poll_intervall'"):
        load_serve_config(config, {}, {})
    config.write_text("repo: x\nnotifications: {sync_broke: [json://x]}\n")
    with pytest.raises(ConfigError, match="unknown event kind"):
        load_serve_config(config, {}, {})
