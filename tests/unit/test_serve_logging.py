"""`gitswarm serve --log-format json`: one JSON object per line, bound with app/env/revision."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from gitswarm.api import ApiSettings, Grant, WebhookSecrets, create_app, hash_token, serve_in_thread
from gitswarm.api.webhooks import sign, sign_generic
from gitswarm.cli.serve import load_serve_config, setup_logging
from gitswarm.errors import ConfigError, UsageError
from gitswarm.reconcile.metrics import Metrics
from tests.fake_agent import FakeAgent


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


# --- no secret and no local variable in any log record (issue 11, point 4) ------------------

WEBHOOK_SECRET = "CANARY-webhook-secret-5be1d0"
API_TOKEN = "CANARY-api-token-77c2a9"
AGE_IDENTITY = "AGE-SECRET-KEY-1CANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYQ"
CANARIES = (WEBHOOK_SECRET, API_TOKEN, AGE_IDENTITY, "CANARY")


def _fail_holding_secrets(*_args: object, **_kwargs: object) -> object:
    """Fails in a frame whose locals hold an age identity, as a decryption frame would."""
    identity = os.environ["GITSWARM_AGE_KEY_PRODUCTION"]
    secrets = (WEBHOOK_SECRET, identity)
    raise RuntimeError(f"forced failure with {len(secrets)} values at hand")


def _requests() -> list[tuple[str, str, dict[str, str], bytes]]:
    """One request into every handler: each provider's webhook, each API route."""
    body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()
    digest = sign(WEBHOOK_SECRET, body)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    hooks = [
        ("github", {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest}"}),
        ("gitlab", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": WEBHOOK_SECRET}),
        ("gitea", {"X-Gitea-Event": "push", "X-Gitea-Signature": digest}),
        ("generic", {"X-Gitswarm-Signature": sign_generic(WEBHOOK_SECRET, body, int(time.time()))}),
    ]
    out = [("POST", f"/webhooks/{name}", headers, body) for name, headers in hooks]
    for path in (
        "/api/v1/status",
        "/api/v1/apps/web/envs/production",
        "/api/v1/apps/web/envs/production/diff",
        "/api/v1/history",
        "/api/v1/operations/1",
    ):
        out.append(("GET", path, auth, b""))
    out.append(("POST", "/api/v1/apps/web/envs/production/sync", auth, b"{}"))
    out.append(("GET", "/readyz", {}, b""))
    return out


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("where", ["handler", "agent"])
def test_forced_failures_in_every_handler_log_no_secret_and_no_locals(
    fmt: str, where: str, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """A real uvicorn server (its error log included): each request into every handler
    fails unexpectedly, in the handler's own frame or in the agent behind it. The log
    names each failure once, with a plain traceback: no local variable, no secret."""
    monkeypatch.setenv("GITSWARM_AGE_KEY_PRODUCTION", AGE_IDENTITY)
    setup_logging(fmt, "debug")
    stream = io.StringIO()
    monkeypatch.setattr(logging.getLogger().handlers[0], "stream", stream)
    agent = FakeAgent()
    if where == "agent":
        for method in ("statuses", "status", "history", "operation", "diff", "trigger"):
            monkeypatch.setattr(agent, method, _fail_holding_secrets)
        monkeypatch.setattr(agent, "readiness", _fail_holding_secrets)
    else:
        from gitswarm.api import v1, webhook_routes

        monkeypatch.setattr(webhook_routes, "read_body", _fail_holding_secrets)
        monkeypatch.setattr(v1, "read_body", _fail_holding_secrets)
        monkeypatch.setattr(v1, "call", _fail_holding_secrets)
        monkeypatch.setattr(agent, "readiness", _fail_holding_secrets)
    settings = ApiSettings(
        tokens={hash_token(API_TOKEN): Grant("root", frozenset({"admin"}))},
        webhooks=WebhookSecrets(
            github=(WEBHOOK_SECRET,),
            gitlab=(WEBHOOK_SECRET,),
            gitea=(WEBHOOK_SECRET,),
            generic=(WEBHOOK_SECRET,),
        ),
        audit=lambda *_args: None,
    )
    requests = _requests()
    with serve_in_thread(create_app(agent, settings, Metrics()), "127.0.0.1", 0) as server:
        statuses = [
            httpx.request(
                method, server.url + path, headers=headers, content=body, timeout=30
            ).status_code
            for method, path, headers, body in requests
        ]
    logging.getLogger().handlers[0].flush()
    text = stream.getvalue()
    # /readyz reports a failing agent as not ready (503); every other route answers 500.
    assert statuses == [500] * (len(requests) - 1) + [503], statuses
    # Each failure is logged exactly once (not again by uvicorn), with its traceback.
    assert text.count("forced failure with 2 values") == len(requests), text[-3000:]
    assert text.count("Traceback (most recent call last)") == len(requests)
    for canary in CANARIES:
        assert canary not in text
    assert "locals" not in text.lower()
    if fmt == "json":
        records = [json.loads(line) for line in text.splitlines()]
        assert all("exc_info" not in r for r in records)
        assert sum("exception" in r for r in records) == len(requests)
