"""Test images without Docker Hub, and a private registry to hold them.

Images are ``docker import``-ed from an in-memory rootfs tarball holding a static busybox
(Debian's busybox-static) and a few files. Each tag gets its own digest (a label and the
files differ). The registry is Debian's ``docker-registry`` (distribution 2.8) running in
the engine's network namespace on 127.0.0.1:5000, where dockerd treats it as insecure.

Images (all pushed to the registry as ``127.0.0.1:5000/<name>``):

- ``busybox:1``, ``busybox:2``: a busybox httpd on :4000 serving ``/health``.
- ``medianest/app:1.0.0``, ``1.1.0``, ``1.2.0``: the example repo's app (same shape).
- ``medianest/app:broken``: starts, but ``/health`` is missing: its healthcheck fails.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.engine import PrivateEngine, stop_pidfile
from harness.system import HarnessError, in_netns, journal, owned_env

REGISTRY = "127.0.0.1:5000"
APPLETS = (
    "sh", "httpd", "sleep", "wget", "cat", "echo", "timeout", "ls", "env", "true", "false",
    "id", "ps", "kill", "test", "[", "mkdir", "rm", "date", "printf", "nc", "hostname",
)  # fmt: skip


@dataclass(frozen=True)
class ImageSpec:
    name: str
    tag: str
    healthy: bool = True

    @property
    def ref(self) -> str:
        return f"{REGISTRY}/{self.name}:{self.tag}"


IMAGES = (
    ImageSpec("busybox", "1"),
    ImageSpec("busybox", "2"),
    ImageSpec("medianest/app", "1.0.0"),
    ImageSpec("medianest/app", "1.1.0"),
    ImageSpec("medianest/app", "1.2.0"),
    ImageSpec("medianest/app", "broken", healthy=False),
)


def _busybox() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.exists():
            return path
    found = shutil.which("busybox")
    if not found:
        raise HarnessError("busybox not found: apt-get install -y busybox-static")
    return Path(found)


def rootfs_tar(spec: ImageSpec) -> bytes:
    """A tarball of a tiny root filesystem for ``spec``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "www", "etc", "run", "var"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", _busybox().read_bytes(), 0o755)
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        add_file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\napp:x:1000:1000:app:/:/bin/sh\n")
        add_file("etc/group", b"root:x:0:\napp:x:1000:\n")
        add_file("www/index.html", f"{spec.name} {spec.tag}\n".encode())
        add_file("www/version", f"{spec.tag}\n".encode())
        if spec.healthy:
            add_file("www/health", b"ok\n")
    return buf.getvalue()


def build(engine_host: str, spec: ImageSpec) -> str:
    """``docker import`` the image into the engine at ``engine_host``; returns its ref."""
    changes = [
        'CMD ["/bin/httpd", "-f", "-p", "4000", "-h", "/www"]',
        "EXPOSE 4000",
        f"LABEL org.opencontainers.image.version={spec.tag}",
        "WORKDIR /",
        "ENV PATH=/bin",
    ]
    cmd = ["docker", "-H", engine_host, "import"]
    for change in changes:
        cmd += ["--change", change]
    cmd += ["-", spec.ref]
    proc = subprocess.run(cmd, input=rootfs_tar(spec), capture_output=True, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"docker import {spec.ref}: {proc.stderr.decode().strip()}")
    return spec.ref


@dataclass
class Registry:
    """A docker-registry process inside a network namespace.

    Several registries may share one ``storage`` folder (distribution's filesystem driver
    keeps no cache unless told to): the 3-node cluster runs one on 127.0.0.1:5000 in each
    node's namespace, so the same image references work on every node.
    """

    root: Path
    netns: str
    address: str = REGISTRY
    storage: Path | None = None
    owner: int = field(default_factory=os.getpid)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.storage or self.root / "data"

    def start(self, timeout: float = 20.0) -> Registry:
        if not shutil.which("docker-registry"):
            raise HarnessError("docker-registry not found: apt-get install -y docker-registry")
        journal(self.owner, "registry", str(self.root), dirs=[self.root], markers=[f"{self.root}/"])
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error}\n"
            "storage:\n"
            f"  filesystem: {{rootdirectory: {self.data}}}\n"
            "  delete: {enabled: true}\n"
            f"http: {{addr: '{self.address}'}}\n"
        )
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(
            in_netns(self.netns, ["docker-registry", "serve", str(config)]),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=owned_env(self.owner),
        )
        log.close()
        (self.root / "registry.pid").write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/v2/") is not None:
                return self
            if self.process.poll() is not None:
                raise HarnessError("docker-registry exited: " + self._log_tail())
            time.sleep(0.05)
        raise HarnessError("docker-registry did not answer: " + self._log_tail())

    def _log_tail(self) -> str:
        try:
            return (self.root / "registry.log").read_text()[-2000:]
        except OSError:
            return "(no log)"

    def get(self, path: str) -> str | None:
        """GET a registry URL from inside the namespace (the only place it listens)."""
        proc = subprocess.run(
            in_netns(
                self.netns,
                ["busybox", "wget", "-q", "-O", "-", f"http://{self.address}{path}"],
            ),
            capture_output=True,
            timeout=10,
            check=False,
        )
        return proc.stdout.decode() if proc.returncode == 0 else None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        elif self.process is None:
            stop_pidfile(self.root / "registry.pid", marker=f"{self.root}/")


def build_all(engine: PrivateEngine, *, push: bool = True) -> list[str]:
    refs = [build(engine.docker_host, spec) for spec in IMAGES]
    if push:
        for ref in refs:
            engine.docker("push", ref, timeout=120)
    return refs
