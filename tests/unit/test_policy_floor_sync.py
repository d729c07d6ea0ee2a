"""A commit cannot switch off the policies meant to check it: the sync on FakeSwarm, with
real Git, a real store and the agent config as the operator writes it.

Attack: one commit sets ``no_privileged_containers: off`` in gitswarm.yml and adds a
service that mounts /var/run/docker.sock (root on every manager). With a floor pinned in
the agent config, or a deployed revision that enforced the rule, the sync fails with
PolicyViolation, names what held, and nothing reaches the swarm.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.cli.operator import load_operator
from gitswarm.cli.serve import load_serve_config
from gitswarm.errors import ConfigError, Reason
from gitswarm.model.events import Event
from gitswarm.notify import Notifier
from gitswarm.reconcile.outcome import RollbackOf
from gitswarm.reconcile.rollback import redeploy
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

ENV = "production"
SOCKET = "/var/run/docker.sock:/var/run/docker.sock"


class Sent(Notifier):
    """Records what would be sent (Apprise is never reached)."""

    def __init__(self) -> None:
        super().__init__({})
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


@dataclass
class Rig:
    repo: GitOpsRepo
    swarm: FakeSwarm
    store: Store
    reconciler: Reconciler
    sent: Sent

    def sync(self) -> Any:
        return self.reconciler.sync(SyncRequest("app", ENV))

    def mounts(self) -> list[Any]:
        return [
            s.spec["TaskTemplate"]["ContainerSpec"].get("Mounts", [])
            for s in self.swarm.services("floor")
        ]


@pytest.fixture()
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    agent_yml = tmp_path / "agent.yml"
    agent_yml.write_text(getattr(request, "param", "repo: /srv/x\n"))
    (tmp_path / "floor-rego").mkdir()
    (tmp_path / "floor-rego" / "sock.rego").write_text(DENY_SOCKET)
    config = load_serve_config(agent_yml, {}, {"GITSWARM_KEYS_DIR": str(tmp_path)})
    repo = GitOpsRepo(tmp_path / "repo", "floor", env=ENV)
    swarm, sent = FakeSwarm(), Sent()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(
            source, store, lambda _t: swarm, notifier=sent, pinned_policies=config.policies
        )
        yield Rig(repo, swarm, store, reconciler, sent)


FLOOR = "repo: /srv/x\npolicies:\n  production:\n    no_privileged_containers: enforce\n"
FLOOR_REGO = "repo: /srv/x\npolicies:\n  production:\n    rego: {mode: enforce, dir: floor-rego}\n"
DENY_SOCKET = """package gitswarm.sock
import rego.v1
deny contains msg if {
  some name, svc in input.services
  some v in svc.volumes
  socket(v)
  msg := sprintf("service %s mounts the Docker socket", [name])
}
socket(v) if {
  is_string(v)
  contains(v, "docker.sock")
}
socket(v) if {
  is_object(v)
  contains(v.source, "docker.sock")
}
"""


@pytest.mark.parametrize("rig", [FLOOR_REGO], indirect=True, ids=["floor-rego"])
def test_the_floor_s_rego_from_the_agent_s_host_blocks_what_the_repository_allows(
    rig: Rig, tmp_path: Path
) -> None:
    rig.repo.write_settings(policies={"default": "off", "rego": "off"})
    rig.repo.compose({"rootkit": service(volumes=[SOCKET])})
    rig.repo.commit("every policy off, the Docker socket mounted")
    outcome = rig.sync()
    assert (outcome.result, outcome.reason) == ("Failed", "PolicyViolation")
    assert f"{tmp_path / 'floor-rego' / 'sock.rego'}" in outcome.message
    assert "service rootkit mounts the Docker socket" in outcome.message
    assert not rig.swarm.services("floor")


@pytest.mark.parametrize("rig", [FLOOR], indirect=True, ids=["floor"])
def test_with_a_floor_one_commit_cannot_switch_off_the_rule_and_deploy_the_socket(
    rig: Rig,
) -> None:
    rig.repo.compose({"web": service()})
    first = rig.repo.commit("a clean service; gitswarm.yml enforces nothing")
    assert rig.sync().result == "Succeeded"

    rig.repo.write_settings(policies={"default": "off", "no_privileged_containers": "off"})
    rig.repo.compose({"web": service(), "rootkit": service(volumes=[SOCKET])})
    rig.repo.commit("switch the rule off and mount the Docker socket")
    outcome = rig.sync()

    assert (outcome.result, outcome.reason) == ("Failed", "PolicyViolation")
    assert "no_privileged_containers" in outcome.message and "docker.sock" in outcome.message
    assert (
        "no_privileged_containers: enforce (pinned by the agent's config; gitswarm.yml says off)"
    ) in outcome.message
    assert outcome.policy is not None and outcome.policy.modes["no_privileged_containers"] == (
        "enforce"
    )
    assert {s.name for s in rig.swarm.services("floor")} == {"floor_web"}  # nothing deployed
    status = rig.store.get_status("app", ENV)
    assert status is not None and status.revision == first
    assert [e.kind for e in rig.sent.events][-1] == "policy_violation"
    assert "pinned by the agent's config" in rig.sent.events[-1].message


@pytest.mark.parametrize("rig", [FLOOR], indirect=True, ids=["floor"])
def test_with_a_floor_even_the_first_commit_is_checked(rig: Rig) -> None:
    rig.repo.write_settings(policies={"no_privileged_containers": "off"})
    rig.repo.compose({"rootkit": service(volumes=[SOCKET])})
    rig.repo.commit("the very first commit")
    outcome = rig.sync()
    assert (outcome.result, outcome.reason) == ("Failed", "PolicyViolation")
    assert not rig.swarm.services("floor")


def test_without_a_floor_the_loosening_commit_is_checked_under_the_deployed_rules(
    rig: Rig,
) -> None:
    rig.repo.write_settings(policies={"no_privileged_containers": "enforce"})
    rig.repo.compose({"web": service()})
    first = rig.repo.commit("the rule enforced")
    assert rig.sync().result == "Succeeded"

    rig.repo.write_settings(policies={"no_privileged_containers": "off"})
    rig.repo.compose({"web": service(), "rootkit": service(volumes=[SOCKET])})
    rig.repo.commit("switch the rule off and mount the Docker socket, in one commit")
    outcome = rig.sync()

    assert (outcome.result, outcome.reason) == ("Failed", "PolicyViolation")
    assert (
        f"no_privileged_containers: enforce (as at {first[:12]}, the revision deployed last; "
        "this commit says off, which applies only from the commit after it is deployed)"
    ) in outcome.message
    assert {s.name for s in rig.swarm.services("floor")} == {"floor_web"}


def test_without_a_floor_a_loosening_alone_deploys_and_is_audited_and_notified(
    rig: Rig,
) -> None:
    """What a two-commit attacker can do without a floor: loosen first, exploit next.
    The loosening is said loudly -- audit, outcome, notification -- which is the
    operator's cue; the floor is what stops it."""
    rig.repo.write_settings(policies={"no_privileged_containers": "enforce"})
    rig.repo.compose({"web": service()})
    rig.repo.commit("the rule enforced")
    assert rig.sync().result == "Succeeded"

    rig.repo.write_settings(policies={"no_privileged_containers": "off"})
    loosening = rig.repo.commit("only switch the rule off")
    outcome = rig.sync()
    assert outcome.result == "Succeeded", outcome.message
    assert "this commit's policies are looser than those it was checked under" in (outcome.message)
    (audit,) = [
        e
        for e in rig.store.audit_events(target=f"app/{ENV}")
        if e.action == "policy-loosening-held"
    ]
    assert audit.details["revision"] == loosening
    assert audit.details["held"][0].startswith("no_privileged_containers: enforce (as at ")
    notified = rig.sent.events[-1]
    assert notified.kind == "sync_succeeded" and "looser" in notified.message

    rig.repo.compose({"web": service(), "rootkit": service(volumes=[SOCKET])})
    rig.repo.commit("now mount the socket")
    assert rig.sync().result == "Succeeded"  # the documented limit without a floor


def test_a_rollback_is_judged_under_its_own_policies_not_those_it_replaces(rig: Rig) -> None:
    """Tightening is not loosening in reverse: the agent's rollback to a revision it
    deployed before must work even when the bad revision added a rule the old stack
    breaks (the floor would still hold; the target is the store's, not a commit's)."""
    rig.repo.compose({"web": service(user="root")})
    good = rig.repo.commit("web runs as root; nothing enforced")
    assert rig.sync().result == "Succeeded"

    rig.repo.write_settings(policies={"no_root_containers": "enforce"})
    rig.repo.compose({"web": service(user="1000:1000")})
    rig.repo.commit("enforce no_root_containers, web as a user")
    assert rig.sync().result == "Succeeded"

    bad = RollbackOf(rig.repo.git("rev-parse", "HEAD"), Reason.HEALTH_TIMEOUT, "unhealthy")
    outcome = redeploy(rig.reconciler, "app", ENV, bad, to=good, message="roll back")
    assert (outcome.result, outcome.revision) == ("Succeeded", good), outcome.message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("policies: [production]\n", 2, "policies must map environment names"),
        ("policies:\n  production: enforce\n", 3, "policies.production must be a mapping"),
        (
            "policies:\n  production:\n    no_privileged_containers: sometimes\n",
            4,
            "policies.production.no_privileged_containers: mode must be enforce, warn or off, "
            "not 'sometimes'",
        ),
        (
            "policies:\n  production:\n    no_privleged_containers: enforce\n",
            4,
            "policies.production.no_privleged_containers: unknown policy rule -- did you mean "
            "no_privileged_containers?",
        ),
        (
            "policies:\n  production:\n    rego: {mode: enforce}\n",
            4,
            "policies.production.rego: a floor's rego needs dir: a folder of .rego files",
        ),
        (
            "policies:\n  production:\n    rego:\n      dir: nowhere\n",
            5,
            "policies.production.rego.dir: cannot read the folder",
        ),
    ],
)
def test_a_bad_floor_stops_the_agent_at_start_naming_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    agent_yml = tmp_path / "agent.yml"
    agent_yml.write_text("repo: /srv/x\n" + text)
    with pytest.raises(ConfigError) as caught:
        load_serve_config(agent_yml, {}, {"GITSWARM_KEYS_DIR": str(tmp_path)})
    assert f"{agent_yml}:{line}:" in str(caught.value)
    assert message in str(caught.value)

    with pytest.raises(ConfigError) as caught:  # `gitswarm sync --config` reads it too
        load_operator(agent_yml, {"GITSWARM_KEYS_DIR": str(tmp_path)})
    assert f"{agent_yml}:{line}:" in str(caught.value) and message in str(caught.value)

    result = CliRunner().invoke(cli, ["serve", "--config", str(agent_yml)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{agent_yml}:{line}:" in result.output and message in result.output
