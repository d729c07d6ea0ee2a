"""An ssh:// target, for real (issue 17): an engine reached only through OpenSSH's sshd.

The lab is a private engine in its own network namespace with Debian's openssh-server
running *inside that namespace* (on its 127.0.0.1:22), keys made here. Nothing outside the
namespace listens but a loopback forwarder (harness/tlsengine.py's NetnsForwarder) that
carries the ssh connection in; sshd lets the test's key in and forwards the engine's
socket. gitswarm reaches it with the identity and known_hosts of the agent config and
nothing else. A host key that is unknown or changed, and an identity the host refuses,
fail with a message that says what to check, and nothing deploys. One agent then runs
development on the session swarm, staging over ssh and production on a TLS-only engine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitswarm.cli.operator import load_operator
from gitswarm.reconcile.sync import Reconciler, SyncOutcome, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from harness.engine import PrivateEngine
from harness.gitserve import GitRemote
from harness.images import IMAGES, build
from harness.system import in_netns
from harness.tlsengine import NetnsForwarder
from tests.conftest import SwarmUnderTest, client_of, remove_stack_objects
from tests.gitops import _dump, service
from tests.integration.agent_rig import wait_for
from tests.integration.test_targets_tls import (  # noqa: F401  (tls_lab: a fixture)
    TlsLab,
    _agent,
    _healthy_at,
    _repo_files,
    _running,
    _tls,
    tls_lab,
)

pytestmark = pytest.mark.swarm

SSHD = Path("/usr/sbin/sshd")
SSH_PORT = 22  # inside the lab's namespace


@dataclass
class SshLab:
    engine: PrivateEngine  # reached by gitswarm only through sshd
    forwarder: NetnsForwarder  # 127.0.0.1:<port> here -> sshd in the namespace
    identity: Path
    stranger: Path  # a key the host does not know
    known_hosts: Path
    changed_known_hosts: Path  # another key for this host: a changed key, or a man in the middle
    unknown_known_hosts: Path  # no key for this host at all

    @property
    def port(self) -> int:
        return int(self.forwarder.address.rsplit(":", 1)[1])


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_name(path.name + ".pub").read_text().split()[1]


def _start_sshd(root: Path, netns: str) -> subprocess.Popen[bytes]:
    (root / "sshd_config").write_text(
        f"Port {SSH_PORT}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\n"
        f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "AllowStreamLocalForwarding local\nAllowTcpForwarding local\nX11Forwarding no\n"
        "AllowAgentForwarding no\nPermitTTY no\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    log = (root / "sshd.log").open("wb")
    process = subprocess.Popen(
        in_netns(netns, [str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")]),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return process


@pytest.fixture(scope="module")
def ssh_lab() -> Iterator[SshLab]:
    if not SSHD.exists() or shutil.which("ssh") is None:
        pytest.skip("needs openssh-server and openssh-client (./scripts/bootstrap)")
    root = Path(f"/var/tmp/gss{os.getpid()}")  # short: unix socket paths are limited
    keys = root / "ssh"
    keys.mkdir(parents=True, mode=0o700)
    host = _keygen(keys / "host")
    other = _keygen(keys / "other-host")
    _keygen(keys / "id")
    _keygen(keys / "stranger")
    (keys / "authorized_keys").write_text((keys / "id.pub").read_text())
    engine = PrivateEngine(name=f"ssh{os.getpid()}", root=root / "e")
    sshd: subprocess.Popen[bytes] | None = None
    forwarder: NetnsForwarder | None = None
    try:
        engine.start()
        engine.swarm_init()
        build(engine.docker_host, IMAGES[0])  # busybox:1, imported (no registry in there)
        sshd = _start_sshd(keys, engine.netns)
        forwarder = NetnsForwarder(engine.netns, port=SSH_PORT).start()
        port = int(forwarder.address.rsplit(":", 1)[1])
        deadline = time.monotonic() + 10
        while not _answers(port):
            if sshd.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((keys / "sshd.log").read_text())
            time.sleep(0.05)
        (keys / "known_hosts").write_text(f"[127.0.0.1]:{port} ssh-ed25519 {host}\n")
        (keys / "changed").write_text(f"[127.0.0.1]:{port} ssh-ed25519 {other}\n")
        (keys / "unknown").write_text(f"[127.0.0.2]:{port} ssh-ed25519 {host}\n")
        yield SshLab(
            engine,
            forwarder,
            identity=keys / "id",
            stranger=keys / "stranger",
            known_hosts=keys / "known_hosts",
            changed_known_hosts=keys / "changed",
            unknown_known_hosts=keys / "unknown",
        )
    finally:
        if forwarder is not None:
            forwarder.close()
        if sshd is not None:
            sshd.terminate()
            sshd.wait(timeout=10)
            print((keys / "sshd.log").read_text())  # shown when a test fails
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)


def _answers(port: int) -> bool:
    """sshd's banner came through the forwarder (a connect alone is the forwarder's)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
            return probe.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _repo(git_remote: GitRemote, stack: str) -> str:
    settings = {
        "project": "t",
        "application": {"name": "app", "stack": stack},
        "targets": {"edge": {}},
        "environments": {
            "dev": {"target": "edge", "sync": {"health_timeout": 60, "resolve_image": "never"}}
        },
    }
    wc = git_remote.clone()
    sha = wc.commit(
        "over ssh",
        files={
            "gitswarm.yml": _dump(settings),
            "base/docker-compose.yml": _dump({"services": {"web": service()}}),
            "environments/dev/docker-compose.yml": "services: {}\n",
        },
    )
    wc.push()
    return sha


def _sync(tmp: Path, remote: GitRemote, agent_yml: str) -> SyncOutcome:
    path = tmp / "agent.yml"
    path.write_text(agent_yml)
    operator = load_operator(path)
    store = Store(str(tmp / "state.db"))
    pool = SwarmPool(targets=operator.targets)
    try:
        source = RepoSource.open(remote.url, cache=tmp / "cache")
        reconciler = Reconciler(source, store, pool)
        return reconciler.sync(SyncRequest("app", "dev"))
    finally:
        pool.close()  # stops the tunnel
        store.close()


def _ssh_target(lab: SshLab, envs: list[str], **ssh: Path) -> dict[str, object]:
    files = {"identity": lab.identity, "known_hosts": lab.known_hosts, **ssh}
    return {
        "url": f"ssh://root@127.0.0.1:{lab.port}",
        "ssh": {
            **{k: str(v) for k, v in files.items()},
            "socket": str(lab.engine.sock),  # the engine's socket, on the host of sshd
        },
        "environments": envs,
    }


def _services(docker_host: str, stack: str) -> list[str]:
    with client_of(docker_host) as client:
        label = f"com.docker.stack.namespace={stack}"
        return [s.name for s in client.services.list(filters={"label": label})]


def test_a_stack_deploys_over_ssh_with_the_operator_s_key(
    swarm: SwarmUnderTest, ssh_lab: SshLab, git_remote: GitRemote, tmp_path: Path, stack_name: str
) -> None:
    sha = _repo(git_remote, stack_name)
    agent_yml = _dump({"targets": {"edge": _ssh_target(ssh_lab, ["dev"])}})
    try:
        outcome = _sync(tmp_path, git_remote, agent_yml)
        assert outcome.result == "Succeeded", outcome.message
        assert outcome.revision == sha
        assert outcome.verdict is not None  # waited: converged
        assert _services(ssh_lab.engine.docker_host, stack_name) == [f"{stack_name}_web"]
        assert _services(swarm.docker_host, stack_name) == []  # not on the local engine
        assert not list(Path("/tmp").glob("gitswarm-ssh-*/docker.sock"))  # the tunnel is gone
    finally:
        with client_of(ssh_lab.engine.docker_host) as client:
            remove_stack_objects(client, stack_name)


@pytest.mark.parametrize(
    ("which", "verdict", "hint"),
    [
        (
            "unknown",
            "Host key verification failed.",
            "the host's key is not in targets.edge.ssh.known_hosts; add it there after "
            "checking it (ssh-keyscan HOST, compared with the host's own key)",
        ),
        (
            "changed",
            "has changed and you have requested strict checking. Host key verification failed.",
            "the host's key is not the one in targets.edge.ssh.known_hosts (it changed, or "
            "something is in the middle); check the host's own key before replacing the "
            "entry there",
        ),
        (
            "identity",
            "root@127.0.0.1: Permission denied (publickey).",
            "the host refused targets.edge.ssh.identity; check that its public key is in the "
            "user's authorized_keys on the host",
        ),
    ],
)
def test_a_host_key_or_identity_that_does_not_match_fails_and_nothing_deploys(
    ssh_lab: SshLab,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    which: str,
    verdict: str,
    hint: str,
) -> None:
    _repo(git_remote, stack_name)
    files = {
        "unknown": {"known_hosts": ssh_lab.unknown_known_hosts},
        "changed": {"known_hosts": ssh_lab.changed_known_hosts},
        "identity": {"identity": ssh_lab.stranger},
    }[which]
    agent_yml = _dump({"targets": {"edge": _ssh_target(ssh_lab, ["dev"], **files)}})
    outcome = _sync(tmp_path, git_remote, agent_yml)
    assert outcome.result == "Failed" and outcome.reason == "SwarmFailed"
    message = outcome.message
    assert message.startswith(f"target 'edge' (ssh://root@127.0.0.1:{ssh_lab.port}): ssh failed (")
    assert message.endswith(f"{verdict}); {hint}")
    assert "@@@" not in message and "Traceback" not in message
    assert _services(ssh_lab.engine.docker_host, stack_name) == []


@pytest.mark.usefixtures("tls_lab")
def test_one_agent_runs_three_environments_on_local_ssh_and_tls_engines(
    swarm: SwarmUnderTest,
    ssh_lab: SshLab,
    tls_lab: TlsLab,  # noqa: F811
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """development on the session swarm (the local socket), staging over ssh://,
    production on the TLS-only engine over tcp://: one agent, one commit, three engines."""
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    agent_yml = _dump(
        {
            "targets": {
                "local": {"environments": ["development"]},
                "edge": _ssh_target(ssh_lab, ["staging"]),
                "tls": {
                    "url": f"tcp://{tls_lab.good.address}",
                    "tls": _tls(tls_lab.pki),
                    "environments": ["production"],
                },
            }
        }
    )
    envs = {"development": "local", "staging": "edge", "production": "tls"}
    engines = {
        "development": swarm.docker_host,
        "staging": ssh_lab.engine.docker_host,
        "production": tls_lab.engine.docker_host,
    }
    wc = git_remote.clone()
    sha = wc.commit("three engines", files=_repo_files(stack_name, envs, "1"))
    wc.push()
    try:
        with _agent(tmp_path, git_remote, agent_yml) as (_, store):
            for env in envs:
                wait_for(lambda env=env: _healthy_at(store, env, sha), 180)  # type: ignore[misc]
        for env, host in engines.items():
            assert _running(host, f"{stack_name}-{env}", "1"), env
            for other in set(engines.values()) - {host}:  # each stack on its own engine only
                assert _services(other, f"{stack_name}-{env}") == [], (env, other)
    finally:
        for env, host in engines.items():
            with client_of(host) as client:
                remove_stack_objects(client, f"{stack_name}-{env}")
