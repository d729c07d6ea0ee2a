"""The gitswarm agent image in a private engine: built by ``scripts/build-image`` (a
debootstrap rootfs, cached per machine under /var/cache/gitswarm-build) and imported.

Used by tests/integration/test_agent_image.py (marker ``image``). The first build on a
machine takes minutes (debootstrap, apt, the dependency wheels); later ones install only
gitswarm from this working tree on the cached base (about 15 s).

``scripts/test`` starts that build (``--output``, a rootfs tarball) at the very start of
a run, beside ``make check`` and the first tests, and names its folder in
``GITSWARM_TEST_AGENT_BUILD``: ``build()`` then waits for that one build and only imports
its tarball (seconds), so no test worker spends the minutes of a cold build, and every
worker that needs the image shares the one build (each imports it into its own engine).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.system import HarnessError, run

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-image"
# The folder of the run's own build (scripts/test): ``rootfs.tar`` and ``build.log``,
# then ``rc`` (the build's exit status) once it has ended.
PREBUILT_ENV = "GITSWARM_TEST_AGENT_BUILD"


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    seconds: float  # how long the build and import took
    log: str


def build(docker_host: str, ref: str, *, timeout: float = 1500.0) -> BuiltImage:
    """Build the agent image from this working tree and import it into the engine at
    ``docker_host`` as ``ref`` — or, in a run of scripts/test, import the run's build."""
    started = time.monotonic()
    prebuilt = os.environ.get(PREBUILT_ENV)
    args = ["--tag", ref, "--docker-host", docker_host]
    waited = ""
    if prebuilt:
        tarball = wait_for_build(Path(prebuilt), timeout)
        waited = f"waited {time.monotonic() - started:.0f}s for the run's build; "
        args = ["--import", str(tarball), *args]
    proc = subprocess.run(
        [str(BUILD_SCRIPT), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(f"scripts/build-image failed ({proc.returncode}):\n{proc.stderr}")
    return BuiltImage(ref, time.monotonic() - started, waited + proc.stderr)


def wait_for_build(folder: Path, timeout: float) -> Path:
    """The rootfs tarball of the build scripts/test started in ``folder``, once it ended
    well; HarnessError with its log if it failed or did not end within ``timeout``."""
    deadline = time.monotonic() + timeout
    rc_file = folder / "rc"
    while not rc_file.exists():
        if time.monotonic() > deadline:
            raise HarnessError(
                f"the run's agent image build in {folder} did not end in {timeout:.0f}s"
            )
        time.sleep(1.0)
    rc = rc_file.read_text().strip()
    log = (
        (folder / "build.log").read_text(errors="replace")
        if (folder / "build.log").exists()
        else ""
    )
    tarball = folder / "rootfs.tar"
    if rc != "0" or not tarball.is_file():
        raise HarnessError(f"the run's agent image build failed ({rc or 'no status'}):\n{log}")
    return tarball


def gateway(docker_host: str) -> str:
    """The address of the engine's docker_gwbridge in its own network namespace: what
    a container on an overlay network reaches the engine's host side at."""
    out = run(["docker", "-H", docker_host, "network", "inspect", "docker_gwbridge"])
    try:
        (network,) = json.loads(out)
        return str(network["IPAM"]["Config"][0]["Gateway"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise HarnessError(f"docker_gwbridge has no gateway: {out[:200]}") from exc
