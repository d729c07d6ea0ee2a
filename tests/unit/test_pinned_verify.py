"""Signed-commit checks pinned in the agent's own config: Git cannot weaken them.

Before the first deploy nothing in Git can be trusted, so a repository's own ``verify:``
cannot protect its first commit. An environment pinned in ``gitswarm serve --config``
(``verify:``) needs a trusted signature on every commit, whatever gitswarm.yml says.
Real git and ssh-keygen sign real commits; the swarm is the fake (no Docker here).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gitswarm.cli.serve import load_serve_config
from gitswarm.errors import ConfigError
from gitswarm.model.config import VerifySettings
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

pytestmark = pytest.mark.skipif(
    not shutil.which("ssh-keygen"), reason="needs ssh-keygen (scripts/bootstrap installs it)"
)


def _keygen(path: Path, comment: str) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )
    return path


def _commit_signed(repo: GitOpsRepo, key: Path, message: str) -> str:
    repo.git("add", "-A")
    repo.git(
        "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}",
        "commit", "-q", "-S", "--allow-empty", "-m", message,
    )  # fmt: skip
    return repo.git("rev-parse", "HEAD")


def test_a_pinned_environment_rejects_unsigned_commits_whatever_git_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(keys))
    release = _keygen(keys / "release", "release@example.com")
    mallory = _keygen(tmp_path / "mallory", "mallory@example.com")
    agent_yml = tmp_path / "agent.yml"
    agent_yml.write_text("repo: /srv/x\nverify:\n  dev: {mode: ssh, keys: [release.pub]}\n")
    pinned = load_serve_config(agent_yml, {}, {"GITSWARM_KEYS_DIR": str(keys)}).verify
    assert pinned == {"dev": VerifySettings(mode="ssh", keys=("release.pub",))}

    repo = GitOpsRepo(tmp_path / "repo", "pinned")
    repo.compose({"web": service()})
    first = repo.commit("the first commit, unsigned, and gitswarm.yml asks for nothing")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(source, store, lambda _t: swarm, pinned_verify=pinned)

        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert (outcome.result, outcome.reason) == ("Failed", "SignatureRejected")
        assert first[:12] in outcome.message and "not signed" in outcome.message
        assert not swarm.services("pinned")

        # The repository tries to name its own key: the pin still decides.
        repo.write_settings(verify={"mode": "ssh", "keys": [str(mallory) + ".pub"]})
        _commit_signed(repo, mallory, "trust mallory instead")
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert (outcome.result, outcome.reason) == ("Failed", "SignatureRejected")
        assert not swarm.services("pinned")

        repo.write_settings()
        signed = _commit_signed(repo, release, "signed by the release key")
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert (outcome.result, outcome.revision) == ("Succeeded", signed), outcome.message
        assert {s.name for s in swarm.services("pinned")} == {"pinned_web"}

        # Once deployed, an unsigned commit that drops nothing still needs the pin's key.
        repo.compose({"web": service("127.0.0.1:5000/busybox:2")})
        repo.commit("unsigned again")
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert outcome.reason == "SignatureRejected"
        status = store.get_status("app", "dev")
        assert status is not None and status.revision == signed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("verify: [prod]\n", "verify must map environment names"),
        ("verify: {prod: {mode: pgp, keys: [k.pub]}}\n", "verify.prod.mode must be gpg or ssh"),
        ("verify: {prod: {mode: ssh}}\n", "verify.prod: mode: ssh trusts no key"),
        ("verify: {prod: {mode: ssh, key: [k.pub]}}\n", "unknown key 'key'"),
        ("verify: {prod: {mode: gpg, allowed_signers: signers}}\n", "is for mode: ssh;"),
        ("verify: {prod: {mode: ssh, keys: [missing.pub]}}\n", "'missing.pub' is not a file"),
    ],
)
def test_a_bad_pin_stops_the_agent_at_start_with_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    agent_yml = tmp_path / "agent.yml"
    agent_yml.write_text("repo: /srv/x\n" + text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_serve_config(agent_yml, {}, {"GITSWARM_KEYS_DIR": str(tmp_path)})
    assert caught.value.message.startswith(f"{agent_yml}:2: ")


def test_a_bad_pin_in_block_style_names_the_environment_s_line(tmp_path: Path) -> None:
    agent_yml = tmp_path / "agent.yml"
    agent_yml.write_text("repo: /srv/x\nverify:\n  staging:\n    mode: ssh\n    keys: [k.pub]\n")
    with pytest.raises(ConfigError) as caught:
        load_serve_config(agent_yml, {}, {"GITSWARM_KEYS_DIR": str(tmp_path)})
    assert caught.value.message.startswith(f"{agent_yml}:3: verify.staging: trusted key file")
