"""Reading a rendered Compose document the way Docker does, for the built-in rules.

The rendered stack is plain data, but Compose allows several spellings of the same thing
(labels as a list or a mapping, short and long volume syntax, networks as a list or a
mapping, image references with implicit registry and tag). These helpers normalise them
so that rules.py can stay one small function per rule.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
JOB_MODES = ("replicated-job", "global-job")


def services(compose: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    raw = compose.get("services") or {}
    if not isinstance(raw, Mapping):
        return
    for name, spec in raw.items():
        yield str(name), spec if isinstance(spec, Mapping) else {}


def get(spec: Mapping[str, Any], *keys: str) -> Any:
    """``spec[k1][k2]...``, or None where a level is missing or not a mapping."""
    value: Any = spec
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def is_job(spec: Mapping[str, Any]) -> bool:
    return get(spec, "deploy", "mode") in JOB_MODES


def labels(value: object) -> dict[str, str]:
    """Compose labels, written as a mapping or as a list of ``key=value``."""
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        found = {}
        for item in value:
            key, _, val = str(item).partition("=")
            found[key] = val
        return found
    return {}


def truthy(value: object) -> bool:
    """A Compose boolean: true, or a string that Docker reads as true."""
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


@dataclass(frozen=True, slots=True)
class ImageRef:
    registry: str  # "docker.io" for Docker Hub
    path: str  # "library/nginx"
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.path}"


def parse_image(ref: str) -> ImageRef:
    """Split an image reference as Docker does: the first component is a registry when it
    has a dot or a port, or is ``localhost``; otherwise the image is on Docker Hub."""
    name, _, digest = ref.strip().partition("@")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = first.lower(), rest
    else:
        registry, path = DOCKER_HUB, name if sep else f"library/{name}"
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    return ImageRef(registry=registry, path=path, tag=tag or None, digest=digest or None)


@dataclass(frozen=True, slots=True)
class BindMount:
    index: int  # position in the service's ``volumes`` list
    source: str  # normalised host path


def bind_mounts(spec: Mapping[str, Any]) -> Iterator[BindMount]:
    """Host-path mounts of a service, from short (``/src:/dst:ro``) or long syntax."""
    volumes = spec.get("volumes") or []
    if not isinstance(volumes, list):
        return
    for index, item in enumerate(volumes):
        source: object = None
        if isinstance(item, str):
            parts = item.split(":")
            if len(parts) >= 2:
                source = parts[0]
        elif isinstance(item, Mapping) and item.get("type", "volume") == "bind":
            source = item.get("source")
        if isinstance(source, str) and source.startswith(("/", "~")):
            yield BindMount(index=index, source=_normpath(source))


def _normpath(path: str) -> str:
    normal = posixpath.normpath(path)
    return "/" if normal in ("/", "//") else normal


def exposes(source: str, sensitive: str) -> bool:
    """Whether mounting host ``source`` exposes host path ``sensitive``: the path itself,
    a folder containing it (``/var/run`` holds docker.sock), or something inside it."""
    sensitive = _normpath(sensitive)
    if source == "/" or sensitive == "/":
        return source == sensitive
    return (
        source == sensitive
        or sensitive.startswith(source + "/")
        or source.startswith(sensitive + "/")
    )


def service_networks(spec: Mapping[str, Any]) -> list[str]:
    raw = spec.get("networks")
    if isinstance(raw, Mapping):
        return [str(k) for k in raw]
    if isinstance(raw, list):
        return [str(k) for k in raw]
    return []


def network_name(compose: Mapping[str, Any], key: str) -> str | None:
    """The Docker network a compose network key attaches to, when it is not the stack's
    own (external networks, or an explicit ``name:``)."""
    spec = get(compose, "networks", key)
    if not isinstance(spec, Mapping):
        return None
    if isinstance(spec.get("name"), str):
        return str(spec["name"])
    external = spec.get("external")
    if isinstance(external, Mapping) and isinstance(external.get("name"), str):
        return str(external["name"])  # the Compose v3.3 spelling
    if truthy(external):
        return key
    return None


_ZERO = re.compile(r"^0*\.?0*\s*[a-z]*$", re.IGNORECASE)


def positive(value: object) -> bool:
    """A resource value that limits something (Compose reads 0 as no limit)."""
    if value is None or isinstance(value, bool):
        return False
    return not _ZERO.match(str(value).strip())
