"""Processes, network namespaces, cgroups and folders the harness creates, and their removal.

Two marks make everything a run starts findable again, even after ``kill -9`` of the run:

- every process the harness starts carries ``GITSWARM_HARNESS_OWNER=<owner pid>`` in its
  environment; dockerd hands it on to containerd and the shims (container processes do not
  inherit it: they are found through the engine's cgroup parent instead);
- every network namespace, folder and cgroup parent is written to the owner's journal
  ``STATE_DIR/run-<owner>.jsonl`` *before* it is created.

``leftovers(owner)`` lists what is left of one run (the session-finish check of the test
suite), ``clean(owner)`` removes it, and ``reap_stale()`` cleans every owner that died.
Owner ``PERSISTENT`` (pid 1, which never dies) marks labs that outlive their caller
(``python -m harness up``): they are not journalled, and only ``down`` removes them.

Called by ``engine``, ``images``, ``cluster``, ``gitserve`` and the test suite's conftest.
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = Path(os.environ.get("GITSWARM_HARNESS_STATE", "/run/gitswarm-harness"))
OWNER_ENV = "GITSWARM_HARNESS_OWNER"
PERSISTENT = 1
CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")


class HarnessError(RuntimeError):
    pass


def run(
    cmd: list[str],
    *,
    check: bool = True,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    input_bytes: bytes | None = None,
) -> str:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        input=input_bytes,
        timeout=timeout,
        check=False,
        env=None if env is None else dict(env),
    )
    stdout = proc.stdout.decode(errors="replace")
    if check and proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip()
        raise HarnessError(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr}")
    return stdout


def owned_env(owner: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a process started on behalf of ``owner``."""
    env = dict(os.environ if base is None else base)
    env[OWNER_ENV] = str(owner)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(host: str, port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.02)
    return False


# --- processes -------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _reap_child(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int | None, grace: float = 20.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL (at once when ``grace`` is 0)."""
    if not pid or not pid_alive(pid):
        return
    if grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        _reap_child(pid)
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap_child(pid)


def stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM a process group (a ``start_new_session`` child and its forks), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap_child(pgid)
        if not _group_alive(pgid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    _reap_child(pgid)


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs (zombies waiting for init do not)."""
    for pid in _pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Proc:
    pid: int
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.cmdline[:160]}"


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def cmdline_contains(pid: int, marker: str) -> bool:
    cmdline = _cmdline(pid)
    return cmdline is not None and marker in cmdline


def _pids() -> list[int]:
    me = os.getpid()
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != me]


def processes_of(owner: int) -> list[Proc]:
    """Live processes started on behalf of ``owner`` (by the environment mark)."""
    mark = f"{OWNER_ENV}={owner}".encode()
    found = []
    for pid in _pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if mark in environ.split(b"\0"):
            cmdline = _cmdline(pid)
            if cmdline:  # zombies and kernel threads have none
                found.append(Proc(pid, cmdline))
    return found


def processes_naming(marker: str) -> list[Proc]:
    """Live processes whose command line contains ``marker`` (e.g. ``root + '/'``)."""
    found = []
    for pid in _pids():
        cmdline = _cmdline(pid)
        if cmdline and marker in cmdline:
            found.append(Proc(pid, cmdline))
    return found


def terminate(procs: Iterable[Proc], *, grace: float = 20.0) -> None:
    """Stop processes: dockerd first and gently (it stops its containers), then the rest.

    With ``grace`` 0 everything gets SIGKILL at once.
    """
    procs = list(procs)
    daemons = [p for p in procs if grace > 0 and p.cmdline.split(" ", 1)[0].endswith("dockerd")]
    for p in daemons:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p.pid) for p in daemons):
        for p in daemons:
            _reap_child(p.pid)
        time.sleep(0.05)
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
        _reap_child(p.pid)


# --- network namespaces ----------------------------------------------------------------


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create_netns(name: str) -> None:
    if netns_exists(name):
        run(["ip", "netns", "delete", name], check=False)
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def delete_netns(name: str) -> None:
    if netns_exists(name):
        run(["ip", "netns", "delete", name], check=False)


def in_netns(netns: str, cmd: list[str]) -> list[str]:
    """A command line that runs ``cmd`` inside ``netns`` (without remounting /sys)."""
    return ["nsenter", f"--net={NETNS_DIR / netns}", *cmd]


# --- cgroups (dockerd --cgroup-parent) -------------------------------------------------


def _cgroup_roots() -> list[Path]:
    """The top of every mounted cgroup hierarchy (v2: the mount itself; v1: one each)."""
    roots = [CGROUP_ROOT]
    with contextlib.suppress(OSError):
        roots += [d for d in CGROUP_ROOT.iterdir() if d.is_dir() and not d.is_symlink()]
    return roots


def cgroup_dirs(parent: str) -> list[Path]:
    """The folders of cgroup ``parent`` in every mounted hierarchy."""
    return [r / parent for r in _cgroup_roots() if (r / parent).is_dir()]


def cgroup_pids(parent: str) -> set[int]:
    pids: set[int] = set()
    for top in cgroup_dirs(parent):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(line) for line in procs.read_text().split()}
    return pids


def remove_cgroup(parent: str) -> None:
    """Kill what still runs in cgroup ``parent`` (orphaned containers), then remove it."""
    for pid in cgroup_pids(parent):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for top in cgroup_dirs(parent):
        for _ in range(50):
            subdirs = sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True)
            try:
                for d in [*subdirs, top]:
                    d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY while the killed processes exit
                time.sleep(0.05)


# --- folders ---------------------------------------------------------------------------


def rmtree(path: Path) -> None:
    for _ in range(5):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.5)
    shutil.rmtree(path, ignore_errors=True)


# --- the journal -----------------------------------------------------------------------


def journal_path(owner: int) -> Path:
    return STATE_DIR / f"run-{owner}.jsonl"


def journal(
    owner: int,
    kind: str,
    name: str,
    *,
    netns: Iterable[str] = (),
    dirs: Iterable[Path] = (),
    cgroups: Iterable[str] = (),
    markers: Iterable[str] = (),
) -> None:
    """Write down what ``owner`` is about to create, so it can be found if the owner dies.

    ``markers`` are command-line substrings of processes that belong to the thing (use a
    folder with a trailing ``/``), ``dirs`` folders to remove, ``cgroups`` cgroup parents.
    """
    if owner == PERSISTENT:
        return
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    entry = {
        "kind": kind,
        "name": name,
        "netns": list(netns),
        "dirs": [str(d) for d in dirs],
        "cgroups": list(cgroups),
        "markers": list(markers),
    }
    with journal_path(owner).open("a") as f:
        f.write(json.dumps(entry) + "\n")


@dataclass(frozen=True)
class Journal:
    names: tuple[str, ...]
    netns: frozenset[str]
    dirs: frozenset[str]
    cgroups: frozenset[str]
    markers: frozenset[str]


def read_journal(owner: int) -> Journal:
    names: list[str] = []
    netns: set[str] = set()
    dirs: set[str] = set()
    cgroups: set[str] = set()
    markers: set[str] = set()
    try:
        lines = journal_path(owner).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by kill -9
        label = f"{entry['kind']} {entry['name']}"
        if label not in names:
            names.append(label)
        netns |= set(entry.get("netns", ()))
        dirs |= set(entry.get("dirs", ()))
        cgroups |= set(entry.get("cgroups", ()))
        markers |= {m for m in entry.get("markers", ()) if len(m) > 8}
    return Journal(
        tuple(names), frozenset(netns), frozenset(dirs), frozenset(cgroups), frozenset(markers)
    )


def _engine_states(owner: int) -> list[Path]:
    found = []
    for path in STATE_DIR.glob("engine-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if int(json.loads(path.read_text())["owner"]) == owner:
                found.append(path)
    return found


def _processes(owner: int, j: Journal) -> dict[int, Proc]:
    procs = {p.pid: p for p in processes_of(owner)}
    for marker in sorted(j.markers):
        procs.update({p.pid: p for p in processes_naming(marker)})
    return procs


def leftovers(owner: int) -> list[str]:
    """Everything of ``owner``'s run that still exists; empty when it cleaned up."""
    j = read_journal(owner)
    found = [f"process {p}" for p in _processes(owner, j).values()]
    found += [f"network namespace {n}" for n in sorted(j.netns) if netns_exists(n)]
    found += [f"cgroup {c}" for c in sorted(j.cgroups) if cgroup_dirs(c)]
    found += [f"folder {d}" for d in sorted(j.dirs) if Path(d).exists()]
    found += [f"engine state {p}" for p in _engine_states(owner)]
    return found


def clean(owner: int) -> list[str]:
    """Remove everything ``owner`` started or created; returns what the journal named."""
    j = read_journal(owner)
    # No graceful stops: all of it goes, and a cgroup sweep gets the containers.
    terminate(_processes(owner, j).values(), grace=0)
    for cgroup in j.cgroups:
        remove_cgroup(cgroup)
    for name in j.netns:
        delete_netns(name)
    for d in j.dirs:
        rmtree(Path(d))
    for path in _engine_states(owner):
        path.unlink(missing_ok=True)
    journal_path(owner).unlink(missing_ok=True)
    return list(j.names)


def forget(owner: int) -> None:
    """Drop ``owner``'s journal (after ``leftovers(owner)`` came back empty)."""
    journal_path(owner).unlink(missing_ok=True)


def reap_stale() -> list[str]:
    """Clean up after every owner that died (a run killed with SIGKILL).

    Returns the names of the things that were still there; the journal of an owner that
    cleaned up after itself (but did not ``forget``) goes without a word.
    """
    reaped: list[str] = []
    if not STATE_DIR.exists():
        return reaped
    for path in sorted(STATE_DIR.glob("engine-*.json")):
        reaped += _reap_engine_state(path)
    for path in sorted(STATE_DIR.glob("run-*.jsonl")):
        try:
            owner = int(path.stem.removeprefix("run-"))
        except ValueError:
            continue
        if owner == os.getpid() or pid_alive(owner):
            continue
        if leftovers(owner):
            reaped += clean(owner)
        else:
            forget(owner)
    _sweep_empty_cgroups()
    return reaped


def _sweep_empty_cgroups() -> None:
    """Remove empty ``gitswarm-harness-*`` cgroup parents of engines that are gone.

    Older harnesses left them behind. Only empty ones go: the kernel refuses to remove a
    cgroup that holds a process, and an engine that runs has a state file.
    """
    parents = {d.name for top in _cgroup_roots() for d in top.glob("gitswarm-harness-*")}
    engines = {p.stem.removeprefix("engine-") for p in STATE_DIR.glob("engine-*.json")}
    for parent in sorted(parents):
        if parent.removeprefix("gitswarm-harness-") in engines or cgroup_pids(parent):
            continue
        for top in cgroup_dirs(parent):
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def _reap_engine_state(path: Path) -> list[str]:
    """An engine state file whose owner died (also those written by older harnesses)."""
    try:
        state = json.loads(path.read_text())
        owner, pid, root = int(state["owner"]), int(state["pid"]), str(state["root"])
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return []
    if pid_alive(owner):
        return []
    # The pid may have been reused since: only stop it if it still names the engine root.
    daemon = [Proc(pid, _cmdline(pid) or "")] if cmdline_contains(pid, root + "/") else []
    terminate([*daemon, *processes_naming(root + "/")], grace=0)
    remove_cgroup(str(state.get("cgroup") or f"gitswarm-harness-{state.get('name')}"))
    if state.get("manage_netns", True) and state.get("netns"):
        delete_netns(str(state["netns"]))
    rmtree(Path(root))
    path.unlink(missing_ok=True)
    return [f"engine {state.get('name', path.stem)}"]
