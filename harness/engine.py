"""A private Docker engine in its own network namespace, for tests, the demo and benchmarks.

It never touches an engine it did not start: its own socket, data-root, exec-root,
pidfile, cgroup parent, containerd namespaces, ``/etc/docker`` (bind-mounted inside a
private mount namespace) and network namespace. Recipe and pitfalls:
``shared/notes/swarm-on-this-machine.md``.

Every engine writes a small state file under ``STATE_DIR`` and journals its namespace,
folders and cgroup parent (``harness.system``); ``reap_stale()`` removes engines whose
owning process is gone (a test run killed with SIGKILL), so a later run starts clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.system import (
    PERSISTENT,
    STATE_DIR,
    HarnessError,
    cmdline_contains,
    create_netns,
    delete_netns,
    in_netns,
    journal,
    netns_exists,
    owned_env,
    pid_alive,
    processes_naming,
    read_pid,
    reap_stale,
    remove_cgroup,
    rmtree,
    run,
    stop_pid,
    terminate,
)

__all__ = [
    "PERSISTENT",
    "STATE_DIR",
    "HarnessError",
    "PrivateEngine",
    "create_netns",
    "delete_netns",
    "ensure_tools",
    "in_netns",
    "netns_exists",
    "ping",
    "reap_stale",
    "stop_pidfile",
]


def ping(sock_path: Path, timeout: float = 1.0) -> bool:
    """GET /_ping on a Docker unix socket; True when the engine answers OK."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock_path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = s.recv(4096)
    except OSError:
        return False
    return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]


@dataclass
class PrivateEngine:
    """One dockerd of our own. ``start()`` it, ``stop()`` it; ``docker_host`` to use it.

    ``owner`` is the process whose death lets ``reap_stale()`` remove the engine (default:
    this process; ``PERSISTENT`` for labs that outlive their caller). ``hostname`` names
    the engine in its own UTS namespace (swarm node names); empty keeps the machine's.
    """

    name: str
    root: Path
    netns: str = ""
    insecure_registries: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    manage_netns: bool = True
    hostname: str = ""
    owner: int = field(default_factory=os.getpid)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.netns:
            self.netns = f"gsh-{self.name}"

    @property
    def sock(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def cgroup_parent(self) -> str:
        return f"gitswarm-harness-{self.name}"

    @property
    def state_file(self) -> Path:
        return STATE_DIR / f"engine-{self.name}.json"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.docker_host
        return env

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        return run(["docker", "-H", self.docker_host, *args], check=check, timeout=timeout)

    def start(self, *, timeout: float = 60.0) -> PrivateEngine:
        ensure_tools()
        if len(str(self.sock)) > 60:
            # containerd's sockets live under exec-root; unix socket paths max out at 104.
            raise HarnessError(f"engine root {self.root} is too long for unix sockets")
        journal(
            self.owner,
            "engine",
            self.name,
            netns=[self.netns] if self.manage_netns else [],
            dirs=[self.root],
            cgroups=[self.cgroup_parent],
            markers=[f"{self.root}/"],
        )
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sub in ("data", "exec", "etc-docker"):
            (self.root / sub).mkdir(exist_ok=True)
        # Stale network namespaces of a previous daemon confuse a restarted one.
        shutil.rmtree(self.root / "exec" / "netns", ignore_errors=True)
        # After a crash (kill -9) dockerd's containerd dies too, but may linger as a zombie
        # (init reaps orphans late on some machines); dockerd would take it for a live
        # containerd and wait for its socket in vain.
        containerd_pid = self.root / "exec" / "containerd" / "containerd.pid"
        stale = read_pid(containerd_pid)
        if stale and not pid_alive(stale):
            containerd_pid.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()
        if self.manage_netns and not netns_exists(self.netns):
            create_netns(self.netns)
        daemon = {
            "insecure-registries": list(self.insecure_registries),
            "log-level": "warn",
        }
        (self.root / "etc-docker" / "daemon.json").write_text(json.dumps(daemon))
        dockerd = [
            "dockerd",
            "--config-file",
            "/etc/docker/daemon.json",
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.pidfile),
            "-H",
            self.docker_host,
            "--cgroup-parent",
            self.cgroup_parent,
            "--containerd-namespace",
            f"gsh-{self.name}",
            "--containerd-plugins-namespace",
            f"gsh-{self.name}-plugins",
            *self.extra_args,
        ]
        # A private mount namespace: our own /etc/docker (engine ID, daemon.json) and no
        # remount of /sys (which `ip netns exec` would do and which breaks cgroup v1).
        # The UTS namespace carries the node's own hostname when it has one.
        inner = 'mount --bind "$1" /etc/docker && { [ -z "$2" ] || hostname "$2"; } && shift 2'
        cmd = in_netns(
            self.netns,
            [
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "slave",
                "sh",
                "-c",
                inner + ' && exec "$@"',
                "sh",
                str(self.root / "etc-docker"),
                self.hostname,
                *dockerd,
            ],
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=owned_env(self.owner),
        )
        log.close()
        self._write_state()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop(remove=False)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ping(self.sock):
                return
            if self.process.poll() is not None:
                raise HarnessError(
                    f"dockerd {self.name} exited ({self.process.returncode}); "
                    f"log:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        raise HarnessError(f"dockerd {self.name} did not answer in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def swarm_init(self, advertise_addr: str = "127.0.0.1", *extra: str) -> None:
        state = self.docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
        if state != "active":
            self.docker("swarm", "init", "--advertise-addr", advertise_addr, *extra)

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        assert self.process is not None
        state = {
            "name": self.name,
            "root": str(self.root),
            "netns": self.netns,
            "pid": self.process.pid,
            "owner": self.owner,
            "manage_netns": self.manage_netns,
            "cgroup": self.cgroup_parent,
        }
        self.state_file.write_text(json.dumps(state))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill dockerd only (a crash, for recovery tests); ``start()`` brings it back.

        Its containerd, shims and containers run on, as after a real crash.
        """
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)

    def stop(self, *, remove: bool = True, graceful: bool = True) -> None:
        """Stop dockerd and everything it left behind.

        ``graceful``: SIGTERM, dockerd stops its containers and leaves the swarm's networks
        (seconds); otherwise SIGKILL everything at once, for engines about to be removed.
        """
        pid = self.process.pid if self.process else read_pid(self.pidfile)
        stop_pid(pid, grace=20.0 if graceful else 0.0)
        if self.process:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        # containerd and shims that outlived dockerd (found by their paths), then
        # container processes orphaned by a killed shim (found by the cgroup parent).
        terminate(processes_naming(f"{self.root}/"))
        remove_cgroup(self.cgroup_parent)
        if self.manage_netns:
            delete_netns(self.netns)
        self.state_file.unlink(missing_ok=True)
        if remove:
            rmtree(self.root)


def stop_pidfile(path: Path, marker: str = "") -> None:
    """Stop the process named in ``path`` (only if its command line contains ``marker``)."""
    pid = read_pid(path)
    if pid and (not marker or cmdline_contains(pid, marker)):
        stop_pid(pid, grace=10.0)


REQUIRED_TOOLS = {
    "dockerd": "docker.io",
    "docker": "docker.io",
    "busybox": "busybox-static",
    "docker-registry": "docker-registry",
    "nsenter": "util-linux",
    "ip": "iproute2",
}


def ensure_tools() -> None:
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool)})
    if missing:
        raise HarnessError(
            "missing tools; run ./scripts/bootstrap (apt-get install -y " + " ".join(missing) + ")"
        )
