"""A private Docker engine in its own network namespace, for tests, the demo and benchmarks.

It never touches an engine it did not start: its own socket, data-root, exec-root,
pidfile, cgroup parent, containerd namespaces, ``/etc/docker`` (bind-mounted inside a
private mount namespace) and network namespace. Recipe and pitfalls:
``shared/notes/swarm-on-this-machine.md``.

Every engine writes a small state file under ``STATE_DIR``; ``reap_stale()`` stops engines
whose owning process is gone (a test run killed with SIGKILL), so a later run starts clean.
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

STATE_DIR = Path(os.environ.get("GITSWARM_HARNESS_STATE", "/run/gitswarm-harness"))


class HarnessError(RuntimeError):
    pass


def _run(cmd: list[str], *, check: bool = True, timeout: float = 60.0) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def create_netns(name: str) -> None:
    if netns_exists(name):
        _run(["ip", "netns", "delete", name], check=False)
    _run(["ip", "netns", "add", name])
    _run(["ip", "-n", name, "link", "set", "lo", "up"])


def delete_netns(name: str) -> None:
    if netns_exists(name):
        _run(["ip", "netns", "delete", name], check=False)


def in_netns(netns: str, cmd: list[str]) -> list[str]:
    """A command line that runs ``cmd`` inside ``netns`` (without remounting /sys)."""
    return ["nsenter", f"--net=/run/netns/{netns}", *cmd]


@dataclass
class PrivateEngine:
    """One dockerd of our own. ``start()`` it, ``stop()`` it; ``docker_host`` to use it."""

    name: str
    root: Path
    netns: str = ""
    insecure_registries: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    manage_netns: bool = True
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

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.docker_host
        return env

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        return _run(["docker", "-H", self.docker_host, *args], check=check, timeout=timeout)

    def start(self, *, timeout: float = 60.0) -> PrivateEngine:
        ensure_tools()
        if len(str(self.sock)) > 60:
            # containerd's sockets live under exec-root; unix socket paths max out at 104.
            raise HarnessError(f"engine root {self.root} is too long for unix sockets")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sub in ("data", "exec", "etc-docker"):
            (self.root / sub).mkdir(exist_ok=True)
        # Stale network namespaces of a previous daemon confuse a restarted one.
        shutil.rmtree(self.root / "exec" / "netns", ignore_errors=True)
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
            f"gitswarm-harness-{self.name}",
            "--containerd-namespace",
            f"gsh-{self.name}",
            "--containerd-plugins-namespace",
            f"gsh-{self.name}-plugins",
            *self.extra_args,
        ]
        # A private mount namespace: our own /etc/docker (engine ID, daemon.json) and no
        # remount of /sys (which `ip netns exec` would do and which breaks cgroup v1).
        inner = 'mount --bind "$1" /etc/docker && shift && exec "$@"'
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
                inner,
                "sh",
                str(self.root / "etc-docker"),
                *dockerd,
            ],
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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
            time.sleep(0.1)
        raise HarnessError(f"dockerd {self.name} did not answer in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def swarm_init(self, advertise_addr: str = "127.0.0.1") -> None:
        state = self.docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
        if state != "active":
            self.docker("swarm", "init", "--advertise-addr", advertise_addr)

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        assert self.process is not None
        state = {
            "name": self.name,
            "root": str(self.root),
            "netns": self.netns,
            "pid": self.process.pid,
            "owner": os.getpid(),
            "manage_netns": self.manage_netns,
        }
        (STATE_DIR / f"engine-{self.name}.json").write_text(json.dumps(state))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill dockerd only (a crash, for recovery tests); ``start()`` brings it back."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)

    def stop(self, *, remove: bool = True) -> None:
        pid = self.process.pid if self.process else _read_pid(self.pidfile)
        _stop_pid(pid)
        if self.process:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        _kill_leftovers(self.root)
        if self.manage_netns:
            delete_netns(self.netns)
        with contextlib.suppress(FileNotFoundError):
            (STATE_DIR / f"engine-{self.name}.json").unlink()
        if remove:
            _rmtree(self.root)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop_pid(pid: int | None, grace: float = 20.0) -> None:
    if not pid or not _pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_pidfile(path: Path) -> None:
    _stop_pid(_read_pid(path), grace=10.0)


def _kill_leftovers(root: Path) -> None:
    """containerd and shims of this engine that outlived dockerd (found by their paths)."""
    marker = str(root)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and int(proc.name) != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)


def _rmtree(path: Path) -> None:
    for _ in range(5):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.5)
    shutil.rmtree(path, ignore_errors=True)


def reap_stale() -> list[str]:
    """Stop engines whose owning process died; returns their names."""
    reaped: list[str] = []
    if not STATE_DIR.exists():
        return reaped
    for state_file in STATE_DIR.glob("engine-*.json"):
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state_file.unlink(missing_ok=True)
            continue
        if _pid_alive(int(state["owner"])):
            continue
        engine = PrivateEngine(
            name=state["name"],
            root=Path(state["root"]),
            netns=state["netns"],
            manage_netns=bool(state.get("manage_netns", True)),
        )
        _stop_pid(int(state["pid"]))
        engine.stop(remove=True)
        reaped.append(engine.name)
    return reaped


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
