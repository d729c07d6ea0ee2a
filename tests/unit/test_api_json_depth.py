"""Deeply nested JSON: every JSON body the HTTP side accepts (each provider's webhook,
the API's sync options) is bounded in nesting before it is parsed, and a body nested
10,000 deep is a 400 that says where and what to do — not a RecursionError, a 500 and a
traceback in the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from gitswarm.api import ApiSettings, Grant, WebhookSecrets, hash_token, json_body
from gitswarm.api.webhooks import sign, sign_generic
from gitswarm.errors import UsageError
from tests.fake_agent import FakeAgent, client_for
from tests.shared_app import SharedApp, shared_app

SECRET = "depth-secret-41c"
TOKEN = "depth-admin-token-9d"
DEEP = b"[" * 10_000 + b"]" * 10_000
MESSAGE = (
    "the body nests JSON arrays/objects deeper than 64 levels (at line 1, column 65); "
    "send a flatter document"
)


def signed(provider: str, body: bytes) -> dict[str, str]:
    digest = sign(SECRET, body)
    return {
        "github": {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest}"},
        "gitlab": {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET},
        "gitea": {"X-Gitea-Event": "push", "X-Gitea-Signature": digest},
        "generic": {"X-Gitswarm-Signature": sign_generic(SECRET, body, int(time.time()))},
    }[provider]


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every body that reaches the JSON parser."""
    calls: list[bytes] = []
    real = json_body.json.loads

    def loads(body: bytes) -> Any:
        calls.append(body)
        return real(body)

    monkeypatch.setattr(json_body, "json", SimpleNamespace(loads=loads))
    return calls


@pytest.fixture(scope="module")
def shared() -> SharedApp:
    secrets = (SECRET,)
    settings = ApiSettings(
        tokens={hash_token(TOKEN): Grant("root", frozenset({"admin"}))},
        webhooks=WebhookSecrets(github=secrets, gitlab=secrets, gitea=secrets, generic=secrets),
        audit=lambda *_args: None,
    )
    return shared_app(settings)


@pytest.fixture
def client(shared: SharedApp, agent: FakeAgent) -> Iterator[Any]:
    with (
        shared.bound(agent=agent) as app,
        client_for(app, raise_server_exceptions=False) as c,
    ):
        yield c


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea", "generic"])
def test_a_signed_webhook_nested_10000_deep_is_400_before_parsing(
    client: Any,
    agent: FakeAgent,
    parsed: list[bytes],
    caplog: pytest.LogCaptureFixture,
    provider: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    r = client.post(f"/webhooks/{provider}", content=DEEP, headers=signed(provider, DEEP))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["reason"] == "UsageError"
    assert r.json()["error"]["message"] == MESSAGE
    assert parsed == [] and agent.triggers == []
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


def test_a_form_encoded_github_payload_is_bounded_too(
    client: Any, agent: FakeAgent, parsed: list[bytes]
) -> None:
    from urllib.parse import urlencode

    body = urlencode({"payload": DEEP.decode()}).encode()
    headers = {**signed("github", body), "Content-Type": "application/x-www-form-urlencoded"}
    r = client.post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["message"] == MESSAGE
    assert parsed == [] and agent.triggers == []


def test_the_api_sync_body_is_bounded_too(
    client: Any, agent: FakeAgent, parsed: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    deep = b'{"reason": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    r = client.post(
        "/api/v1/apps/web/envs/production/sync",
        content=deep,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == (
        "the body nests JSON arrays/objects deeper than 64 levels (at line 1, column 75); "
        "send a flatter document"
    )
    assert parsed == [] and agent.triggers == []
    assert "Traceback" not in caplog.text


def test_64_levels_are_parsed_and_65_are_refused(
    client: Any, agent: FakeAgent, parsed: list[bytes]
) -> None:
    inner = b"[" * 63 + b"]" * 63
    ok = b'{"ref": "refs/heads/main", "pad": ' + inner + b"}"
    r = client.post("/webhooks/generic", content=ok, headers=signed("generic", ok))
    assert r.status_code == 202, r.text
    assert parsed == [ok]
    deeper = b'{"ref": "refs/heads/main", "pad": [' + inner + b"]}"
    r = client.post("/webhooks/generic", content=deeper, headers=signed("generic", deeper))
    assert r.status_code == 400 and "deeper than 64 levels" in r.json()["error"]["message"]
    assert len(agent.triggers) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", 0),
        (b'"[[[["', 0),
        (b'{"a": "[\\"[[{", "b": [1, [2]]}', 3),
        (b'["\\\\", [["]]]"]]]', 3),
        (b"\n  [\n [ {} ] ]", 3),
    ],
)
def test_depth_counts_brackets_outside_strings(body: bytes, expected: int) -> None:
    assert json_body.depth(body) == expected


def test_the_error_names_the_line_and_column() -> None:
    body = b'{\n  "a": [\n    ' + b"[" * 70 + b"]" * 70 + b"\n  ]\n}"
    with pytest.raises(UsageError) as caught:
        json_body.loads(body, "the body")
    assert caught.value.message == (
        "the body nests JSON arrays/objects deeper than 64 levels (at line 3, column 67); "
        "send a flatter document"
    )
