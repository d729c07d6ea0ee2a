"""ssh:// targets: OpenSSH forwards the remote engine's socket to a private local one (I/O edge).

``ssh -N -L <private dir>/docker.sock:/var/run/docker.sock user@host``, with only the
operator's files (swarm/targets.py): the identity of ``targets.<name>.ssh.identity``, the
host keys of ``ssh.known_hosts`` checked strictly, no ssh config, no agent, no password
prompt. docker-py and the Docker CLI then talk to the local socket as to any engine, over
one ssh connection that the pool keeps (swarm/pool.py) and restarts when it drops.

Why not the Docker CLI's own ``docker -H ssh://``: it runs ``ssh`` with options only from
the user's ~/.ssh/config (no identity or known_hosts of the operator's choosing), needs
``docker`` on the far side (``docker system dial-stdio``), opens one ssh connection per
request, and docker-py's version of it needs paramiko. A forwarded socket needs an sshd
that allows stream-local forwarding (OpenSSH's default) and the engine's socket path there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from gitswarm.errors import SwarmError
from gitswarm.model.config import Target
from gitswarm.swarm.targets import ssh_parts

STDERR_LIMIT = 4096


def ssh_binary() -> str:
    found = os.environ.get("GITSWARM_SSH") or shutil.which("ssh")
    if not found:
        raise SwarmError("ssh:// targets need OpenSSH's client; install openssh-client")
    return found


def tunnel_argv(target: Target, local_socket: Path, ssh: str = "ssh") -> list[str]:
    """The ssh command line that forwards ``target``'s engine socket to ``local_socket``.

    Every option is set here, none read from a config file: ``-F /dev/null``; only the
    operator's identity (no agent, no default keys); the host key must be in the operator's
    known_hosts (no prompt, no learning a new key); fail at once if the forward cannot be
    set up; keep-alives, so a dead connection is seen within a minute. The host comes after
    ``--``: it can never be read as an option."""
    if target.url is None or not target.ssh_identity or not target.ssh_known_hosts:
        raise SwarmError(f"target {target.name!r} is not a complete ssh target")
    user, host, port = ssh_parts(target.url)
    options = {
        "BatchMode": "yes",
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "IdentityFile": target.ssh_identity,
        "UserKnownHostsFile": target.ssh_known_hosts,
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes",
        "UpdateHostKeys": "no",
        "CheckHostIP": "no",
        "ExitOnForwardFailure": "yes",
        "StreamLocalBindUnlink": "yes",
        "StreamLocalBindMask": "0177",
        "ServerAliveInterval": "15",
        "ServerAliveCountMax": "3",
        "ConnectTimeout": "10",
        "PermitLocalCommand": "no",
        "ControlMaster": "no",
        "ControlPath": "none",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
    }
    argv = [ssh, "-N", "-T", "-F", "/dev/null"]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    argv += ["-L", f"{local_socket}:{target.ssh_socket}"]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", port]
    return [*argv, "--", host]


def _hint(target: Target, stderr: str) -> str:
    lowered = stderr.lower()
    if "remote host identification has changed" in lowered or "has changed and" in lowered:
        return (
            f"the host's key is not the one in targets.{target.name}.ssh.known_hosts (it "
            "changed, or something is in the middle); check the host's own key before "
            "replacing the entry there"
        )
    if "host key verification failed" in lowered or "no host key is known" in lowered:
        return (
            f"the host's key is not in targets.{target.name}.ssh.known_hosts; add it there "
            "after checking it (ssh-keyscan HOST, compared with the host's own key)"
        )
    if "permission denied" in lowered:
        return (
            f"the host refused targets.{target.name}.ssh.identity; check that its public key "
            "is in the user's authorized_keys on the host"
        )
    if "forward" in lowered or "socket" in lowered:
        return (
            f"the host would not forward {target.ssh_socket}; check targets.{target.name}"
            ".ssh.socket and that sshd allows AllowStreamLocalForwarding"
        )
    return f"check targets.{target.name}.url and that sshd answers there"


def _summary(stderr: str, limit: int = 300) -> str:
    """ssh's last words: its verdict comes last, after banners such as the '@@@' warning
    of a changed host key, which would otherwise fill the message."""
    lines = [" ".join(line.split()) for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.startswith("@")]
    return " ".join(lines[-2:])[-limit:]


class SshTunnel:
    """One ssh process forwarding ``target``'s engine socket; ``url`` to reach it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._dir = Path(tempfile.mkdtemp(prefix="gitswarm-ssh-"))  # mode 0700
        self.socket = self._dir / "docker.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> str:
        """Start (or restart) the forward; its url once the local socket answers."""
        self.stop()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._dir)}
        self._process = subprocess.Popen(
            tunnel_argv(self.target, self.socket, ssh_binary()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.socket.exists():
                return self.url
            if self._process.poll() is not None:
                stderr = self._stderr()
                raise SwarmError(
                    f"target {self.target.name!r} ({self.target.url}): ssh failed "
                    f"({_summary(stderr) or f'exit {self._process.returncode}'}); "
                    f"{_hint(self.target, stderr)}"
                )
            time.sleep(0.05)
        self.stop()
        raise SwarmError(
            f"target {self.target.name!r} ({self.target.url}): ssh did not set up the forward "
            f"within {timeout:.0f}s; {_hint(self.target, '')}"
        )

    def _stderr(self) -> str:
        if self._process is None or self._process.stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            return self._process.stderr.read(STDERR_LIMIT).decode("utf-8", "replace")
        return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if process.stderr is not None:
                process.stderr.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


__all__ = ["SshTunnel", "ssh_binary", "tunnel_argv"]
