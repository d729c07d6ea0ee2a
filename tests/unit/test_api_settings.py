"""ApiSettings: safe defaults, token hashes only, grants checked, and the serve config
file's ``api:`` section read with secrets from files or the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitswarm.api import ApiSettings, Grant, WebhookSecrets, hash_token, settings_from_mapping
from gitswarm.errors import ConfigError


def test_defaults_are_closed_and_local() -> None:
    s = ApiSettings()
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.tokens == {} and s.anonymous_read is False
    assert all(not s.webhooks.for_provider(p) for p in ("github", "gitlab", "gitea", "generic"))
    assert s.max_body_bytes == 1024 * 1024
    assert callable(s.audit)


def test_token_hashes_are_normalised_and_tokens_refused() -> None:
    digest = hash_token("t")
    s = ApiSettings(tokens={"SHA256:" + digest.upper(): Grant("a")})
    assert list(s.tokens) == [digest]
    with pytest.raises(ConfigError, match="SHA-256"):
        ApiSettings(tokens={"my-plain-token": Grant("a")})


def test_grants_are_checked() -> None:
    g = Grant("ci", frozenset({"deployer"}), frozenset({"development", "staging"}))
    assert g.allows("deployer", "development") and g.allows("viewer", "staging")
    assert not g.allows("deployer", "production") and not g.allows("deployer", None)
    assert not g.allows("approver", "development") and not g.allows("admin", "development")
    admin = Grant("root", frozenset({"admin"}))
    assert all(admin.allows(role, "production") for role in ("viewer", "deployer", "approver"))
    assert admin.allows("deployer", None)
    for bad in (
        {"user": "", "roles": frozenset({"viewer"})},
        {"user": "x", "roles": frozenset({"superuser"})},
        {"user": "x", "roles": frozenset()},
        {"user": "x", "envs": frozenset({"Prod!"})},
        {"user": "x", "envs": frozenset()},
    ):
        with pytest.raises(ConfigError):
            Grant(**bad)  # type: ignore[arg-type]


def test_the_config_file_section(tmp_path: Path) -> None:
    secret_file = tmp_path / "github_webhook"
    secret_file.write_text("from-a-docker-secret\n")
    calls: list[object] = []
    s = settings_from_mapping(
        {
            "host": "0.0.0.0",  # noqa: S104 - a setting, not a bind here
            "port": 9090,
            "anonymous_read": True,
            "max_body_bytes": 2048,
            "unauthenticated_audit_rows": 20,
            "sign_in_slots": 4,
            "tokens": {
                "sha256:" + hash_token("a"): {
                    "user": "alice",
                    "roles": ["deployer"],
                    "envs": ["development"],
                },
                hash_token("b"): {"user": "bob"},
            },
            "webhooks": {
                "github": {"file": str(secret_file)},
                "gitlab": {"env": "GL_TOKEN"},
                "gitea": "plain",
                "generic": ["new", "old"],
            },
        },
        audit=lambda *a: calls.append(a),
        environ={"GL_TOKEN": "from-env"},
    )
    assert (s.host, s.port, s.anonymous_read, s.max_body_bytes) == ("0.0.0.0", 9090, True, 2048)  # noqa: S104
    assert s.unauthenticated_audit_rows == 20
    assert s.sign_in_slots == 4
    alice = s.tokens[hash_token("a")]
    assert alice.user == "alice" and alice.allows("deployer", "development")
    bob = s.tokens[hash_token("b")]
    assert bob.roles == frozenset({"viewer"}) and bob.envs == frozenset({"*"})
    assert s.webhooks.github == ("from-a-docker-secret",)
    assert s.webhooks.gitlab == ("from-env",)
    assert s.webhooks.gitea == ("plain",)
    assert s.webhooks.generic == ("new", "old")
    s.audit("a", "b", "c", {})
    assert calls == [("a", "b", "c", {})]


@pytest.mark.parametrize(
    "data",
    [
        {"anonymous_reads": True},  # a typo must not leave reads closed or open by accident
        {"tokens": {"plain-token": {"user": "a"}}},
        {"tokens": {hash_token("a"): {"roles": ["viewer"]}}},
        {"tokens": {hash_token("a"): {"user": "a", "role": ["viewer"]}}},
        {"tokens": {hash_token("a"): {"user": "a", "roles": ["root"]}}},
        {"tokens": ["not", "a", "mapping"]},
        {"webhooks": {"bitbucket": "x"}},
        {"webhooks": {"github": {"env": "UNSET_VARIABLE"}}},
        {"webhooks": {"github": {"file": "/nonexistent/secret"}}},
        {"webhooks": {"github": {"file": "a", "env": "b"}}},
        {"webhooks": {"github": ""}},
        {"webhooks": {"github": 5}},
        {"port": 70000},
        {"port": "8080"},
        {"anonymous_read": "yes"},
        {"max_body_bytes": True},
        {"host": None},
        {"max_body_bytes": 0},
        {"history_limit": 0},
        {"unauthenticated_audit_rows": 0},
        {"unauthenticated_audit_rows": "5"},
        {"sign_in_slots": 0},  # no sign-in could ever be checked
        {"sign_in_slots": 1000},  # 64 GiB of argon2 at once: the hole it closes
    ],
)
def test_bad_config_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        settings_from_mapping(data, environ={})


def test_secrets_and_hashes_stay_out_of_repr() -> None:
    s = ApiSettings(
        tokens={hash_token("tok"): Grant("a")}, webhooks=WebhookSecrets(gitea=("s3cr3t",))
    )
    text = repr(s)
    assert "s3cr3t" not in text and hash_token("tok") not in text
    assert "gitea" in text


def test_importing_the_api_never_imports_docker() -> None:
    """api/ is an edge above reconcile/: it reads the agent through its port, never Docker."""
    code = "import sys, gitswarm.api; print('docker' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
