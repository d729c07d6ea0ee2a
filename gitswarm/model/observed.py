"""What swarm/ observes on the cluster, as plain values for plan/ and health/."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gitswarm.model.stack import (
    LABEL_APP,
    LABEL_ENV,
    LABEL_OWNER,
    LABEL_REVISION,
    LABEL_SPEC_HASH,
    LABEL_STACK,
    OWNER_VALUE,
)

ServiceMode = Literal["replicated", "global", "replicated-job", "global-job"]


def spec_digest(spec: Mapping[str, Any]) -> str:
    """A digest of a task template, to tell whether a task runs the service's current
    one. Swarm copies the template into each task it creates, but only the service's
    copy shows ``Runtime`` and only the task's shows the ``Placement.Platforms`` the
    orchestrator filled in: both are left out."""
    comparable = {k: v for k, v in spec.items() if k != "Runtime"}
    placement = comparable.get("Placement")
    if isinstance(placement, Mapping):
        trimmed = {k: v for k, v in placement.items() if k != "Platforms"}
        if trimmed:
            comparable["Placement"] = trimmed
        else:
            comparable.pop("Placement")
    text = json.dumps(comparable, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class LazySpec(Mapping[str, Any]):
    """A service's ``Spec`` kept as the engine's JSON, decoded the first time it is read
    (then kept decoded): the drift round's listing of 5,000 services holds 8 MB of bytes
    instead of 35 MB of dicts, and a quiet round reads no spec (swarm/listing.py, issue
    18). It is a read-only Mapping equal to the decoded dict; ``json.dumps`` needs
    ``dict(spec)`` (no spec of the round's listing is written anywhere)."""

    __slots__ = ("_json", "_spec")

    def __init__(self, text: bytes) -> None:
        self._json = text
        self._spec: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        spec = self._spec
        if spec is None:  # two threads may both decode: the same value either way
            spec = json.loads(self._json)
            if not isinstance(spec, dict):
                spec = {}  # as port.py reads a Spec that is not an object
            self._spec = spec
        return spec

    @property
    def decoded(self) -> bool:
        """Whether it is held decoded now (tests and bench/ look)."""
        return self._spec is not None

    def release(self) -> None:
        """Drop the decoded dict (the JSON stays: a later read decodes it again). The
        health round reads the specs of one app at a time: holding all 5,000 decoded to
        the end of a round that assesses every app would be most of the old peak again."""
        self._spec = None

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __contains__(self, key: object) -> bool:
        return key in self._decoded()

    def get(self, key: str, default: Any = None) -> Any:
        return self._decoded().get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazySpec):
            other = other._decoded()
        return self._decoded() == other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as a dict's: it is compared by value

    def __repr__(self) -> str:
        return f"LazySpec({self._decoded()!r})"


@dataclass(frozen=True, slots=True)
class UpdateStatus:
    state: str  # updating | paused | completed | rollback_started | rollback_paused | ...
    message: str = ""
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None


@dataclass(frozen=True)
class ServiceState:
    id: str
    name: str  # Swarm name, "<stack>_<service>"
    labels: Mapping[str, str]  # service labels (Spec.Labels)
    spec: Mapping[str, Any] = field(repr=False)  # Spec as Docker returns it
    version: int = 0
    mode: ServiceMode = "replicated"
    replicas: int | None = None  # desired replicas (replicated modes)
    update_status: UpdateStatus | None = None
    updated_at: dt.datetime | None = None
    # The Spec before the last update (Swarm's PreviousSpec), None if never updated.
    previous_spec: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def stack(self) -> str | None:
        return self.labels.get(LABEL_STACK)

    @property
    def compose_name(self) -> str:
        """The service's name in the compose file (Swarm name minus the stack prefix)."""
        stack = self.stack
        if stack and self.name.startswith(stack + "_"):
            return self.name[len(stack) + 1 :]
        return self.name

    @property
    def owned(self) -> bool:
        return self.labels.get(LABEL_OWNER) == OWNER_VALUE

    @property
    def app(self) -> str | None:
        return self.labels.get(LABEL_APP)

    @property
    def env(self) -> str | None:
        return self.labels.get(LABEL_ENV)

    @property
    def spec_hash(self) -> str | None:
        return self.labels.get(LABEL_SPEC_HASH)

    @property
    def revision(self) -> str | None:
        return self.labels.get(LABEL_REVISION)

    @property
    def template_digest(self) -> str:
        return spec_digest(self.spec.get("TaskTemplate", {}))

    @property
    def image(self) -> str:
        image: str = self.spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Image", "")
        return image


@dataclass(frozen=True, slots=True)
class TaskState:
    id: str
    service_id: str
    node_id: str | None
    slot: int | None
    desired_state: str  # running | shutdown | ready | complete | ...
    state: str  # new | pending | assigned | ... | running | complete | failed | rejected | ...
    message: str = ""
    error: str = ""
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    image: str = ""
    exit_code: int | None = None
    spec_digest: str = ""  # of the task template it was created from
    # IDs of the configs and secrets its container mounts (from its own spec: a task of
    # an older service version may still use an object the service no longer names)
    object_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectState:
    """A Docker config or secret (its data is never read back)."""

    kind: Literal["config", "secret"]
    id: str
    name: str
    labels: Mapping[str, str]
    created_at: dt.datetime | None = None

    @property
    def owned(self) -> bool:
        return self.labels.get(LABEL_OWNER) == OWNER_VALUE


@dataclass(frozen=True)
class StackState:
    """Everything observed of one stack namespace in one read."""

    stack: str
    services: tuple[ServiceState, ...] = ()
    objects: tuple[ObjectState, ...] = ()

    def service(self, compose_name: str) -> ServiceState | None:
        for svc in self.services:
            if svc.compose_name == compose_name:
                return svc
        return None
