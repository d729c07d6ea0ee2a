"""The gitswarm agent image in a private engine: built by ``scripts/build-image`` (a
debootstrap rootfs, cached per machine under /var/cache/gitswarm-build) and imported.

Used by tests/integration/test_agent_image.py (marker ``image``). The first build on a
machine takes minutes (debootstrap, apt, the dependency wheels); later ones install only
gitswarm from this working tree on the cached base (about 15 s).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.system import HarnessError, run

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-image"


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    seconds: float  # how long the build and import took
    log: str


def build(docker_host: str, ref: str, *, timeout: float = 1500.0) -> BuiltImage:
    """Build the agent image from this working tree and import it into the engine at
    ``docker_host`` as ``ref``."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(BUILD_SCRIPT), "--tag", ref, "--docker-host", docker_host],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(f"scripts/build-image failed ({proc.returncode}):\n{proc.stderr}")
    return BuiltImage(ref, time.monotonic() - started, proc.stderr)


def gateway(docker_host: str) -> str:
    """The address of the engine's docker_gwbridge in its own network namespace: what
    a container on an overlay network reaches the engine's host side at."""
    out = run(["docker", "-H", docker_host, "network", "inspect", "docker_gwbridge"])
    try:
        (network,) = json.loads(out)
        return str(network["IPAM"]["Config"][0]["Gateway"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise HarnessError(f"docker_gwbridge has no gateway: {out[:200]}") from exc
