"""What a rendered stack needs from the swarm that no deploy creates (pure).

``external: true`` networks, volumes, secrets and configs are the operator's: ``docker
stack deploy`` refuses a stack whose external network is missing, and a task whose
external volume or secret is missing never starts. ``gitswarm bootstrap`` asks the
swarm for each of them before it deploys anything (reconcile/bootstrap.py), so an
emptied or new swarm gets one clear list of what to create first.

The configs and secrets gitswarm renders from the repository are ``external`` in the
deployed file too (it creates them itself, under content-addressed names): they are not
needs. Nor are the networks every engine has (``host``, ``bridge``, ``none``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gitswarm.model.stack import DesiredStack

ExternalKind = Literal["network", "volume", "secret", "config"]
KINDS: tuple[tuple[str, ExternalKind], ...] = (
    ("networks", "network"),
    ("volumes", "volume"),
    ("secrets", "secret"),
    ("configs", "config"),
)
PREDEFINED_NETWORKS = frozenset({"host", "bridge", "none"})


@dataclass(frozen=True)
class ExternalNeed:
    kind: ExternalKind
    name: str  # the object's name on the swarm
    key: str  # its name in the compose file
    services: tuple[str, ...]  # the compose services that use it


def external_needs(desired: DesiredStack) -> tuple[ExternalNeed, ...]:
    """Every external object ``desired`` uses that gitswarm does not create itself."""
    created = {obj.name for obj in desired.objects}
    needs: list[ExternalNeed] = []
    for section, kind in KINDS:
        declared = desired.compose.get(section) or {}
        if not isinstance(declared, Mapping):
            continue
        for key, spec in declared.items():
            if not isinstance(spec, Mapping) or not spec.get("external"):
                continue
            name = str(spec.get("name") or key)
            if name in created or (kind == "network" and name in PREDEFINED_NETWORKS):
                continue
            users = tuple(
                service
                for service, body in sorted(desired.services.items())
                if str(key) in set(_references(section, body))
            )
            needs.append(ExternalNeed(kind, name, str(key), users))
    return tuple(needs)


def _references(section: str, service: Any) -> Iterator[str]:
    """The compose keys of ``section`` that one service refers to (short or long syntax)."""
    if not isinstance(service, Mapping):
        return
    used = service.get(section)
    if isinstance(used, Mapping):  # networks: {name: {...}}
        yield from (str(k) for k in used)
        return
    if not isinstance(used, list):
        return
    for item in used:
        if isinstance(item, str):
            # "name", or a volume's "source:target[:mode]"
            yield item.split(":", 1)[0] if section == "volumes" else item
        elif (
            isinstance(item, Mapping)
            and item.get("source") is not None
            and (section != "volumes" or item.get("type", "volume") == "volume")
        ):
            yield str(item["source"])
