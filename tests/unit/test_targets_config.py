"""The operator's targets (issue 17): where each target is, its credentials, its pins.

A commit names a target; the agent config says where it is. What whoever can push tried:
pointing development at production's swarm (and production at development's), naming a
target the operator never defined. Each is refused at the line of ``target:`` before
anything is rendered, with the reason TargetNotAllowed. The operator's own mistakes
(missing TLS files, tcp:// without TLS, an alias of another target) stop the agent at
start with the file and line. ssh's command line is built from the operator's files only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitswarm.cli.operator import load_operator
from gitswarm.cli.serve import load_serve_config
from gitswarm.errors import ConfigError
from gitswarm.model.config import Target
from gitswarm.repo import load_config
from gitswarm.swarm.client import DockerSwarm, connection_problem
from gitswarm.swarm.targets import TargetTable, parse_targets
from gitswarm.swarm.tunnel import tunnel_argv
from tests.unit.test_render_trees import MemoryTree


@pytest.fixture()
def tls_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("ca", "cert", "key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(f"-----BEGIN {name.upper()}-----\n")
    return files


def _agent_yml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text(text)
    return path


def _table(tmp_path: Path, text: str) -> TargetTable:
    return load_operator(_agent_yml(tmp_path, text), {"GITSWARM_KEYS_DIR": str(tmp_path)}).targets


def test_the_agent_config_defines_targets_with_their_credentials(
    tmp_path: Path, tls_files: dict[str, Path]
) -> None:
    table = _table(
        tmp_path,
        "repo: /srv/repo\n"
        "targets:\n"
        "  prod:\n"
        "    url: tcp://10.0.0.5:2376\n"
        f"    tls: {{ca: {tls_files['ca']}, cert: cert.pem, key: key.pem}}\n"
        "    environments: [production]\n",
    )
    prod = table.endpoint("prod")
    assert prod.url == "tcp://10.0.0.5:2376"
    assert prod.tls_ca == str(tls_files["ca"])
    assert prod.tls_cert == str(tmp_path / "cert.pem")  # relative: from $GITSWARM_KEYS_DIR
    assert prod.environments == ("production",)
    assert table.endpoint("local") == Target("local")  # implicit


def test_serve_reads_the_same_targets(tmp_path: Path, tls_files: dict[str, Path]) -> None:
    path = _agent_yml(
        tmp_path,
        "repo: /srv/repo\ntargets:\n  prod:\n    url: tcp://10.0.0.5:2376\n"
        f"    tls: {{ca: {tls_files['ca']}, cert: {tls_files['cert']}, key: {tls_files['key']}}}\n",
    )
    config = load_serve_config(path, {}, {"GITSWARM_KEYS_DIR": str(tmp_path)})
    assert config.targets.endpoint("prod").tls_key == str(tls_files["key"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "    url: tcp://10.0.0.5:2376\n",
            "agent.yml:2: targets.prod: a tcp:// target needs tls: {ca, cert, key} (missing: "
            "ca, cert, key): without TLS every secret value would cross the network in clear "
            "text",
        ),
        (
            "    url: tcp://10.0.0.5:2376\n    tls: {ca: /nonexistent/ca.pem, cert: x, key: y}\n",
            "agent.yml:2: targets.prod.tls.ca: the CA certificate file '/nonexistent/ca.pem' "
            "cannot be read (No such file or directory",
        ),
        (
            "    url: tcp://10.0.0.5:2376\n    tls: {ca: /dev/null, cert: x, key: y}\n",
            "agent.yml:2: targets.prod.tls.ca: /dev/null is not a regular file",
        ),
        ("    url: http://10.0.0.5\n", "agent.yml:2: targets.prod.url: 'http://10.0.0.5' is not"),
        (
            "    url: ssh://deploy@host\n",
            "agent.yml:2: targets.prod: an ssh:// target needs ssh: {identity, known_hosts}",
        ),
        (
            "    url: ssh://deploy@host -oProxyCommand=x\n",
            "agent.yml:2: targets.prod.url: 'ssh://deploy@host -oProxyCommand=x' is not",
        ),
        ("    tlz: {}\n", "agent.yml:2: targets.prod: unknown key 'tlz'"),
        (
            "    environments: [dev]\n  other:\n    url: unix:///run/o.sock\n"
            "    environments: [dev]\n",
            "agent.yml:4: targets.other.environments: environment 'dev' is already pinned to "
            "target 'prod'",
        ),
        (
            "    url: unix:///run/x.sock\n  alias:\n    url: unix:///run/x.sock/\n",
            "agent.yml:4: targets.alias.url: target 'prod' already points at unix:///run/x.sock/; "
            "give each swarm one name",
        ),
    ],
)
def test_operator_mistakes_stop_the_agent_at_start_with_file_and_line(
    tmp_path: Path, spec: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _table(tmp_path, "targets:\n  prod:\n" + spec)
    text = caught.value.message.replace(str(tmp_path) + "/", "")
    assert text.startswith(message), text


# --- pins: what a commit may not do --------------------------------------------------------


PINNED = TargetTable(
    {
        "dev-swarm": Target("dev-swarm", url="unix:///run/dev.sock", environments=("dev",)),
        "prod-swarm": Target("prod-swarm", url="unix:///run/prod.sock", environments=("prod",)),
        "shared": Target("shared", url="unix:///run/shared.sock"),
    },
    source="/etc/gitswarm/agent.yml",
)


def test_an_environment_pinned_to_its_target_cannot_be_moved() -> None:
    assert PINNED.check("dev", "dev-swarm") is None
    assert PINNED.check("prod", "prod-swarm") is None
    assert PINNED.check("dev", "prod-swarm") == (
        "environment 'dev' names target 'prod-swarm', but /etc/gitswarm/agent.yml pins it to "
        "target 'dev-swarm' (targets.dev-swarm.environments): a commit cannot move an "
        "environment to another swarm. Set `target: dev-swarm` in gitswarm.yml, or change the "
        "pin in the agent config"
    )
    # production to development's swarm: its secrets would land where developers deploy
    assert "pins it to target 'prod-swarm'" in (PINNED.check("prod", "dev-swarm") or "")
    # a new environment cannot take a target that lists its environments
    assert PINNED.check("qa", "prod-swarm") == (
        "environment 'qa' names target 'prod-swarm', which takes only prod "
        "(targets.prod-swarm.environments in /etc/gitswarm/agent.yml): a commit cannot send "
        "one environment's stacks and secrets to another's swarm. Use the environment's own "
        "target, or add it to that list in the agent config"
    )
    assert PINNED.check("qa", "shared") is None  # an open target takes the unpinned


def test_a_target_the_operator_never_defined_is_refused() -> None:
    refused = TargetTable().check("prod", "attacker")
    assert refused is not None
    assert refused.startswith(
        "environment 'prod': target 'attacker' is not defined in the agent config (defined: "
        "local); where a target is and how to reach it is the operator's"
    )


def test_the_reconciler_refuses_the_commit_at_the_line_of_target(tmp_path: Path) -> None:
    from gitswarm.reconcile.sync import Reconciler

    text = (
        "project: shop\napplication: {name: web}\ntargets: {dev-swarm: {}, prod-swarm: {}}\n"
        "environments:\n  dev:\n    target: prod-swarm\n  prod: {target: prod-swarm}\n"
    )
    config = load_config(MemoryTree({"gitswarm.yml": text}))
    reconciler = Reconciler(source=None, store=None, swarm_for=None, targets=PINNED)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as caught:
        reconciler.check_target(config.environment("dev"))
    assert caught.value.reason == "TargetNotAllowed"
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.rule) == ("gitswarm.yml", 6, "target-pin")
    assert "pins it to target 'dev-swarm'" in problem.message
    reconciler.check_target(config.environment("prod"))  # allowed: no error


# --- reaching a target ----------------------------------------------------------------------


def test_the_docker_cli_gets_the_operator_s_tls_files(tls_files: dict[str, Path]) -> None:
    target = Target(
        "prod",
        url="tcp://127.0.0.1:1",
        tls_ca=str(tls_files["ca"]),
        tls_cert=str(tls_files["cert"]),
        tls_key=str(tls_files["key"]),
    )
    swarm = object.__new__(DockerSwarm)
    swarm.target, swarm._host = target, target.url
    assert swarm._cli_args() == [
        "--host", "tcp://127.0.0.1:1", "--tlsverify",
        "--tlscacert", str(tls_files["ca"]),
        "--tlscert", str(tls_files["cert"]), "--tlskey", str(tls_files["key"]),
    ]  # fmt: skip


def test_ssh_runs_with_the_operator_s_files_only() -> None:
    target = Target(
        "edge",
        url="ssh://deploy@edge.example:2222",
        ssh_identity="/etc/gitswarm/ssh/id",
        ssh_known_hosts="/etc/gitswarm/ssh/known_hosts",
    )
    argv = tunnel_argv(target, Path("/tmp/g/docker.sock"), "/usr/bin/ssh")
    assert argv[:5] == ["/usr/bin/ssh", "-N", "-T", "-F", "/dev/null"]
    options = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert options["IdentityFile"] == "/etc/gitswarm/ssh/id"
    assert options["IdentitiesOnly"] == "yes" and options["IdentityAgent"] == "none"
    assert options["UserKnownHostsFile"] == "/etc/gitswarm/ssh/known_hosts"
    assert options["StrictHostKeyChecking"] == "yes" and options["BatchMode"] == "yes"
    assert options["GlobalKnownHostsFile"] == "/dev/null"
    assert options["PermitLocalCommand"] == "no"
    assert argv[argv.index("-L") + 1] == "/tmp/g/docker.sock:/var/run/docker.sock"
    assert argv[-6:] == ["-l", "deploy", "-p", "2222", "--", "edge.example"]


def test_an_ssh_target_is_only_reached_through_its_tunnel() -> None:
    from gitswarm.errors import SwarmError

    with pytest.raises(SwarmError, match="ssh tunnel"):
        DockerSwarm(Target("edge", url="ssh://deploy@edge"))


def test_a_bad_url_never_reaches_ssh_as_an_option(tmp_path: Path) -> None:
    for url in ("ssh://-oProxyCommand=touch%20x@h", "ssh://user@-oProxyCommand=x"):
        with pytest.raises(ConfigError):
            parse_targets(
                {"e": {"url": url, "ssh": {"identity": "x", "known_hosts": "y"}}},
                "agent.yml:1",
                keys_dir=tmp_path,
            )


def test_connection_problems_name_the_target_and_what_to_check() -> None:
    import ssl

    target = Target("prod", url="tcp://10.0.0.5:2376")
    refused = ConnectionRefusedError(111, "Connection refused")
    assert connection_problem(target, target.url, refused) == (
        "target 'prod' (tcp://10.0.0.5:2376): cannot connect (connection refused); check that "
        "the engine runs and listens at that address (targets.prod.url in the agent config)"
    )
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] alert")
    text = connection_problem(target, target.url, OSError("wrapped", alert))
    assert text.startswith("target 'prod' (tcp://10.0.0.5:2376): the TLS handshake failed (")
    assert "check that targets.prod.tls.cert and .key are a client certificate" in text
    verify = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    assert "is not signed by targets.prod.tls.ca" in connection_problem(target, None, verify)


def test_ssh_s_verdict_is_kept_and_its_banner_dropped() -> None:
    from gitswarm.swarm.tunnel import _hint, _summary

    changed = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n" + "filler line\n" * 20 +
        "Host key for [h]:22 has changed and you have requested strict checking.\n"
        "Host key verification failed.\r\n"
    )  # fmt: skip
    assert _summary(changed) == (
        "Host key for [h]:22 has changed and you have requested strict checking. "
        "Host key verification failed."
    )
    target = Target("edge", url="ssh://h")
    assert "it changed, or something is in the middle" in _hint(target, changed)
    unknown = "No ED25519 host key is known for h and you have requested strict checking.\n"
    assert _hint(target, unknown + "Host key verification failed.\n").startswith(
        "the host's key is not in targets.edge.ssh.known_hosts; add it there"
    )


def test_an_ssh_target_that_hangs_does_not_hold_the_other_targets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While ssh waits on an unreachable host (up to its connect timeout), a sync on
    another target gets its client at once: the pool's lock is not held meanwhile."""
    import threading

    from gitswarm.swarm.pool import SwarmPool
    from gitswarm.swarm.tunnel import SshTunnel

    started, release = threading.Event(), threading.Event()

    def hanging_start(self: SshTunnel, timeout: float = 20.0) -> str:
        started.set()
        release.wait(10)
        return self.url

    monkeypatch.setattr(SshTunnel, "start", hanging_start)
    edge = Target("edge", url="ssh://deploy@edge", ssh_identity="i", ssh_known_hosts="k")
    table = TargetTable({"edge": edge, "prod": Target("prod", url="unix:///run/prod.sock")})
    made: list[str] = []

    def factory(target: Target, **kw: object) -> object:
        made.append(target.name)
        return object()

    pool = SwarmPool(factory, targets=table)  # type: ignore[arg-type]
    worker = threading.Thread(target=pool, args=(Target("edge"),))
    worker.start()
    try:
        assert started.wait(5)
        other = threading.Thread(target=pool, args=(Target("prod"),))
        other.start()
        other.join(2)
        assert not other.is_alive() and made == ["prod"]  # not held by edge's ssh
    finally:
        release.set()
        worker.join(10)
    assert made == ["prod", "edge"]
    monkeypatch.setattr(SshTunnel, "close", lambda self: None)
    pool._all.clear()  # the fakes have no close()
    pool.close()
