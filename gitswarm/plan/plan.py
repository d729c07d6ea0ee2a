"""The plan: what one sync would change on one stack, and nothing it need not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from gitswarm.model.observed import ServiceState, StackState
from gitswarm.model.operation import Baseline
from gitswarm.model.stack import (
    LABEL_APP,
    LABEL_ENV,
    LABEL_SPEC_HASH,
    DesiredStack,
    ObjectMaterial,
)
from gitswarm.plan.applied import image_name as _image_name
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
    # Whether self-heal may redeploy it: not what Swarm itself rolled back (_rolled_back).
    healable: bool = True

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
    # Services to deploy whose live image is not the render's (changed by hand): the
    # CLI's `--resolve-image changed` keeps the live image of a service whose stack image
    # label still says the render's, so their deploy must resolve images (apply.py).
    reimage: tuple[str, ...] = field(default=())

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


def _rolled_back(service: ServiceState, baseline: Baseline) -> bool:
    """Swarm's own rollback (``failure_action: rollback`` or ``docker service
    rollback``) of what gitswarm applied: the service's last write rolled it back, from a
    spec that carried the baseline's hash. Swarm swaps Spec and PreviousSpec on a
    rollback, and any later update sets PreviousSpec to the rolled-back spec and clears
    the rollback state. (Not its state's words in the note: rollback_started becomes
    rollback_completed, and the drift would be notified twice.)"""
    update = service.update_status
    previous = service.previous_spec
    if update is None or not update.state.startswith("rollback") or previous is None:
        return False
    labels = previous.get("Labels") or {}
    return bool(labels.get(LABEL_SPEC_HASH) == baseline.spec_hash)


def _left_by(service: ServiceState, baseline: Baseline, revision: str | None) -> bool:
    """Whether ``service`` is as the failed deploy of ``revision`` left it: its labels
    say that revision deployed it, and its previous spec carries the baseline's hash
    (that deploy wrote over what gitswarm had applied, and nothing wrote after it)."""
    if revision is None or service.revision != revision:
        return False
    previous = service.previous_spec
    if previous is None:  # a listing without PreviousSpec: the live read decides
        return False
    return (previous.get("Labels") or {}).get(LABEL_SPEC_HASH) == baseline.spec_hash


def _overwritten(service: ServiceState, baseline: Baseline | None) -> tuple[FieldChange, ...]:
    """Git moved: the update overwrites whatever someone changed on the service since
    the baseline, which is said too (as drift). Only while the service's labels say the
    baseline's deploy wrote it: what a failed deploy left, or Swarm rolled back to an
    older revision, carries another revision label."""
    if baseline is None or baseline.version == service.version:
        return ()
    if service.revision != baseline.revision:
        return ()
    return tuple(diff(baseline.spec, service.spec))


def rewritten_drift(
    service: ServiceState, baseline: Baseline | None, want_hash: str, unsettled: str | None
) -> ServiceChange | None:
    """Drift whatever the spec-hash label says (Argo CD compares live with desired,
    never trusting labels): the baseline says gitswarm last applied exactly what Git
    wants (``want_hash``), yet the live service has another hash label, or none. Someone
    with Docker access changed it and rewrote or removed the label (``docker service
    update --image x --label-add io.gitswarm.spec-hash=...``): the drift is the live
    spec against the baseline, the label included. None when Git moved (the deploy
    overwrites the change) or when the service is as the failed deploy of ``unsettled``
    left it (``_left_by``): that deploy's own write, which its failure already reports."""
    if baseline is None or baseline.spec_hash != want_hash or service.spec_hash == want_hash:
        return None
    if _left_by(service, baseline, unsettled):
        return None
    drift = tuple(diff(baseline.spec, service.spec))
    if not drift:
        return None  # an old record whose spec lacks its own hash label: a sync redeploys
    name = service.compose_name
    if _rolled_back(service, baseline):
        note = (
            "rolled back by Swarm from what gitswarm deployed: not healed, a redeploy "
            "would roll out again what Swarm rolled back; push a fix to Git"
        )
        return ServiceChange(name, "unchanged", drift=drift, service_id=service.id,
                             note=note, healable=False)  # fmt: skip
    how = "removed" if service.spec_hash is None else "rewritten"
    note = f"gitswarm's spec-hash label {how} outside gitswarm"
    return ServiceChange(name, "unchanged", drift=drift, service_id=service.id, note=note)


def make_plan(
    desired: DesiredStack,
    observed: StackState,
    baselines: Mapping[str, Baseline],
    *,
    prune: bool,
    heal: bool,
    unsettled: Mapping[str, str] | None = None,
) -> Plan:
    """Compare one rendered stack with what runs.

    - a desired service that is missing is created; one whose spec hash differs is
      updated (with the rendered fields that changed, when a baseline knows them);
    - a service whose live spec differs from the baseline has drifted; with ``heal`` it
      is redeployed, otherwise only reported — also when its spec-hash label was
      rewritten or removed while the baseline is what Git wants (``rewritten_drift``),
      but never what Swarm itself rolled back (redeploying that would roll it out again);
    - ``unsettled``: service -> the revision of a failed deploy that may have left it
      at that revision's spec (``rewritten_drift``);
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
        rewritten = rewritten_drift(live, baseline, want_hash, (unsettled or {}).get(name))
        if rewritten is not None:
            if heal and rewritten.healable:
                rewritten = replace(rewritten, action="update")
            changes.append(rewritten)
            continue
        if live.spec_hash != want_hash:
            before = (
                baseline.rendered if baseline and baseline.spec_hash == live.spec_hash else None
            )
            fields = tuple(diff(before, rendered)) if before is not None else ()
            note = "" if live.owned else "adopting a service gitswarm did not deploy"
            overwritten = _overwritten(live, baseline)
            if overwritten and baseline is not None and live.spec_hash != baseline.spec_hash:
                how = "removed" if live.spec_hash is None else "rewritten"
                note = f"changed on the swarm, gitswarm's spec-hash label {how}; Git moved"
            elif overwritten:
                note = "changed on the swarm; Git moved"
            changes.append(
                ServiceChange(name, "update", fields, overwritten, service_id=live.id, note=note)
            )
            continue
        if baseline is None:
            # Nothing recorded to compare with (a new store, or a service deployed by an
            # older gitswarm): a sync redeploys it once to know what "in sync" means.
            missing_baselines.append(name)
            action_nb: Action = "update" if heal else "unchanged"
            note = "no baseline recorded yet" if heal else ""
            changes.append(ServiceChange(name, action_nb, service_id=live.id, note=note))
            continue
        if baseline.spec_hash != want_hash:
            # Git's hash on the service, but no deploy of it recorded as done: a failed
            # or interrupted deploy left it. Deployed again (no task restarts), so that
            # the sync waits for its health and records its baseline: never "in sync"
            # on the strength of a label (nor unwatched for drift until the next commit).
            note = "its deploy was not recorded as done: deployed again to wait for health"
            changes.append(ServiceChange(name, "update", service_id=live.id, note=note))
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
    reimage = tuple(
        c.service
        for c in changes
        if c.action == "update"
        and (svc := named.get(c.service)) is not None
        and _image_name(svc.image) != _image_name(str(desired.services[c.service].get("image", "")))
    )
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
        reimage=reimage,
    )


def deployable_compose(desired: DesiredStack, services: tuple[str, ...]) -> dict[str, Any]:
    """The rendered compose with only ``services``: a deploy touches nothing else."""
    compose = {k: v for k, v in desired.compose.items() if k != "services"}
    compose["services"] = {name: desired.services[name] for name in services}
    return compose
