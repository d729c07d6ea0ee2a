"""The Swarm port — what reconcile/ needs of a swarm — and the one reading of the
engine's answers into model/observed.py's records (I/O edge, no docker-py here).

``DockerSwarm`` (client.py, docker-py and the Docker CLI), ``EngineReads`` (engine.py, the
standard library: ``gitswarm status``'s reads) and ``FakeSwarm`` (fake.py) provide
``Swarm``; the first two read the engine's JSON through the converters below, so both
see the same records. ``connection_problem`` words a failure to reach a target the same
way for both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

from gitswarm.model.config import ResolveImage, Target
from gitswarm.model.observed import (
    ObjectState,
    ServiceMode,
    ServiceState,
    StackState,
    TaskState,
    UpdateStatus,
    spec_digest,
)
from gitswarm.model.stack import LABEL_STACK, ObjectMaterial

ObjectKind = Literal["config", "secret"]
ExternalKind = Literal["network", "volume", "secret", "config"]


class Events(Protocol):
    """A stream of engine events (decoded dicts, as Docker sends them): iterate it; its
    ``close()``, from another thread, ends a reader blocked on it. ``EventStream`` and
    swarm/fake.py's stream provide it."""

    closed: bool

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class Swarm(Protocol):
    """What the engine needs of a swarm; ``DockerSwarm`` and ``FakeSwarm`` provide it."""

    writes: int

    def ping(self) -> None: ...

    def observe(self, stack: str) -> StackState: ...

    def services(self, stack: str) -> list[ServiceState]: ...

    def services_by_stack(self) -> dict[str, list[ServiceState]]: ...

    def tasks(self, service_ids: Sequence[str]) -> list[TaskState]: ...

    def all_tasks(self) -> list[TaskState]:
        """Every task of the swarm in one read (the agent's drift round re-assesses
        every app's health from it: one GET, not one per app)."""
        ...

    def down_nodes(self) -> frozenset[str]:
        """IDs of the nodes the managers see as down (``Status.State`` "down"). A task
        on one still shows the state it last reported ("running"), but does not run:
        health/ counts it as ``docker service ls`` does (docker/cli's
        ``AppendServiceStatus``: running tasks on nodes that are not down)."""
        ...

    def objects(self, stack: str) -> list[ObjectState]: ...

    def create_object(self, material: ObjectMaterial) -> str: ...

    def remove_object(self, kind: ObjectKind, object_id: str) -> bool: ...

    def remove_service(self, service_id: str) -> None: ...

    def deploy(self, stack: str, compose_yaml: str, *, resolve_image: ResolveImage) -> None: ...

    def check_manager(self) -> None: ...

    def existing(self, kind: ExternalKind, names: Sequence[str]) -> set[str]: ...

    def events(self, *, since: dt.datetime | None = None) -> Events:
        """Service, config and secret events from ``since`` on (the agent's drift watch)."""
        ...


def parse_time(text: str | None) -> dt.datetime | None:
    """Docker's RFC 3339 timestamps as aware datetimes (None for Go's zero time)."""
    if not text or text.startswith("0001-"):
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def stack_filters(stack: str) -> dict[str, list[str]]:
    """The Engine API filters of one stack's services: its label, and the name prefix
    every service ``docker stack deploy`` makes has (``<stack>_``). The engine looks a
    name prefix up in an index, where a label alone makes it scan every service of the
    swarm (5,000 at 1,000 apps: a tenth of a second or more per listing, and a sync
    makes several; bench/ issue 18); the label still decides which ones belong."""
    return {"label": [f"{LABEL_STACK}={stack}"], "name": [f"{stack}_"]}


log = logging.getLogger("gitswarm.swarm")

# The longest the cyclic GC stays paused, whatever the paused code waits on: a listing
# takes well under a second at 1,000 apps; an engine that hangs (each read times out on
# its own, engine.py) or a store that stalls must not leave the process without it.
GC_PAUSE_LIMIT = 60.0


@contextlib.contextmanager
def gc_paused(limit: float = GC_PAUSE_LIMIT) -> Iterator[None]:
    """The cyclic garbage collector paused while a listing of the whole swarm is read and
    decoded. JSON makes no reference cycles, but its ~60 new containers per service (5,000
    services at 1,000 apps) trigger collection after collection, each one traversing the
    agent's whole heap (the renders of every app): the round's decode took twice as long
    with it (bench/profile_round.py, issue 18). Restored only if this pause turned it off:
    on every way out, and by a timer after ``limit`` seconds if the paused code is still
    waiting then (a hung read), so the pause is bounded whatever hangs."""
    was = gc.isenabled()
    if not was:  # paused already (another listing, or by whoever embeds us): theirs
        yield
        return
    gc.disable()
    timer = threading.Timer(limit, _resume_gc, (limit,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        gc.enable()


def _resume_gc(limit: float) -> None:
    log.warning("the cyclic GC was paused for %.0f s by a listing that still waits: resumed", limit)
    gc.enable()


def update_status(status: Mapping[str, Any] | None) -> UpdateStatus | None:
    """A service's ``UpdateStatus`` as the engine reports it (None: no update yet)."""
    if not status:
        return None
    return UpdateStatus(
        state=status.get("State", ""),
        message=status.get("Message", ""),
        started_at=parse_time(status.get("StartedAt")),
        completed_at=parse_time(status.get("CompletedAt")),
    )


def service_state(raw: Mapping[str, Any], *, previous: bool = True) -> ServiceState:
    spec = raw.get("Spec", {})
    mode_spec = spec.get("Mode", {})
    mode: ServiceMode = "replicated"
    replicas: int | None = None
    if "Replicated" in mode_spec:
        replicas = int(mode_spec["Replicated"].get("Replicas", 1))
    elif "Global" in mode_spec:
        mode = "global"
    elif "ReplicatedJob" in mode_spec:
        mode = "replicated-job"
        replicas = int(mode_spec["ReplicatedJob"].get("TotalCompletions", 1) or 1)
    elif "GlobalJob" in mode_spec:
        mode = "global-job"
    update = update_status(raw.get("UpdateStatus"))
    return ServiceState(
        id=raw["ID"],
        name=spec.get("Name", ""),
        labels=dict(spec.get("Labels") or {}),
        spec=spec,
        version=int(raw.get("Version", {}).get("Index", 0)),
        mode=mode,
        replicas=replicas,
        update_status=update,
        updated_at=parse_time(raw.get("UpdatedAt")),
        previous_spec=raw.get("PreviousSpec") if previous else None,
    )


def task_state(raw: Mapping[str, Any]) -> TaskState:
    status = raw.get("Status", {})
    container = status.get("ContainerStatus", {}) or {}
    exit_code = container.get("ExitCode")
    return TaskState(
        id=raw["ID"],
        service_id=raw.get("ServiceID", ""),
        node_id=raw.get("NodeID"),
        slot=raw.get("Slot"),
        desired_state=raw.get("DesiredState", ""),
        state=status.get("State", ""),
        message=status.get("Message", ""),
        error=status.get("Err", ""),
        created_at=parse_time(raw.get("CreatedAt")),
        updated_at=parse_time(status.get("Timestamp") or raw.get("UpdatedAt")),
        image=raw.get("Spec", {}).get("ContainerSpec", {}).get("Image", ""),
        exit_code=int(exit_code) if exit_code is not None else None,
        spec_digest=spec_digest(raw.get("Spec", {})),
        object_ids=object_ids(raw.get("Spec", {}).get("ContainerSpec", {})),
    )


def down_node_ids(raw: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """The IDs of ``GET /nodes``'s nodes whose state is "down" (as the Docker CLI
    counts: ``unknown`` and ``disconnected`` are not down)."""
    return frozenset(
        str(n["ID"]) for n in raw if (n.get("Status") or {}).get("State") == "down" and n.get("ID")
    )


def object_ids(container: Mapping[str, Any]) -> tuple[str, ...]:
    refs = (container.get("Configs") or []) + (container.get("Secrets") or [])
    return tuple(
        str(r.get("ConfigID") or r.get("SecretID"))
        for r in refs
        if r.get("ConfigID") or r.get("SecretID")
    )


def object_state(kind: ObjectKind, raw: Mapping[str, Any]) -> ObjectState:
    spec = raw.get("Spec", {})
    return ObjectState(
        kind=kind,
        id=raw["ID"],
        name=spec.get("Name", ""),
        labels=dict(spec.get("Labels") or {}),
        created_at=parse_time(raw.get("CreatedAt")),
    )


class SwarmClient(Swarm, Protocol):
    """A ``Swarm`` of an engine connection, which its owner closes (swarm/pool.py)."""

    def close(self) -> None: ...


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (urllib3 and requests wrap the socket's error deeply)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 30:
        item = todo.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        more = [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
        todo += [m for m in more if isinstance(m, BaseException)]
    return seen


def connection_problem(target: Target, host: str | None, exc: BaseException) -> str:
    """What went wrong reaching ``target`` and what to check, in words: the message every
    sync of every environment on that target gets while it lasts."""
    where = target.url or host or "DOCKER_HOST or the default Docker socket"
    head = f"target {target.name!r} ({where})"
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    lowered = text.lower()
    ssl_error = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    if ssl_error is not None or "ssl" in lowered or "certificate" in lowered:
        detail = getattr(ssl_error, "reason", None) or str(ssl_error or text)[:200]
        if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
            hint = (
                f"the engine's certificate is not signed by targets.{target.name}.tls.ca or "
                "does not name the host of the url; check that ca is the CA of the engine's "
                "--tlscert and that its certificate lists this host"
            )
        else:
            hint = (
                f"the engine refused the client certificate; check that targets.{target.name}"
                ".tls.cert and .key are a client certificate and its key, signed by the CA "
                "the engine trusts (dockerd --tlsverify --tlscacert), and not expired"
            )
        return f"{head}: the TLS handshake failed ({detail}); {hint}"
    if "connection refused" in lowered or "no such file" in lowered:
        what = "connection refused" if "refused" in lowered else "no socket there"
        return (
            f"{head}: cannot connect ({what}); check that the engine runs and listens at "
            f"that address (targets.{target.name}.url in the agent config)"
        )
    if "timed out" in lowered or "timeout" in lowered:
        return (
            f"{head}: no answer (timed out); check targets.{target.name}.url and that the "
            "network lets the agent reach it"
        )
    if "permission denied" in lowered:
        return f"{head}: permission denied on the socket; the agent's user needs access to it"
    return f"{head}: Docker engine unreachable ({text[:300]})"
