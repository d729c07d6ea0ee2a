"""The drift round's one listing of every stack's services, decoded into only what the
round reads (I/O edge: the engine's JSON in, model/observed.py's records out).

``DockerSwarm.services_by_stack`` and ``EngineReads.services_by_stack`` hand the body of
``GET /services`` here as bytes. At 1,000 apps x 5 services it is 17 MB of JSON, and
decoded whole into dicts it made 70 MB of objects at once (half of them ``PreviousSpec``,
which the round never reads) and took most of the round's CPU (bench/profile_round.py,
issue 18). What the round reads of a service is its ID, version, name, labels, mode and
replicas, update status and time: those are decoded (msgspec, into typed structs; every
other field is skipped, not built), and its ``Spec`` is kept as its own JSON bytes
(``LazySpec``), decoded the first time something reads it: the plan's diff of a service
whose version moved, the health assessment of an app whose services or tasks changed.
A quiet round decodes no spec at all.

A stack's own listing (``services``, a sync's reads) still decodes every field eagerly
(port.py ``service_state``): those are small, and a deploy's ``read_applied`` needs
``PreviousSpec``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gitswarm.errors import SwarmError
from gitswarm.model.observed import LazySpec, ServiceMode, ServiceState
from gitswarm.model.stack import LABEL_STACK
from gitswarm.swarm.port import parse_time, update_status


class _Version(msgspec.Struct, frozen=True):
    Index: int = 0


class _Service(msgspec.Struct, frozen=True):
    """One service of the listing: ``Spec`` left as its JSON; ``PreviousSpec``,
    ``Endpoint``, ``CreatedAt`` and anything else not even decoded."""

    ID: str
    Spec: msgspec.Raw = msgspec.Raw(b"{}")
    Version: _Version = _Version()
    UpdateStatus: dict[str, Any] | None = None  # rare: as port.py reads it
    UpdatedAt: str | None = None


class _Replicated(msgspec.Struct, frozen=True):
    Replicas: int = 1


class _ReplicatedJob(msgspec.Struct, frozen=True):
    TotalCompletions: int | None = None


class _Mode(msgspec.Struct, frozen=True):
    Replicated: _Replicated | None = None
    Global: dict[str, object] | None = None
    ReplicatedJob: _ReplicatedJob | None = None
    GlobalJob: dict[str, object] | None = None


class _Head(msgspec.Struct, frozen=True):
    """What the round reads of a ``Spec`` (its ``TaskTemplate`` and the rest skipped)."""

    Name: str = ""
    Labels: dict[str, Any] | None = None  # as port.py takes them, values unchecked
    Mode: _Mode = _Mode()


_LISTING = msgspec.json.Decoder(list[_Service])
_HEAD = msgspec.json.Decoder(_Head)


def _mode(mode: _Mode) -> tuple[ServiceMode, int | None]:
    """As port.py ``service_state`` reads ``Spec.Mode``."""
    if mode.Replicated is not None:
        return "replicated", mode.Replicated.Replicas
    if mode.Global is not None:
        return "global", None
    if mode.ReplicatedJob is not None:
        return "replicated-job", mode.ReplicatedJob.TotalCompletions or 1
    if mode.GlobalJob is not None:
        return "global-job", None
    return "replicated", None


def services_by_stack(
    body: bytes, action: str = "list the services of every stack"
) -> dict[str, list[ServiceState]]:
    """Every stack's services of one ``GET /services`` answer, by stack name (the value
    of their stack label), each with its ``Spec`` kept as JSON until read and without
    ``PreviousSpec`` (only a deploy's ``read_applied`` asks for it). An answer that is
    not a listing of services is a ``SwarmError`` that says so."""
    item: _Service | None = None
    try:
        listed = _LISTING.decode(body)
        heads = []
        for item in listed:
            heads.append(_HEAD.decode(item.Spec))
    except msgspec.DecodeError as exc:
        where = "" if item is None else f" in the Spec of service {item.ID}"
        problem = f"the engine's answer is not a listing of services ({exc}{where})"
        raise SwarmError(f"{action}: {problem}") from exc
    by_stack: dict[str, list[ServiceState]] = {}
    for item, head in zip(listed, heads, strict=True):
        mode, replicas = _mode(head.Mode)
        labels = head.Labels or {}
        update = update_status(item.UpdateStatus)
        service = ServiceState(
            id=item.ID,
            name=head.Name,
            labels=labels,
            spec=LazySpec(bytes(item.Spec)),
            version=item.Version.Index,
            mode=mode,
            replicas=replicas,
            update_status=update,
            updated_at=parse_time(item.UpdatedAt),
        )
        by_stack.setdefault(labels.get(LABEL_STACK, ""), []).append(service)
    return by_stack


__all__ = ["services_by_stack"]
