"""An in-memory swarm for fast unit tests of reconcile/ (the real one is swarm/client.py).

It converts just enough Compose to Swarm specs (image, replicas, labels, environment,
configs, secrets) to let the pipeline plan, apply, wait and detect drift. Tasks start
``running`` at once unless an image is listed in ``failing_images``. ``cli_failure``
makes every deploy fail as ``docker stack deploy`` does with that output (classified by
swarm/client.py's ``deploy_failure``, as the real one is). Every write is counted in
``writes`` and logged in ``log``.

Like an engine, it sends events (``events()``): service, config and secret create,
update and remove, for gitswarm's own writes and for the manual changes below alike;
``break_events()`` breaks every open stream as an engine restart does.

Why one file (over 450 lines): it is one object, the swarm's whole state, which every
read, write and manual change above works on; split, each part would reach into it.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ruamel.yaml import YAML

from gitswarm.errors import SwarmError
from gitswarm.model.config import ResolveImage
from gitswarm.model.observed import (
    ObjectState,
    ServiceState,
    StackState,
    TaskState,
    UpdateStatus,
    spec_digest,
)
from gitswarm.model.stack import LABEL_STACK, ObjectMaterial
from gitswarm.render.interpolate import substitute
from gitswarm.swarm.client import deploy_failure
from gitswarm.swarm.listing import services_by_stack as listing_by_stack


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_BROKEN = object()  # put in a stream: it breaks, as an engine's does when it restarts


class FakeEvents:
    """One subscriber's events, in order (swarm/client.py's ``Events``)."""

    def __init__(self) -> None:
        self.closed = False
        self._queue: queue.Queue[object] = queue.Queue()

    def put(self, event: object) -> None:
        if not self.closed:
            self._queue.put(event)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not self.closed:
            event = self._queue.get()
            if event is None:
                return
            if event is _BROKEN:
                self.closed = True
                raise SwarmError("event stream from the fake swarm broke")
            if isinstance(event, dict):
                yield event

    def close(self) -> None:
        self.closed = True
        self._queue.put(None)  # wakes a reader blocked on the stream


@dataclass
class FakeSwarm:
    writes: int = 0
    log: list[str] = field(default_factory=list)
    failing_images: set[str] = field(default_factory=set)
    rollback_images: set[str] = field(default_factory=set)
    down: bool = False
    manager: bool = True  # False: a worker, or no swarm at all (check_manager refuses)
    external: set[tuple[str, str]] = field(default_factory=set)  # (kind, name) that exist
    cli_failure: str | None = None  # what a failing `docker stack deploy` prints on stderr
    task_reads: int = 0  # all_tasks calls (the drift round's one read per target)
    node_reads: int = 0  # down_nodes calls (as many: one per target per round)
    nodes_down: set[str] = field(default_factory=set)  # node IDs the managers see as down
    _services: dict[str, ServiceState] = field(default_factory=dict)
    _tasks: dict[str, list[TaskState]] = field(default_factory=dict)
    _objects: dict[str, ObjectState] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _streams: list[FakeEvents] = field(default_factory=list, repr=False)
    _streams_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _new_id(self, prefix: str) -> str:
        """Ids unique within this swarm (each swarm counts its own, as an engine does)."""
        return f"{prefix}{next(self._ids):08d}"

    def _check(self) -> None:
        if self.down:
            raise SwarmError("fake swarm is down")

    def ping(self) -> None:
        self._check()

    def services(self, stack: str) -> list[ServiceState]:
        self._check()
        # as the engine answers stack_filters: the label, and the name prefix
        return [
            s
            for s in self._services.values()
            if s.labels.get(LABEL_STACK) == stack and s.name.startswith(stack + "_")
        ]

    def services_by_stack(self) -> dict[str, list[ServiceState]]:
        """As an engine answers ``GET /services`` and the round decodes it: through the
        JSON of the Engine API and swarm/listing.py (each ``Spec`` kept as JSON until read,
        no ``PreviousSpec``), so every unit test of the drift round runs the real decoder."""
        self._check()
        body = json.dumps([_engine_json(s) for s in self._services.values()])
        return listing_by_stack(body.encode())

    def tasks(self, service_ids: Sequence[str]) -> list[TaskState]:
        self._check()
        return [t for sid in service_ids for t in self._tasks.get(sid, [])]

    def all_tasks(self) -> list[TaskState]:
        self._check()
        self.task_reads += 1
        return [t for tasks in self._tasks.values() for t in tasks]

    def down_nodes(self) -> frozenset[str]:
        self._check()
        self.node_reads += 1
        return frozenset(self.nodes_down)

    def objects(self, stack: str) -> list[ObjectState]:
        self._check()
        return [o for o in self._objects.values() if o.labels.get(LABEL_STACK) == stack]

    def observe(self, stack: str) -> StackState:
        return StackState(stack, tuple(self.services(stack)), tuple(self.objects(stack)))

    def check_manager(self) -> None:
        self._check()
        if not self.manager:
            raise SwarmError("fake swarm is not a manager: run `docker swarm init` there")

    def existing(self, kind: str, names: Sequence[str]) -> set[str]:
        self._check()
        return {name for name in names if (kind, name) in self.external}

    # --- events ------------------------------------------------------------------------

    def events(self, *, since: dt.datetime | None = None) -> FakeEvents:
        """Events from now on (``since`` is ignored: nothing is replayed)."""
        self._check()
        stream = FakeEvents()
        with self._streams_lock:
            self._streams = [s for s in self._streams if not s.closed] + [stream]
        return stream

    def break_events(self) -> None:
        with self._streams_lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.put(_BROKEN)

    def subscribers(self) -> int:
        with self._streams_lock:
            return sum(not s.closed for s in self._streams)

    def _emit(self, kind: str, action: str, name: str) -> None:
        event = {
            "Type": kind,
            "Action": action,
            "Actor": {"Attributes": {"name": name}},
            "time": int(_now().timestamp()),
        }
        with self._streams_lock:
            streams = list(self._streams)
        for stream in streams:
            stream.put(event)

    def create_object(self, material: ObjectMaterial) -> str:
        self._check()
        self.writes += 1
        self.log.append(f"create {material.kind} {material.name}")
        for obj in self._objects.values():
            if obj.name == material.name and obj.kind == material.kind:
                return obj.id
        obj_id = self._new_id("o")
        obj = ObjectState(material.kind, obj_id, material.name, dict(material.labels), _now())
        self._objects[obj.id] = obj
        self._emit(material.kind, "create", material.name)
        return obj.id

    def remove_object(self, kind: str, object_id: str) -> bool:
        self._check()
        self.writes += 1
        obj = self._objects.get(object_id)
        if obj is None:
            return True
        key = "Configs" if kind == "config" else "Secrets"
        for svc in self._services.values():
            refs = svc.spec["TaskTemplate"]["ContainerSpec"].get(key, [])
            if any(r.get("ConfigID", r.get("SecretID")) == object_id for r in refs):
                return False
        del self._objects[object_id]
        self.log.append(f"remove {kind} {obj.name}")
        self._emit(kind, "remove", obj.name)
        return True

    def remove_service(self, service_id: str) -> None:
        self._check()
        self.writes += 1
        svc = self._services.pop(service_id, None)
        self._tasks.pop(service_id, None)
        if svc:
            self.log.append(f"remove service {svc.name}")
            self._emit("service", "remove", svc.name)

    def _object_ref(self, kind: str, name: str) -> dict[str, str]:
        for obj in self._objects.values():
            if obj.kind == kind and obj.name == name:
                key = "ConfigID" if kind == "config" else "SecretID"
                return {key: obj.id, "Name": name}
        if (kind, name) in self.external:  # the operator's, made outside gitswarm
            key = "ConfigID" if kind == "config" else "SecretID"
            return {key: f"external-{name}", "Name": name}
        raise SwarmError(f"{kind} not found: {name}")

    def deploy(self, stack: str, compose_yaml: str, *, resolve_image: ResolveImage) -> None:
        self._check()
        self.writes += 1
        if self.cli_failure is not None:
            self.log.append(f"deploy {stack} refused")
            raise deploy_failure(stack, 1, "", self.cli_failure)
        doc = _as_deploy_reads(YAML(typ="safe").load(compose_yaml) or {})
        top_names = {
            kind: {
                k: (v or {}).get("name", f"{stack}_{k}") for k, v in (doc.get(kind) or {}).items()
            }
            for kind in ("configs", "secrets")
        }
        for name, svc in (doc.get("services") or {}).items():
            self._deploy_service(stack, name, svc, top_names, resolve_image)

    def _deploy_service(
        self,
        stack: str,
        name: str,
        svc: dict[str, Any],
        top: dict[str, dict[str, str]],
        resolve_image: ResolveImage = "changed",
    ) -> None:
        full = f"{stack}_{name}"
        deploy = svc.get("deploy") or {}
        labels = {
            LABEL_STACK: stack,
            "com.docker.stack.image": str(svc.get("image", "")),  # as the CLI sets it
            **{str(k): str(v) for k, v in (deploy.get("labels") or {}).items()},
        }
        env = svc.get("environment") or {}
        env_list = sorted(f"{k}={v}" for k, v in env.items()) if isinstance(env, dict) else env
        container: dict[str, Any] = {"Image": svc.get("image", ""), "Env": env_list}
        for kind, key in (("configs", "Configs"), ("secrets", "Secrets")):
            refs = []
            for ref in svc.get(kind) or []:
                source = ref if isinstance(ref, str) else ref["source"]
                refs.append(self._object_ref(kind[:-1], top[kind][source]))
            if refs:
                container[key] = refs
        template = {"ContainerSpec": container}
        spec = {
            "Name": full,
            "Labels": labels,
            "Mode": {"Replicated": {"Replicas": int(deploy.get("replicas", 1))}},
            "TaskTemplate": template,
        }
        existing = next((s for s in self._services.values() if s.name == full), None)
        if (
            existing is not None
            and resolve_image == "changed"
            and existing.labels.get("com.docker.stack.image") == container["Image"]
        ):
            # As the CLI does: the image as written has not changed since the last stack
            # deploy (its label), so the service keeps the image it has now.
            container["Image"] = existing.spec["TaskTemplate"]["ContainerSpec"]["Image"]
        self.log.append(f"deploy {full}")
        if existing is None:
            sid = self._new_id("s")
            state = ServiceState(sid, full, labels, spec, 1, replicas=spec_replicas(spec))
            self._services[state.id] = state
            self._start_tasks(state)
            self._emit("service", "create", full)
            return
        task_changed = existing.spec["TaskTemplate"] != template
        updated = replace(
            existing,
            labels=labels,
            spec=spec,
            previous_spec=existing.spec,
            version=existing.version + 1,
            replicas=spec_replicas(spec),
            update_status=UpdateStatus("completed", "", _now(), _now()) if task_changed else None,
        )
        self._services[updated.id] = updated
        if task_changed or spec_replicas(spec) != existing.replicas:
            self._start_tasks(updated)
        if task_changed and container["Image"] in self.rollback_images:
            self._rolled_back(updated, "update rolled back")
        self._emit("service", "update", full)

    def _rolled_back(self, svc: ServiceState, message: str) -> None:
        """As swarmkit rolls a service back: Spec and PreviousSpec swap places."""
        previous = svc.previous_spec
        if previous is None:
            raise SwarmError(f"service {svc.name} does not have a previous spec to roll back to")
        mode = previous.get("Mode", {}).get("Replicated")
        self._services[svc.id] = replace(
            svc,
            labels=dict(previous.get("Labels") or {}),
            spec=previous,
            previous_spec=svc.spec,
            version=svc.version + 1,
            replicas=int(mode.get("Replicas", 1)) if mode is not None else None,
            update_status=UpdateStatus("rollback_completed", message, _now()),
        )
        self._start_tasks(self._services[svc.id])

    def _start_tasks(self, svc: ServiceState) -> None:
        template = svc.spec["TaskTemplate"]
        image = template["ContainerSpec"]["Image"]
        state = "failed" if image in self.failing_images else "running"
        old = [
            replace(t, desired_state="shutdown", state="shutdown")
            for t in self._tasks.get(svc.id, [])
        ]
        new = [
            TaskState(
                id=self._new_id("t"),
                service_id=svc.id,
                node_id="node1",
                slot=i + 1,
                desired_state="running",
                state=state,
                error="container unhealthy" if state == "failed" else "",
                created_at=_now(),
                image=image,
                spec_digest=spec_digest(template),
                object_ids=tuple(
                    str(r.get("ConfigID") or r.get("SecretID"))
                    for r in (template["ContainerSpec"].get("Configs") or [])
                    + (template["ContainerSpec"].get("Secrets") or [])
                ),
            )
            for i in range(svc.replicas or 0)
        ]
        if state == "failed":
            new = new * 3  # Swarm keeps replacing failing tasks
        self._tasks[svc.id] = old + new
        self.log.append(f"tasks {svc.name}: {len(new)} {state}")

    # --- manual changes, as an operator would make them --------------------------------

    def scale(self, full_name: str, replicas: int) -> None:
        svc = next(s for s in self._services.values() if s.name == full_name)
        spec = dict(svc.spec)
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        self._services[svc.id] = replace(
            svc, spec=spec, previous_spec=svc.spec, version=svc.version + 1, replicas=replicas
        )
        self._start_tasks(self._services[svc.id])
        self._emit("service", "update", full_name)

    def update(self, full_name: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """``docker service update`` of any field: ``edit`` changes a copy of the service's
        ``Spec`` in place; the engine bumps the version and keeps the old spec."""
        svc = next(s for s in self._services.values() if s.name == full_name)
        spec = copy.deepcopy(dict(svc.spec))
        edit(spec)
        mode = spec.get("Mode", {}).get("Replicated")
        self._services[svc.id] = replace(
            svc,
            labels=dict(spec.get("Labels") or {}),
            spec=spec,
            previous_spec=svc.spec,
            version=svc.version + 1,
            replicas=int(mode.get("Replicas", 1)) if mode is not None else None,
        )
        self._start_tasks(self._services[svc.id])
        self._emit("service", "update", full_name)

    def rollback(self, full_name: str) -> None:
        """``docker service rollback``: the previous spec again (label included)."""
        svc = next(s for s in self._services.values() if s.name == full_name)
        self._rolled_back(svc, "manually requested rollback")
        self._emit("service", "update", full_name)

    def add_env(self, full_name: str, entry: str) -> None:
        """``docker service update --env-add ENTRY``."""
        svc = next(s for s in self._services.values() if s.name == full_name)
        template = dict(svc.spec["TaskTemplate"])
        container = dict(template["ContainerSpec"])
        container["Env"] = sorted([*container.get("Env", []), entry])
        template["ContainerSpec"] = container
        spec = {**svc.spec, "TaskTemplate": template}
        self._services[svc.id] = replace(
            svc, spec=spec, previous_spec=svc.spec, version=svc.version + 1
        )
        self._start_tasks(self._services[svc.id])
        self._emit("service", "update", full_name)

    def crash_tasks(self, full_name: str) -> None:
        """The service's tasks die and each replacement fails too (a crash loop). Swarm
        emits no event for a task's state on the manager's stream, so neither does this."""
        svc = next(s for s in self._services.values() if s.name == full_name)
        tasks = []
        for task in self._tasks.get(svc.id, []):
            if task.desired_state != "running":
                tasks.append(task)
                continue
            dead = replace(task, desired_state="shutdown", state="failed", exit_code=1)
            tasks.append(replace(dead, error="task: non-zero exit (1)"))
            for _ in range(2):
                tasks.append(replace(dead, id=self._new_id("t"), error="task: non-zero exit (1)"))
            tasks.append(replace(task, id=self._new_id("t"), state="starting", created_at=_now()))
        self._tasks[svc.id] = tasks
        self.log.append(f"tasks {svc.name}: crashing")

    def recover_tasks(self, full_name: str) -> None:
        """The next replacement of each slot runs (no event either)."""
        svc = next(s for s in self._services.values() if s.name == full_name)
        tasks = []
        for task in self._tasks.get(svc.id, []):
            if task.desired_state == "running" and task.state != "running":
                tasks.append(replace(task, desired_state="shutdown", state="shutdown"))
                tasks.append(
                    replace(task, id=self._new_id("t"), state="running", created_at=_now())
                )
            else:
                tasks.append(task)
        self._tasks[svc.id] = tasks
        self.log.append(f"tasks {svc.name}: running again")

    def lose_node(self, node_id: str = "node1") -> None:
        """The node's engine stops: the managers mark it down, and its tasks keep the
        state they last reported (running) — Swarm may or may not replace them; here it
        does not (as seen on a real swarm mid-rollout: tests/integration/
        test_faults_nodes.py). No event either."""
        self.nodes_down.add(node_id)
        self.log.append(f"node {node_id}: down")

    def regain_node(self, node_id: str = "node1") -> None:
        self.nodes_down.discard(node_id)
        self.log.append(f"node {node_id}: ready")

    def remove(self, full_name: str) -> None:
        """``docker service rm NAME``."""
        svc = next(s for s in self._services.values() if s.name == full_name)
        del self._services[svc.id]
        self._tasks.pop(svc.id, None)
        self._emit("service", "remove", full_name)

    def task_ids(self, full_name: str) -> set[str]:
        svc = next(s for s in self._services.values() if s.name == full_name)
        return {t.id for t in self._tasks.get(svc.id, []) if t.desired_state == "running"}


def _as_deploy_reads(value: Any) -> Any:
    """The file as ``docker stack deploy`` reads it: every string value interpolated once
    more, with no variables (``$$`` is one ``$``). A ``$`` left unescaped is an error here
    (the CLI would deploy an empty string in its place)."""
    if isinstance(value, dict):
        return {k: _as_deploy_reads(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_deploy_reads(v) for v in value]
    if isinstance(value, str):
        out, errors = substitute(value, {})
        if errors:
            raise SwarmError(f"docker stack deploy would interpolate {value!r}: {errors[0]}")
        return out
    return value


def _engine_json(service: ServiceState) -> dict[str, Any]:
    """``service`` as the Engine API lists it (the fields port.py and listing.py read)."""
    out: dict[str, Any] = {
        "ID": service.id,
        "Version": {"Index": service.version},
        "Spec": dict(service.spec),
    }
    if service.previous_spec is not None:
        out["PreviousSpec"] = dict(service.previous_spec)
    if service.updated_at is not None:
        out["UpdatedAt"] = service.updated_at.isoformat()
    update = service.update_status
    if update is not None:
        out["UpdateStatus"] = {
            "State": update.state,
            "Message": update.message,
            **({"StartedAt": update.started_at.isoformat()} if update.started_at else {}),
            **({"CompletedAt": update.completed_at.isoformat()} if update.completed_at else {}),
        }
    return out


def spec_replicas(spec: dict[str, Any]) -> int:
    return int(spec["Mode"]["Replicated"]["Replicas"])
