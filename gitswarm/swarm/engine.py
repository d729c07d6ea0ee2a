"""A Docker Engine API client of the standard library alone, for the reads of ``gitswarm
status --live`` on a local engine (I/O edge).

``status`` reads a swarm five ways — ``GET /services``, ``/tasks``, ``/nodes``,
``/configs``, ``/secrets`` (``observe``, ``tasks`` and ``down_nodes``) — and writes
nothing. docker-py and requests cost more to import than those requests take, and
docker-py's client asks the engine for its version before the first of them.
``EngineReads`` sends them with ``http.client`` over the engine's unix socket
(unversioned paths: the engine answers in its own API version, as the Docker CLI's
first request does) and turns the answers into the same records, with the same
converters, as ``DockerSwarm`` (swarm/port.py). It is a
``Swarm`` whose writes refuse: the commands that deploy use ``DockerSwarm``.

``reads_client`` picks it for a target reached over a unix socket, and ``DockerSwarm``
for anything else (TLS over TCP, ssh tunnels), so every target keeps working.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import socket
import time
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import quote

from gitswarm.errors import SwarmError
from gitswarm.model.config import ResolveImage, Target
from gitswarm.model.observed import ObjectState, ServiceState, StackState, TaskState
from gitswarm.model.stack import LABEL_STACK, ObjectMaterial
from gitswarm.swarm.port import (
    Events,
    ExternalKind,
    ObjectKind,
    SwarmClient,
    connection_problem,
    down_node_ids,
    gc_paused,
    object_state,
    service_state,
    stack_filters,
    task_state,
)

DEFAULT_SOCKET = "/var/run/docker.sock"
MAX_BODY = 256 * 1024 * 1024  # an answer larger than this is not a listing we can use
_CHUNK = 1024 * 1024


class _Unfinished(Exception):
    """An answer still arriving when the request's time was up (``EngineReads._body``)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def socket_path(target: Target, host: str | None = None) -> str | None:
    """The unix socket ``target`` is reached at; None when it is not a unix socket."""
    url = host or target.url or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    if not url.startswith("unix://"):
        return None
    return url[len("unix://") :] or DEFAULT_SOCKET


def reads_client(target: Target, *, timeout: float = 30.0, host: str | None = None) -> SwarmClient:
    """The client ``status`` reads ``target`` with (SwarmPool's factory there):
    ``EngineReads`` over a unix socket, ``DockerSwarm`` otherwise."""
    path = socket_path(target, host)
    if path is None:
        from gitswarm.swarm.client import DockerSwarm  # docker-py: TLS, ssh tunnels

        return DockerSwarm(target, timeout=timeout, host=host)
    return EngineReads(target, path, timeout=timeout)


class EngineReads:
    """The reads of ``Swarm`` over ``http.client``; every write refuses."""

    def __init__(self, target: Target, path: str, *, timeout: float = 30.0) -> None:
        self.target, self.path, self.timeout = target, path, timeout
        self.writes = 0
        self._conn: _UnixConnection | None = None
        # As DockerSwarm's constructor: an engine that is not there says so now, in the
        # same words (connection_problem).
        self._get(None, "/_ping")

    def describe(self) -> str:
        return f"target {self.target.name!r} ({self.target.url or 'unix://' + self.path})"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _get(
        self, action: str | None, path: str, filters: dict[str, list[str]] | None = None
    ) -> Any:
        body = self._body(action, path, filters)
        if path == "/_ping":
            return None
        try:
            return json.loads(body)
        except ValueError as exc:
            action = action or f"connect to {self.describe()}"
            raise SwarmError(f"{action}: the engine answered something not JSON") from exc

    def _body(
        self, action: str | None, path: str, filters: dict[str, list[str]] | None = None
    ) -> bytes:
        """The engine's answer to ``GET path``, undecoded (a failure: a SwarmError)."""
        if filters is not None:
            path += "?filters=" + quote(json.dumps(filters, separators=(",", ":")))
        try:
            if self._conn is None:
                self._conn = _UnixConnection(self.path, self.timeout)
            self._conn.request("GET", path, headers={"Accept": "application/json"})
            response = self._conn.getresponse()
            body = self._read_all(response, time.monotonic() + self.timeout)
        except _Unfinished as exc:
            self.close()  # the rest of that answer may still come: not on this connection
            raise SwarmError(str(exc) if action is None else f"{action}: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # a broken connection is not reused
            problem = connection_problem(self.target, "unix://" + self.path, exc)
            raise SwarmError(problem if action is None else f"{action}: {problem}") from exc
        action = action or f"connect to {self.describe()}"
        if len(body) > MAX_BODY:
            raise SwarmError(f"{action}: the engine's answer is over {MAX_BODY} bytes")
        if response.status >= 400:
            raise SwarmError(f"{action}: {_message(body, response.status)}")
        return body

    def _read_all(self, response: http.client.HTTPResponse, deadline: float) -> bytes:
        """The answer's body, read within ``timeout`` seconds in all: the socket's own
        timeout bounds each read only, and an engine that trickles its answer would
        hold the caller (and the GC pause of a listing, port.gc_paused) for good."""
        chunks: list[bytes] = []
        size = 0
        # read1: what has arrived, at most a chunk (read(n) waits for all n bytes, each
        # wait bounded by the socket's timeout alone); the length left 0 is the end
        while size <= MAX_BODY and response.length != 0 and not response.isclosed():
            if time.monotonic() > deadline:
                raise _Unfinished(
                    f"{self.describe()}: the engine did not finish its answer within "
                    f"{self.timeout:g} s"
                )
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size <= MAX_BODY:
            response.read()  # nothing left: marks the answer done, the connection reusable
        return b"".join(chunks)

    # --- reads -------------------------------------------------------------------------

    def ping(self) -> None:
        self._get(f"ping {self.describe()}", "/_ping")

    def services(self, stack: str) -> list[ServiceState]:
        raw = self._get(f"list services of stack {stack}", "/services", stack_filters(stack))
        return [service_state(s) for s in raw]

    def services_by_stack(self) -> dict[str, list[ServiceState]]:
        from gitswarm.swarm.listing import services_by_stack  # msgspec: not for `status`

        action = "list the services of every stack"
        body = self._body(action, "/services", {"label": [LABEL_STACK]})
        with gc_paused():
            return services_by_stack(body, action)

    def tasks(self, service_ids: Sequence[str]) -> list[TaskState]:
        if not service_ids:
            return []
        raw = self._get("list tasks", "/tasks", {"service": list(service_ids)})
        return [task_state(t) for t in raw]

    def all_tasks(self) -> list[TaskState]:
        return [task_state(t) for t in self._get("list every task", "/tasks")]

    def down_nodes(self) -> frozenset[str]:
        return down_node_ids(self._get("list the swarm's nodes", "/nodes"))

    def objects(self, stack: str) -> list[ObjectState]:
        flt = {"label": [f"{LABEL_STACK}={stack}"]}
        action = f"list configs and secrets of stack {stack}"
        configs = self._get(action, "/configs", flt)
        secrets = self._get(action, "/secrets", flt)
        return [object_state("config", c) for c in configs] + [
            object_state("secret", s) for s in secrets
        ]

    def observe(self, stack: str) -> StackState:
        return StackState(
            stack=stack, services=tuple(self.services(stack)), objects=tuple(self.objects(stack))
        )

    # --- not for this client -----------------------------------------------------------

    def _refuse(self, what: str) -> NoReturn:
        raise SwarmError(f"{what}: this client of {self.describe()} only reads (gitswarm status)")

    def check_manager(self) -> None:
        self._refuse("check the swarm manager")

    def existing(self, kind: ExternalKind, names: Sequence[str]) -> set[str]:
        self._refuse(f"list {kind}s")

    def create_object(self, material: ObjectMaterial) -> str:
        self._refuse(f"create {material.kind} {material.name}")

    def remove_object(self, kind: ObjectKind, object_id: str) -> bool:
        self._refuse(f"remove {kind} {object_id}")

    def remove_service(self, service_id: str) -> None:
        self._refuse(f"remove service {service_id}")

    def deploy(self, stack: str, compose_yaml: str, *, resolve_image: ResolveImage) -> None:
        self._refuse(f"deploy stack {stack}")

    def events(self, *, since: dt.datetime | None = None) -> Events:
        self._refuse("follow events")


def _message(body: bytes, status: int) -> str:
    """The engine's error message (``{"message": ...}``), bounded."""
    try:
        found = json.loads(body).get("message")
    except (ValueError, AttributeError):
        found = None
    text = str(found) if found else body[:300].decode("utf-8", "replace").strip()
    return f"{text[:500]} (HTTP {status})"


__all__ = ["EngineReads", "reads_client", "socket_path"]
