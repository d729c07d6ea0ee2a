"""A failed `docker stack deploy`: the engine refusing the stack is bad input (recorded
once, alerted once, not retried until Git moves on); an unreachable engine or a lost
race is transient (retried with backoff). The messages below are what the Docker CLI 28
printed on this machine's engine (docker.io 20.10), chatter included; the real-swarm
side is tests/integration/test_deploy_rejected.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitswarm.errors import DeployRejected, SwarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.events import Event
from gitswarm.notify import Notifier
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.client import deploy_failure
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

DETACH = (
    "Since --detach=false was not specified, tasks will be created in the background.\n"
    "In a future release, --detach=false will become the default.\n"
)
TAIL = " (not retried: the same commit would be refused again; push a fix)"

REFUSED = {
    "bogus mode": (
        "Ignoring unsupported options: security_opt\n\n"
        + DETACH
        + "service web: Unknown mode: bogus\n",
        "service web: Unknown mode: bogus",
    ),
    "restart condition": (
        DETACH + "failed to create service x_web: Error response from daemon: invalid "
        'RestartCondition: "sometimes"\n',
        "failed to create service x_web: Error response from daemon: invalid "
        'RestartCondition: "sometimes"',
    ),
    "port out of range": (
        "services.web.ports.0 Does not match format 'ports'\n",
        "services.web.ports.0 Does not match format 'ports'",
    ),
    "port in use": (
        DETACH + "failed to create service q2_web: Error response from daemon: rpc error: "
        "code = InvalidArgument desc = port '9090' is already in use by service 'ext' "
        "(t14nwk6cco6fm409w3iqzz8eo) as an ingress port\n",
        "failed to create service q2_web: Error response from daemon: rpc error: "
        "code = InvalidArgument desc = port '9090' is already in use by service 'ext' "
        "(t14nwk6cco6fm409w3iqzz8eo) as an ingress port",
    ),
    "undeclared network": (
        DETACH + 'service web: undefined network "nope"\n',
        'service web: undefined network "nope"',
    ),
    "missing external network": (
        DETACH + 'network "nope" is declared as external, but could not be found. You need '
        "to create a swarm-scoped network before the stack is deployed\n",
        'network "nope" is declared as external, but could not be found. You need to '
        "create a swarm-scoped network before the stack is deployed",
    ),
    "mode change": (
        DETACH + "failed to update service x_web: Error response from daemon: rpc error: "
        "code = Unimplemented desc = service mode change is not allowed\n",
        "failed to update service x_web: Error response from daemon: rpc error: "
        "code = Unimplemented desc = service mode change is not allowed",
    ),
    "cpu too small": (
        DETACH + "failed to update service x_web: Error response from daemon: rpc error: "
        "code = InvalidArgument desc = invalid cpu value 0.0001: Must be at least 0.001\n",
        "failed to update service x_web: Error response from daemon: rpc error: "
        "code = InvalidArgument desc = invalid cpu value 0.0001: Must be at least 0.001",
    ),
}

TRANSIENT = {
    "daemon down (socket)": (
        DETACH + "Cannot connect to the Docker daemon at unix:///tmp/nonexistent.sock. Is "
        "the docker daemon running?\n"
    ),
    "daemon down (tcp)": (
        DETACH + "Cannot connect to the Docker daemon at tcp://127.0.0.1:1. Is the docker "
        "daemon running?\n"
    ),
    # A spec refused by the CLI is not even converted while the engine is down: the
    # connection comes first.
    "daemon down, bogus mode": (
        "Ignoring unsupported options: security_opt\n\n" + DETACH + "Cannot connect to the "
        "Docker daemon at unix:///tmp/nonexistent.sock. Is the docker daemon running?\n"
    ),
    # Provoked here by updating the service from three threads during the deploy.
    "update out of sequence": (
        DETACH + "failed to update service x_web: Error response from daemon: rpc error: "
        "code = Unknown desc = update out of sequence\n"
    ),
    "no leader": (
        "Error response from daemon: rpc error: code = Unknown desc = The swarm does not "
        "have a leader. It's possible that too few managers are online. Make sure more "
        "than half of the managers are online.\n"
    ),
    "unavailable": (
        "failed to update service x_web: Error response from daemon: rpc error: code = "
        "Unavailable desc = connection error\n"
    ),
    "nothing said": "",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_stack_the_engine_or_the_cli_refuses_is_stalling_with_only_the_real_error(
    case: str,
) -> None:
    stderr, line = REFUSED[case]
    error = deploy_failure("x", 1, "Creating network x_default\n", stderr)
    assert isinstance(error, DeployRejected)
    assert not error.retryable and error.reason == "DeployRejected" and error.exit_code == 2
    assert error.message == f"docker stack deploy refused stack x: {line}{TAIL}"


@pytest.mark.parametrize("case", sorted(TRANSIENT))
def test_an_unreachable_engine_or_a_conflict_is_transient(case: str) -> None:
    error = deploy_failure("x", 1, "", TRANSIENT[case])
    assert type(error) is SwarmError
    assert error.retryable and error.reason == "SwarmFailed"
    assert "detach" not in error.message and "Ignoring" not in error.message
    if TRANSIENT[case]:
        last = TRANSIENT[case].strip().splitlines()[-1]
        assert error.message == f"docker stack deploy x failed: {last}"
    else:
        assert error.message == "docker stack deploy x failed (exit code 1)"


# --- the agent: once for a refusal, with backoff for transient trouble ----------------


class Recorder(Notifier):
    def __init__(self) -> None:
        super().__init__({})
        self.reasons: list[str | None] = []

    def send(self, event: Event) -> None:
        self.reasons.append(event.reason)


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _agent(
    tmp_path: Path, swarm: FakeSwarm, ticks: Ticks | None = None
) -> tuple[Agent, Store, Recorder, GitOpsRepo]:
    repo = GitOpsRepo(tmp_path / "repo", "refused")
    repo.compose({"web": service()})
    repo.commit("first")
    store = Store(str(tmp_path / "state.db"))
    source = RepoSource.open(str(repo.path))
    notifier = Recorder()
    reconciler = Reconciler(source, store, lambda _t: swarm, notifier=notifier)
    settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
    agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings,
                  notifier=notifier, monotonic=ticks or Ticks())  # fmt: skip
    return agent, store, notifier, repo


def _retries(agent: Agent) -> list[tuple[str, ...]]:
    return [t.key for t in agent.state.queue.timers if t.key[0] == "sync"]


def test_a_refused_stack_is_recorded_once_alerted_once_and_waits_for_a_new_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    swarm = FakeSwarm(cli_failure=REFUSED["bogus mode"][0])
    agent, store, notifier, repo = _agent(tmp_path, swarm)
    with store:
        agent.git.check(TriggerRequest("poll"))
        agent.run_pending()
        assert _retries(agent) == []  # nothing scheduled: the same commit fails the same way
        for _ in range(3):  # polls that find the same head: nothing new, nothing tried
            agent.git.check(TriggerRequest("poll"))
            agent.run_pending()
        ops = store.history(app="app", env="dev")
        assert [(o.kind, o.result, o.reason) for o in ops] == [("sync", "Failed", "DeployRejected")]
        assert ops[0].message == (
            "docker stack deploy refused stack refused: service web: Unknown mode: bogus" + TAIL
        )
        status = store.get_status("app", "dev")
        assert status is not None and status.sync == "OutOfSync"
        assert status.reason == "DeployRejected" and status.last_result == "Failed"
        assert notifier.reasons == ["DeployRejected"]
        assert swarm.log.count("deploy refused refused") == 1

        swarm.cli_failure = None  # a fixed commit is deployed at once
        repo.compose({"web": service(environment={"FIXED": "1"})})
        repo.commit("fix")
        agent.git.check(TriggerRequest("poll"))
        agent.run_pending()
        assert store.history(app="app", env="dev")[0].result == "Succeeded"


def test_an_unreachable_engine_is_retried_with_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    swarm = FakeSwarm(cli_failure=TRANSIENT["daemon down (socket)"])
    ticks = Ticks()
    agent, store, _notifier, _repo = _agent(tmp_path, swarm, ticks)
    queue = agent.state.queue
    with store:
        agent.git.check(TriggerRequest("poll"))
        agent.run_pending()
        assert _retries(agent) == [("sync", "app", "dev")]
        [first] = queue.timers
        assert first.due == ticks.now + 2.0
        assert store.history(app="app", env="dev")[0].reason == "SwarmFailed"
        ticks.now += 1.9
        agent.run_pending()  # not due yet: nothing tried
        assert len(store.history(app="app", env="dev")) == 1
        # The retry fires, fails again, and waits twice as long.
        ticks.now = first.due
        agent.run_pending()
        [second] = queue.timers
        assert queue.retries[("sync", "app", "dev")] == 2
        assert second.due == ticks.now + 4.0
        swarm.cli_failure = None
        ticks.now = second.due
        agent.run_pending()
        assert store.history(app="app", env="dev")[0].result == "Succeeded"
        assert ("sync", "app", "dev") not in queue.retries
        assert queue.timers == []
