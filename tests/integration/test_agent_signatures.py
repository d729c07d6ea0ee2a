"""An environment that requires signed commits: unsigned ones are not applied."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import docker
import pytest

from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for

pytestmark = pytest.mark.swarm


def test_an_unsigned_commit_is_not_applied_and_status_says_why(
    rig: AgentRig, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    keys = tmp_path / "trusted"
    keys.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "release@example.com",
         "-f", str(keys / "release")],
        check=True,
    )  # fmt: skip
    rig.env_extra = {"verify": {"mode": "ssh", "keys": [str(keys / "release.pub")]}}
    unsigned = rig.push({"web": service()}, "unsigned")
    with running_rig(rig):
        wait_for(
            lambda: rig.status() is not None and rig.status().reason == "SignatureRejected", 30
        )
        status = rig.status()
        assert status.revision is None and status.sync == "OutOfSync"
        assert "not signed" in status.message or "unsigned" in status.message
        assert unsigned[:12] in status.message
        assert not docker_client.api.services(filters={"name": f"{rig.stack}_web"})

        assert rig.wc is not None
        rig.wc.write("README.md", "signed now\n")
        rig.wc.git("add", "-A")
        rig.wc.git(
            "-c", "gpg.format=ssh", "-c", f"user.signingkey={keys / 'release'}",
            "commit", "-q", "-S", "-m", "signed",
        )  # fmt: skip
        rig.wc.push()
        signed = rig.wc.head()
        assert rig.github_push(signed) == 202
        wait_for(rig.deployed(signed), 60)
        time.sleep(0.5)
        assert docker_client.api.services(filters={"name": f"{rig.stack}_web"})
