"""The one place gitswarm talks to a Docker engine (I/O edge).

Reads go through docker-py's low-level API (one call per kind of object, filtered by the
stack label). Writes are few and counted (``writes``): create/remove configs and
secrets, remove services, and ``docker stack deploy`` through the Docker CLI, which is
the reference for converting Compose to Swarm specs. Every docker-py or CLI failure
becomes a ``SwarmError`` here, with the engine's own message — except a stack that
``docker stack deploy`` refuses (the engine or the CLI's conversion says the spec is
wrong), which is a ``DeployRejected``: bad input, not retried (``deploy_failure``).

Called by reconcile/ (sync, agent) and cli/ (sync, diff, rollback, bootstrap); ``gitswarm
status`` reads through engine.py instead (the standard library, the same converters:
port.py). Tests use ``FakeSwarm`` (swarm/fake.py) for the pure logic and this class
against a real private swarm.

Why one file (over 450 lines): it is the one module allowed to import docker, so every
docker-py and CLI failure is translated in one place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.constants
import docker.errors
import docker.transport
import docker.transport.unixconn
import docker.utils
import requests.exceptions

from gitswarm.errors import DeployRejected, SwarmError
from gitswarm.model.config import ResolveImage, Target
from gitswarm.model.observed import (
    ObjectState,
    ServiceState,
    StackState,
    TaskState,
)
from gitswarm.model.stack import LABEL_STACK, ObjectMaterial
from gitswarm.swarm.listing import services_by_stack as by_stack

# The port and the converters live in port.py (no docker-py there: swarm/engine.py, the
# status command's reads, uses them too); imported here under their old names.
from gitswarm.swarm.port import (
    Events,
    ExternalKind,
    ObjectKind,
    Swarm,
    connection_problem,
    down_node_ids,
    gc_paused,
    stack_filters,
)
from gitswarm.swarm.port import object_state as _object_state
from gitswarm.swarm.port import parse_time as parse_time
from gitswarm.swarm.port import service_state as _service_state
from gitswarm.swarm.port import task_state as _task_state

__all__ = [
    "DockerSwarm",
    "EventStream",
    "Events",
    "ExternalKind",
    "ObjectKind",
    "Swarm",
    "cli_environment",
    "connection_problem",
    "deploy_failure",
    "docker_cli",
]


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.NotFound as exc:
        raise SwarmError(f"{action}: not found ({exc.explanation or exc})") from exc
    except docker.errors.APIError as exc:
        raise SwarmError(f"{action}: {exc.explanation or exc}") from exc
    except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
        raise SwarmError(f"{action}: Docker engine unreachable ({exc})") from exc
    except OSError as exc:
        raise SwarmError(f"{action}: Docker engine unreachable ({exc})") from exc


# What `docker stack deploy` prints beside its error (CLI 20.10 to 28): progress, notices
# and warnings. None of it says why a deploy failed, so none of it goes into a message.
_CHATTER = re.compile(
    r"(Ignoring (unsupported|deprecated) options: "
    r"|Since --detach=false was not specified"
    r"|In a future release, --detach=false"
    r"|(Creating|Updating|Removing) (network|service|secret|config) "
    r"|image \S+ could not be accessed on a registry to record"
    r"|its digest\. Each node will access "
    r"|possibly leading to different nodes running different"
    r"|versions of the image\.)"
)

# Failures where the same deploy can succeed later: the engine unreachable or restarting,
# no swarm leader yet, a write that lost a race (Swarm's optimistic versioning). Seen on
# this machine's engine (docker.io 20.10, CLI 28) with the daemon stopped, restarting and
# reachable over the wrong address; the gRPC codes are those Swarm answers when busy.
_TRANSIENT = re.compile(
    r"Cannot connect to the Docker daemon|error during connect|connection refused"
    r"|connection reset|broken pipe|i/o timeout|TLS handshake timeout|no such host"
    r"|\bEOF$|context deadline exceeded|context canceled"
    r"|code = (Unavailable|DeadlineExceeded|Aborted|ResourceExhausted|Internal|Canceled)\b"
    r"|update out of sequence|does not have a leader|not a swarm manager"
    r"|is not part of a swarm|timed out",
    re.IGNORECASE | re.MULTILINE,
)


def deploy_failure(
    stack: str, returncode: int, stdout: str, stderr: str
) -> SwarmError | DeployRejected:
    """The error for a failed ``docker stack deploy``: its real error lines, without the
    CLI's chatter, and the verdict on retrying.

    An engine that cannot be reached, or a conflict, is a ``SwarmError`` (transient: the
    agent retries with backoff). Anything else is the engine or the CLI refusing the stack
    itself — an unknown mode, an invalid restart condition, a port in use, a service mode
    change — and the same commit would be refused again: ``DeployRejected`` (stalling)."""
    lines = (line.strip() for line in f"{stderr}\n{stdout}".splitlines())
    kept = [line for line in lines if line and not _CHATTER.match(line)]
    detail = "; ".join(dict.fromkeys(kept))  # in order, each line once
    if not detail:
        return SwarmError(f"docker stack deploy {stack} failed (exit code {returncode})")
    if _TRANSIENT.search("\n".join(kept)):
        return SwarmError(f"docker stack deploy {stack} failed: {detail}")
    return DeployRejected(
        f"docker stack deploy refused stack {stack}: {detail} (not retried: the same "
        "commit would be refused again; push a fix)"
    )


# What the CLI needs of the agent's environment to run (find ssh and credential helpers,
# read ~/.docker, reach an ssh agent). Nothing else: the CLI fills an `environment:`
# entry that has no value (or an empty one) from its own environment, so a commit with
# `environment: [SOME_TOKEN]` would otherwise deploy the agent's SOME_TOKEN.
_CLI_ENV = ("PATH", "HOME", "SSH_AUTH_SOCK")


def cli_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment ``docker stack deploy`` runs with: no DOCKER_* (the target is
    given by flags), none of the agent's own variables."""
    env = {k: environ[k] for k in _CLI_ENV if k in environ}
    env["DOCKER_CLI_HINTS"] = "false"
    return env


def docker_cli() -> str:
    cli = os.environ.get("GITSWARM_DOCKER_CLI") or shutil.which("docker")
    if not cli:
        raise SwarmError(
            "the Docker CLI is needed for `docker stack deploy`; install docker.io "
            "(or set GITSWARM_DOCKER_CLI)"
        )
    return cli


DEPLOY_PREFIX = "gitswarm-deploy-"
_DEPLOY_DIR = re.compile(re.escape(DEPLOY_PREFIX) + r"(\d+)-[^/]+$")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (someone else's counts: it is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_deploy_leftovers(
    root: Path | None = None, alive: Callable[[int], bool] = pid_alive
) -> list[Path]:
    """Remove the deploy folders (``deploy``) of processes that no longer run: what a
    ``kill -9`` mid-deploy leaves in the temp dir. Only this user's own folders, never
    through a link, never one of a live process. Returns what was removed."""
    root = Path(tempfile.gettempdir()) if root is None else root
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        found = _DEPLOY_DIR.match(entry.name)
        if found is None or int(found.group(1)) == os.getpid():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            continue
        if alive(int(found.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


class _APIClient(docker.APIClient):  # type: ignore[misc]
    """docker-py's client, blind to the process environment's HTTP settings.

    requests lets ``$REQUESTS_CA_BUNDLE`` / ``$CURL_CA_BUNDLE`` replace the CA a client
    was given (psf/requests#3829): the engine's certificate would be checked against the
    system's CAs instead of the operator's, and fail. Proxies from the environment never
    apply to a Docker engine either, and over a socket requests would look them up in
    ``os.environ`` on every request, racing any thread that sets a variable. requests sets
    ``trust_env`` in its constructor, before docker-py's first request; this keeps it off."""

    @property
    def trust_env(self) -> bool:
        return False

    @trust_env.setter
    def trust_env(self, _value: bool) -> None:
        return

    def __init__(self, *, base_url: str, timeout: int, tls: Any) -> None:
        # docker-py asks the engine for its API version inside its constructor, over a
        # unix connection that leaks its socket when connect() fails (a missing or dead
        # socket: a ResourceWarning, an fd until the GC runs). So: construct with a
        # version (no request yet), put a unix adapter that closes on failure in place,
        # then ask for the version, closing everything if that fails.
        super().__init__(
            base_url=base_url,
            version=docker.constants.DEFAULT_DOCKER_API_VERSION,
            timeout=timeout,
            tls=tls,
        )
        old = self.adapters.get("http+docker://")
        if isinstance(old, docker.transport.UnixHTTPAdapter):
            adapter = _UnixAdapter(
                "http+unix://" + old.socket_path, timeout, max_pool_size=old.max_pool_size
            )
            self._custom_adapter = adapter  # docker-py's fallback for this URL scheme
            self.mount("http+docker://", adapter)
            old.close()
        try:
            self._version = str(self.version(api_version=False)["ApiVersion"])
        except BaseException:
            self.close()
            raise

    def services_json(self, filters: Mapping[str, Any]) -> bytes:
        """``services(filters=...)``'s answer as the engine's JSON bytes, undecoded: the
        drift round decodes only what it reads of it (swarm/listing.py)."""
        params = {"filters": docker.utils.convert_filters(filters)}
        return self._result(self._get(self._url("/services"), params=params), binary=True)  # type: ignore[no-any-return]


class _UnixConnection(docker.transport.unixconn.UnixHTTPConnection):  # type: ignore[misc]
    """docker-py's unix connection, closing its socket when connect() fails."""

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_socket)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _UnixPool(docker.transport.unixconn.UnixHTTPConnectionPool):  # type: ignore[misc]
    def _new_conn(self) -> _UnixConnection:
        return _UnixConnection(self.base_url, self.socket_path, self.timeout)


class _UnixAdapter(docker.transport.UnixHTTPAdapter):  # type: ignore[misc]
    def get_connection(self, url: str, proxies: Any = None) -> _UnixPool:
        with self.pools.lock:
            pool = self.pools.get(url)
            if pool:
                return pool  # type: ignore[no-any-return]
            pool = _UnixPool(url, self.socket_path, self.timeout, maxsize=self.max_pool_size)
            self.pools[url] = pool
        return pool


class DockerSwarm:
    """A real swarm manager, reached at ``target`` (None: DOCKER_HOST or the default).

    ``target`` is the operator's definition (swarm/targets.py); ``host`` overrides its
    url (an ssh target is reached at the local end of its tunnel, swarm/tunnel.py). TLS
    is always verified: the engine's certificate against the operator's CA. A failed
    connection says which target, what went wrong and what to check."""

    def __init__(
        self, target: Target | None = None, *, timeout: float = 30.0, host: str | None = None
    ) -> None:
        self.target = target or Target(name="local")
        self.writes = 0
        if self.target.scheme == "ssh" and host is None:
            raise SwarmError(
                f"target {self.target.name!r} ({self.target.url}) is reached through its ssh "
                "tunnel: connect through SwarmPool"
            )
        self._host = host or self.target.url or os.environ.get("DOCKER_HOST") or None
        tls: docker.tls.TLSConfig | bool = False
        if self.target.scheme == "tcp":
            cert = None
            if self.target.tls_cert and self.target.tls_key:
                cert = (self.target.tls_cert, self.target.tls_key)
            tls = docker.tls.TLSConfig(client_cert=cert, ca_cert=self.target.tls_ca, verify=True)
        try:
            self.api = _APIClient(
                base_url=self._host or "unix:///var/run/docker.sock",
                timeout=int(timeout),
                tls=tls,
            )
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
            OSError,
        ) as exc:
            raise SwarmError(connection_problem(self.target, self._host, exc)) from exc

    def describe(self) -> str:
        where = self.target.url or self._host or "default Docker socket"
        return f"target {self.target.name!r} ({where})"

    def close(self) -> None:
        self.api.close()

    @contextlib.contextmanager
    def _translating(self, action: str) -> Iterator[None]:
        """``_translate``, with a lost connection told as a problem of this target."""
        try:
            yield
        except (requests.exceptions.ConnectionError, ConnectionError) as exc:
            problem = connection_problem(self.target, self._host, exc)
            raise SwarmError(f"{action}: {problem}") from exc
        except (requests.exceptions.RequestException, docker.errors.DockerException, OSError):
            with _translate(action):
                raise

    # --- reads -------------------------------------------------------------------------

    def ping(self) -> None:
        with self._translating(f"ping {self.describe()}"):
            self.api.ping()

    def services(self, stack: str) -> list[ServiceState]:
        with self._translating(f"list services of stack {stack}"):
            raw = self.api.services(filters=stack_filters(stack))
        return [_service_state(s) for s in raw]

    def services_by_stack(self) -> dict[str, list[ServiceState]]:
        """Every stack's services in one call, by stack name: the agent's drift round
        reads them once for all its apps (the engine scans every service for each filtered
        listing, so one listing per stack costs as many scans as there are stacks)."""
        action = "list the services of every stack"
        with self._translating(action):
            body = self.api.services_json(filters={"label": [LABEL_STACK]})
        with gc_paused():
            return by_stack(body, action)

    def tasks(self, service_ids: Sequence[str]) -> list[TaskState]:
        if not service_ids:
            return []
        with self._translating("list tasks"):
            raw = self.api.tasks(filters={"service": list(service_ids)})
        return [_task_state(t) for t in raw]

    def all_tasks(self) -> list[TaskState]:
        # Unfiltered: the engine resolves each value of a service filter by itself.
        with self._translating("list every task"), gc_paused():
            return [_task_state(t) for t in self.api.tasks()]

    def down_nodes(self) -> frozenset[str]:
        with self._translating("list the swarm's nodes"):
            raw = self.api.nodes()
        return down_node_ids(raw)

    def objects(self, stack: str) -> list[ObjectState]:
        flt = {"label": f"{LABEL_STACK}={stack}"}
        with self._translating(f"list configs and secrets of stack {stack}"):
            configs = self.api.configs(filters=flt)
            secrets = self.api.secrets(filters=flt)
        return [_object_state("config", c) for c in configs] + [
            _object_state("secret", s) for s in secrets
        ]

    def observe(self, stack: str) -> StackState:
        return StackState(
            stack=stack, services=tuple(self.services(stack)), objects=tuple(self.objects(stack))
        )

    def check_manager(self) -> None:
        """A SwarmError saying what to do unless the target is a manager of an active swarm
        (``gitswarm bootstrap`` on a new machine: the swarm may not exist yet)."""
        with _translate(f"read the swarm state of {self.describe()}"):
            info = self.api.info()
        swarm = info.get("Swarm") or {}
        state = swarm.get("LocalNodeState") or "inactive"
        if state != "active":
            raise SwarmError(
                f"{self.describe()} is not part of a swarm (node state: {state}): run "
                "`docker swarm init` there (or join it to the swarm as a manager) first"
            )
        if not swarm.get("ControlAvailable"):
            raise SwarmError(
                f"{self.describe()} is a swarm worker, not a manager: point the target at a "
                "manager (stacks are deployed through managers only)"
            )

    def existing(self, kind: ExternalKind, names: Sequence[str]) -> set[str]:
        """Which of ``names`` exist as ``kind`` on the target (volumes: on the node the
        target is; a volume lives on each node that runs a task using it)."""
        wanted = set(names)
        if not wanted:
            return set()
        found: set[str] = set()
        with _translate(f"list {kind}s on {self.describe()}"):
            if kind == "network":
                found = {n.get("Name", "") for n in self.api.networks(names=sorted(wanted))}
            elif kind == "volume":
                for name in sorted(wanted):
                    listing = self.api.volumes(filters={"name": name}) or {}
                    found |= {v.get("Name", "") for v in listing.get("Volumes") or []}
            else:
                lister = self.api.secrets if kind == "secret" else self.api.configs
                for name in sorted(wanted):
                    found |= {
                        o.get("Spec", {}).get("Name", "") for o in lister(filters={"name": name})
                    }
        return found & wanted

    # --- writes ------------------------------------------------------------------------

    def create_object(self, material: ObjectMaterial) -> str:
        """Create a config or secret; an existing one of the same name is reused (names are
        content-addressed, so the same name means the same content)."""
        self.writes += 1
        labels = dict(material.labels)
        try:
            if material.kind == "config":
                created = self.api.create_config(material.name, material.data, labels=labels)
            else:
                created = self.api.create_secret(material.name, material.data, labels=labels)
        except docker.errors.APIError as exc:
            if exc.status_code == 409 or "already exists" in str(exc.explanation or ""):
                return self._object_id(material.kind, material.name)
            raise SwarmError(
                f"create {material.kind} {material.name}: {exc.explanation or exc}"
            ) from exc
        except (requests.exceptions.RequestException, OSError) as exc:
            raise SwarmError(f"create {material.kind} {material.name}: {exc}") from exc
        return str(created["ID"])

    def _object_id(self, kind: ObjectKind, name: str) -> str:
        with self._translating(f"find {kind} {name}"):
            found = (self.api.configs if kind == "config" else self.api.secrets)(
                filters={"name": name}
            )
        for obj in found:
            if obj.get("Spec", {}).get("Name") == name:
                return str(obj["ID"])
        raise SwarmError(f"{kind} {name} exists but cannot be found")

    def remove_object(self, kind: ObjectKind, object_id: str) -> bool:
        """Remove a config or secret; False when a service still uses it."""
        self.writes += 1
        try:
            if kind == "config":
                self.api.remove_config(object_id)
            else:
                self.api.remove_secret(object_id)
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:
            if "in use" in str(exc.explanation or exc):
                return False
            raise SwarmError(f"remove {kind} {object_id}: {exc.explanation or exc}") from exc
        except (requests.exceptions.RequestException, OSError) as exc:
            raise SwarmError(f"remove {kind} {object_id}: {exc}") from exc
        return True

    def remove_service(self, service_id: str) -> None:
        self.writes += 1
        try:
            self.api.remove_service(service_id)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise SwarmError(f"remove service {service_id}: {exc.explanation or exc}") from exc
        except (requests.exceptions.RequestException, OSError) as exc:
            raise SwarmError(f"remove service {service_id}: {exc}") from exc

    def _cli_args(self) -> list[str]:
        args: list[str] = []
        if self._host:
            args += ["--host", self._host]
        if self.target.scheme == "tcp":
            args.append("--tlsverify")
            if self.target.tls_ca:
                args += ["--tlscacert", self.target.tls_ca]
            if self.target.tls_cert and self.target.tls_key:
                args += ["--tlscert", self.target.tls_cert, "--tlskey", self.target.tls_key]
        return args

    def deploy(self, stack: str, compose_yaml: str, *, resolve_image: ResolveImage) -> None:
        """``docker stack deploy`` of a rendered file from a private temp dir.

        The file holds no secret value (secrets are external objects created before), and
        the folder (mode 0700) is removed whatever happens; one whose process was killed
        (kill -9) names that process, and the agent removes it when it starts
        (``clean_deploy_leftovers``)."""
        self.writes += 1
        workdir = Path(tempfile.mkdtemp(prefix=f"{DEPLOY_PREFIX}{os.getpid()}-"))
        try:
            stack_file = workdir / "stack.yml"
            stack_file.write_text(compose_yaml)
            env = cli_environment(os.environ)
            cmd = [
                docker_cli(),
                *self._cli_args(),
                "stack",
                "deploy",
                "--compose-file",
                str(stack_file),
                "--resolve-image",
                resolve_image,
                stack,
            ]
            try:
                proc = subprocess.run(
                    cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
                )
            except subprocess.TimeoutExpired as exc:
                raise SwarmError(f"docker stack deploy {stack} timed out") from exc
            if proc.returncode != 0:
                raise deploy_failure(stack, proc.returncode, proc.stdout, proc.stderr)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def events(
        self, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> EventStream:
        """Service, config and secret events, decoded (used by the agent's drift watch).
        Iterate it; ``close()`` it from another thread to stop waiting."""
        with self._translating("subscribe to events"):
            stream = self.api.events(
                since=since,
                until=until,
                filters={"type": ["service", "config", "secret"]},
                decode=True,
            )
        return EventStream(stream, self.describe())


class EventStream:
    """Docker's event stream, with errors translated and a ``close()`` that interrupts a
    reader blocked on it."""

    def __init__(self, stream: Any, source: str) -> None:
        self._stream = stream
        self._source = source
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self._stream
        except (
            requests.exceptions.RequestException,
            OSError,
            AttributeError,  # the socket went away under a closing reader
            docker.errors.DockerException,
        ) as exc:
            if not self.closed:
                raise SwarmError(f"event stream from {self._source} broke: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self._stream.close()  # shuts the socket down, interrupting a blocked reader
        with contextlib.suppress(Exception):
            # ... but skips that when the response already ended (a broken stream): close
            # the response too, or its socket lingers until garbage collection.
            self._stream._response.close()
