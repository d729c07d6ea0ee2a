"""Fixtures shared by the integration tests of the agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.gitserve import GitRemote
from tests.conftest import SwarmUnderTest
from tests.integration.agent_rig import AgentRig
from tests.integration.faults import AgentProcess


@pytest.fixture()
def rig(
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
    registry: str,
) -> Iterator[AgentRig]:
    """A real agent (not yet started) on the session swarm, following a served remote."""
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    yield AgentRig(git_remote, tmp_path, stack_name)


@pytest.fixture()
def agents() -> Iterator[list[AgentProcess]]:
    """``gitswarm serve`` processes a test starts (append them): stopped after it."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()
