"""The plan: what one sync would change on one stack, and nothing it need not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gitswarm.model.observed import ServiceState, StackState
from gitswarm.model.operation import Baseline
from gitswarm.model.stack import LABEL_APP, LABEL_ENV, DesiredStack, ObjectMaterial
from gitswarm.plan.diff import FieldChange, diff

Action = Literal["create", "update", "remove", "orphan", "unchanged"]

# Swarm Spec paths people know by their Compose names (for drift messages).
_FRIENDLY = {
    "Mode.Replicated.Replicas": "deploy.replicas",
    "TaskTemplate.ContainerSpec.Image": "image",
    "TaskTemplate.ContainerSpec.Env": "environment",
    "TaskTemplate.ContainerSpec.Command": "entrypoint",
    "TaskTemplate.ContainerSpec.Args": "command",
    "TaskTemplate.ContainerSpec.Labels": "labels",
    "TaskTemplate.Resources": "deploy.resources",
    "TaskTemplate.Placement": "deploy.placement",
    "TaskTemplate.ForceUpdate": "force update",
    "EndpointSpec": "ports",
    "Labels": "deploy.labels",
}


def friendly(path: str) -> str:
    for raw, nice in _FRIENDLY.items():
        if path == raw or path.startswith(raw + ".") or path.startswith(raw + "["):
            return nice + path[len(raw) :]
    return path


@dataclass(frozen=True)
class ServiceChange:
    service: str  # compose name
    action: Action
    fields: tuple[FieldChange, ...] = ()  # rendered before -> after (create/update)
    drift: tuple[FieldChange, ...] = ()  # live spec vs what gitswarm deployed
    service_id: str | None = None
    note: str = ""

    @property
    def deploys(self) -> bool:
        return self.action in ("create", "update")

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "action": self.action,
            "fields": [f.as_dict() for f in self.fields],
            "drift": [{**f.as_dict(), "field": friendly(f.path)} for f in self.drift],
            "note": self.note,
        }


@dataclass(frozen=True)
class Plan:
    app: str
    env: str
    stack: str
    revision: str | None
    services: tuple[ServiceChange, ...]
    create_objects: tuple[ObjectMaterial, ...] = ()
    missing_baselines: tuple[str, ...] = field(default=())

    @property
    def to_deploy(self) -> tuple[str, ...]:
        return tuple(c.service for c in self.services if c.deploys)

    @property
    def to_remove(self) -> tuple[ServiceChange, ...]:
        return tuple(c for c in self.services if c.action == "remove")

    @property
    def orphans(self) -> tuple[str, ...]:
        return tuple(c.service for c in self.services if c.action == "orphan")

    @property
    def drifted(self) -> tuple[ServiceChange, ...]:
        return tuple(c for c in self.services if c.drift or c.note == "missing")

    @property
    def empty(self) -> bool:
        """Nothing to write: no deploy, no removal, no new object."""
        return not self.to_deploy and not self.to_remove and not self.create_objects

    @property
    def in_sync(self) -> bool:
        """Git and the swarm agree (orphans and drift make it OutOfSync)."""
        return self.empty and not self.orphans and not self.drifted

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "env": self.env,
            "stack": self.stack,
            "revision": self.revision,
            "in_sync": self.in_sync,
            "services": [c.as_dict() for c in self.services],
            "create_objects": [
                {"kind": o.kind, "key": o.key, "name": o.name} for o in self.create_objects
            ],
        }


def _owned_by(service: ServiceState, app: str, env: str) -> bool:
    return (
        service.owned
        and service.labels.get(LABEL_APP) == app
        and (service.labels.get(LABEL_ENV) == env)
    )


def drift_of(service: ServiceState, baseline: Baseline | None) -> tuple[FieldChange, ...]:
    if baseline is None or baseline.spec_hash != service.spec_hash:
        return ()
    if baseline.version == service.version:
        return ()  # nothing has written the service since we recorded it
    return tuple(diff(baseline.spec, service.spec))


def make_plan(
    desired: DesiredStack,
    observed: StackState,
    baselines: Mapping[str, Baseline],
    *,
    prune: bool,
    heal: bool,
) -> Plan:
    """Compare one rendered stack with what runs.

    - a desired service that is missing is created; one whose spec hash differs is
      updated (with the rendered fields that changed, when a baseline knows them);
    - a service whose live spec differs from the baseline has drifted; with ``heal`` it
      is redeployed, otherwise only reported;
    - a service gitswarm deployed for this app and environment that left Git is removed
      with ``prune``, otherwise reported as an orphan; services gitswarm does not own
      are never touched.
    """
    changes: list[ServiceChange] = []
    missing_baselines: list[str] = []
    # The engine lists services in no fixed order: by name (then id), so that the plan,
    # and all that shows it (plan, status, the API), is the same whatever the listing.
    listed = sorted(observed.services, key=lambda s: (s.compose_name, s.id))
    # Each live service by compose name, the first of a name in that order: one pass,
    # not one per desired service (the drift round plans 1,000 stacks).
    named: dict[str, ServiceState] = {}
    for service in listed:
        named.setdefault(service.compose_name, service)
    for name in sorted(desired.services):
        want_hash = desired.service_hashes.get(name, "")
        live = named.get(name)
        baseline = baselines.get(name)
        rendered = desired.services[name]
        if live is None:
            note = "missing" if baseline is not None else ""
            changes.append(ServiceChange(name, "create", tuple(diff({}, rendered)), note=note))
            continue
        if live.spec_hash != want_hash:
            before = (
                baseline.rendered if baseline and baseline.spec_hash == live.spec_hash else None
            )
            fields = tuple(diff(before, rendered)) if before is not None else ()
            note = "" if live.owned else "adopting a service gitswarm did not deploy"
            changes.append(ServiceChange(name, "update", fields, service_id=live.id, note=note))
            continue
        if baseline is None:
            # Nothing recorded to compare with (a new store, or a service deployed by an
            # older gitswarm): a sync redeploys it once to know what "in sync" means.
            missing_baselines.append(name)
            action_nb: Action = "update" if heal else "unchanged"
            note = "no baseline recorded yet" if heal else ""
            changes.append(ServiceChange(name, action_nb, service_id=live.id, note=note))
            continue
        drift = drift_of(live, baseline)
        action: Action = "update" if drift and heal else "unchanged"
        changes.append(ServiceChange(name, action, drift=drift, service_id=live.id))
    for live in listed:
        if live.compose_name in desired.services:
            continue
        if not _owned_by(live, desired.app, desired.env):
            continue
        action = "remove" if prune else "orphan"
        changes.append(ServiceChange(live.compose_name, action, service_id=live.id))
    present = {obj.name for obj in observed.objects}
    create = tuple(obj for obj in desired.objects if obj.name not in present)
    return Plan(
        app=desired.app,
        env=desired.env,
        stack=desired.stack,
        revision=desired.revision,
        services=tuple(changes),
        create_objects=create,
        missing_baselines=tuple(missing_baselines),
    )


def deployable_compose(desired: DesiredStack, services: tuple[str, ...]) -> dict[str, Any]:
    """The rendered compose with only ``services``: a deploy touches nothing else."""
    compose = {k: v for k, v in desired.compose.items() if k != "services"}
    compose["services"] = {name: desired.services[name] for name in services}
    return compose
