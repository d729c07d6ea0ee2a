"""An ssh:// target, for real (issue 17): OpenSSH's sshd on loopback, keys made here.

The sshd (Debian's openssh-server, run as a process of this test on 127.0.0.1 only)
lets the test's key in and forwards the session swarm's socket; gitswarm reaches it with
the identity and known_hosts of the agent config and nothing else. A host key that is not
in known_hosts is refused with a message that says what to check, and nothing deploys.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitswarm.cli.operator import load_operator
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from harness.gitserve import GitRemote
from tests.conftest import SwarmUnderTest, client_of
from tests.gitops import _dump, service

pytestmark = pytest.mark.swarm

SSHD = Path("/usr/sbin/sshd")


@dataclass
class Sshd:
    port: int
    identity: Path
    known_hosts: Path
    changed_known_hosts: Path  # another key for this host: a changed key, or a man in the middle
    unknown_known_hosts: Path  # no key for this host at all


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().split()[1]


@pytest.fixture()
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    if not SSHD.exists() or shutil.which("ssh") is None:
        pytest.skip("needs openssh-server and openssh-client (./scripts/bootstrap)")
    root = tmp_path / "sshd"
    root.mkdir(mode=0o700)
    host = _keygen(root / "host")
    _keygen(root / "other-host")
    _keygen(root / "id")
    (root / "authorized_keys").write_text((root / "id.pub").read_text())
    port = _free_port()
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} ssh-ed25519 {host}\n")
    other = (root / "other-host.pub").read_text().split()[1]
    (root / "changed_known_hosts").write_text(f"[127.0.0.1]:{port} ssh-ed25519 {other}\n")
    (root / "unknown_known_hosts").write_text(f"[127.0.0.2]:{port} ssh-ed25519 {host}\n")
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\n"
        f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "AllowStreamLocalForwarding local\nAllowTcpForwarding local\nX11Forwarding no\n"
        "AllowAgentForwarding no\nPermitTTY no\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    log = (root / "sshd.log").open("wb")
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None:
                raise AssertionError((root / "sshd.log").read_text())
            time.sleep(0.05)
        yield Sshd(
            port,
            root / "id",
            root / "known_hosts",
            root / "changed_known_hosts",
            root / "unknown_known_hosts",
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        print((root / "sshd.log").read_text())  # shown when a test fails


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


def _sync(tmp: Path, remote: GitRemote, agent_yml: str) -> object:
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


def _agent_yml(swarm: SwarmUnderTest, sshd: Sshd, known_hosts: Path) -> str:
    socket_path = swarm.docker_host.removeprefix("unix://")
    return _dump(
        {
            "targets": {
                "edge": {
                    "url": f"ssh://root@127.0.0.1:{sshd.port}",
                    "ssh": {
                        "identity": str(sshd.identity),
                        "known_hosts": str(known_hosts),
                        "socket": socket_path,
                    },
                    "environments": ["dev"],
                }
            }
        }
    )


def test_a_stack_deploys_over_ssh_with_the_operator_s_key(
    swarm: SwarmUnderTest, sshd: Sshd, git_remote: GitRemote, tmp_path: Path, stack_name: str
) -> None:
    if not swarm.docker_host.startswith("unix://"):
        pytest.skip("forwards the session swarm's unix socket")
    sha = _repo(git_remote, stack_name)
    outcome = _sync(tmp_path, git_remote, _agent_yml(swarm, sshd, sshd.known_hosts))
    assert outcome.result == "Succeeded", outcome.message  # type: ignore[attr-defined]
    assert outcome.revision == sha  # type: ignore[attr-defined]
    assert outcome.verdict is not None  # type: ignore[attr-defined]  # waited: converged
    with client_of(swarm.docker_host) as client:
        label = f"com.docker.stack.namespace={stack_name}"
        assert [s.name for s in client.services.list(filters={"label": label})] == [
            f"{stack_name}_web"
        ]
    assert not list(Path("/tmp").glob("gitswarm-ssh-*/docker.sock"))  # the tunnel is gone


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
    ],
)
def test_a_host_key_not_in_known_hosts_is_refused_and_nothing_deploys(
    swarm: SwarmUnderTest,
    sshd: Sshd,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    which: str,
    verdict: str,
    hint: str,
) -> None:
    if not swarm.docker_host.startswith("unix://"):
        pytest.skip("forwards the session swarm's unix socket")
    _repo(git_remote, stack_name)
    known_hosts = sshd.unknown_known_hosts if which == "unknown" else sshd.changed_known_hosts
    outcome = _sync(tmp_path, git_remote, _agent_yml(swarm, sshd, known_hosts))
    assert outcome.result == "Failed" and outcome.reason == "SwarmFailed"  # type: ignore[attr-defined]
    message = outcome.message  # type: ignore[attr-defined]
    assert message.startswith(f"target 'edge' (ssh://root@127.0.0.1:{sshd.port}): ssh failed (")
    assert f"{verdict}); {hint}" in message
    assert message.endswith(hint)
    assert "@@@" not in message and "Traceback" not in message
    with client_of(swarm.docker_host) as client:
        label = f"com.docker.stack.namespace={stack_name}"
        assert client.services.list(filters={"label": label}) == []
