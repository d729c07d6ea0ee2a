"""What render/ produces: the exact stack that will be deployed, and where each part came from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gitswarm.model.position import Path, nearest
from gitswarm.model.position import SourceLocation as SourceLocation  # re-exported

# Labels gitswarm puts on what it owns (service labels, never container labels: a label
# that changes with each commit must not restart tasks).
LABEL_OWNER = "io.gitswarm.owner"  # value: "gitswarm"
LABEL_APP = "io.gitswarm.app"
LABEL_ENV = "io.gitswarm.env"
LABEL_SPEC_HASH = "io.gitswarm.spec-hash"  # of the rendered service, revision excluded
LABEL_REVISION = "io.gitswarm.revision"  # the commit that last deployed this service
LABEL_OBJECT_KEY = "io.gitswarm.key"  # a config/secret's name in the compose file
LABEL_STACK = "com.docker.stack.namespace"  # Docker's own stack label
OWNER_VALUE = "gitswarm"


@dataclass(frozen=True)
class SourceMap:
    """Where each node of a rendered document was written. Keys are paths into the
    document: ("services", "web", "image"). ``locate`` falls back to the nearest
    ancestor (model/position.py), so every path gets the best location known."""

    locations: Mapping[Path, SourceLocation] = field(default_factory=dict)

    def locate(self, path: Path) -> SourceLocation | None:
        return nearest(self.locations, path)


@dataclass(frozen=True, slots=True)
class ObjectMaterial:
    """A Docker config or secret to create before the deploy. For secrets ``data`` is the
    decrypted value: it lives in memory only and never appears in repr, logs or output."""

    kind: Literal["config", "secret"]
    key: str  # the name in the compose file, e.g. "app_config"
    name: str  # the Swarm object name, "<stack>_<key>_<hash>"
    data: bytes = field(repr=False)
    source: str = ""  # repository path it was read from
    labels: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ObjectMaterial(kind={self.kind!r}, key={self.key!r}, name={self.name!r})"


@dataclass(frozen=True)
class DesiredStack:
    """One application in one environment at one revision, ready to deploy.

    ``compose`` is the final Compose document as plain data: merged, interpolated, with
    configs/secrets declared ``external`` under their content-addressed names and
    gitswarm's labels on every service. Text values are as the author meant them (``$$``
    already resolved); render/'s YAML output escapes ``$`` again so ``docker stack
    deploy`` reads exactly these values.
    """

    app: str
    env: str
    stack: str
    revision: str | None
    compose: Mapping[str, Any]
    objects: tuple[ObjectMaterial, ...] = ()
    service_hashes: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    source_map: SourceMap = field(default_factory=SourceMap)

    @property
    def services(self) -> Mapping[str, Any]:
        services: Mapping[str, Any] = self.compose.get("services", {})
        return services

    def service_name(self, service: str) -> str:
        """The Swarm service name of a compose service."""
        return f"{self.stack}_{service}"


# The key a compose file passes to an external secret provider (source/providers.py),
# as one argv element of the operator's command: it must not look like an option, climb
# out of a path (``..``) or carry anything a shell or URL parser would read specially.
PROVIDER_FIELD = "x-gitswarm-provider"
PROVIDER_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
LABEL_PROVIDER = "io.gitswarm.provider"  # on a secret whose value came from a provider


def provider_key_problem(key: object) -> str | None:
    """Why ``key`` cannot be passed to a provider, or None."""
    if not isinstance(key, str) or not PROVIDER_KEY.match(key):
        return (
            "a provider key is 1-200 letters, digits, '.', '_', '-' and '/', starting with a "
            "letter or digit"
        )
    parts = key.split("/")
    if ".." in parts or "" in parts or "." in parts:
        return "a provider key has no empty, '.' or '..' path segments"
    return None


@dataclass(frozen=True, slots=True)
class ProviderRef:
    """A secret whose value an operator-defined provider gives: ``provider`` (its name
    in the agent config) and ``key`` (passed to it); where the compose file says so."""

    provider: str
    key: str
    secret: str  # the secret's name in the compose file
    file: str | None = None
    line: int | None = None
    column: int | None = None
