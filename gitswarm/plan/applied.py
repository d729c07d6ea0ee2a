"""What gitswarm applied to a service: the drift reference (baseline) of a deploy (pure).

What counts as deployed is what gitswarm applied from Git, never a live state read back
after waiting for health: a ``docker service scale`` made while a rollout converges
would otherwise be adopted as if Git had said it. So reconcile/ reads each service right
after its own ``docker stack deploy`` returns and checks that read against the render,
on the fields a manual change touches (replicas, environment, image, service labels):

- the read matches: it is what the CLI sent (Swarm's filled-in defaults included);
- it does not, but Swarm's ``PreviousSpec`` does: someone updated the service in the
  moment between the deploy and the read, and ``PreviousSpec`` is what gitswarm applied;
- neither does: the read, with those fields set to what Git says.

Drift is then the live spec against this baseline (plan/plan.py ``drift_of``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from gitswarm.model.observed import ServiceState

# Service labels the Docker CLI sets itself (stack namespace, image as written).
_CLI_LABELS = "com.docker.stack."


def image_name(image: str) -> str:
    """An image reference as the CLI leaves it in a spec: without digest, with a tag."""
    name = image.split("@", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def _env(rendered: Mapping[str, Any]) -> list[str] | None:
    """The ``Env`` the CLI sends (sorted ``KEY=value``); None when the CLI may fill a value
    in from its own process (an entry without a value, or an empty one)."""
    env = rendered.get("environment") or {}
    if not isinstance(env, Mapping):
        return None
    if any(not isinstance(v, str) or v == "" for v in env.values()):
        return None
    return sorted(f"{k}={v}" for k, v in env.items())


def _mode(rendered: Mapping[str, Any]) -> dict[str, Any] | None:
    deploy = rendered.get("deploy") or {}
    if (deploy.get("mode") or "replicated") != "replicated":
        return None
    replicas = deploy.get("replicas")
    return {"Replicated": {"Replicas": 1 if replicas is None else int(replicas)}}


def _mismatches(spec: Mapping[str, Any], rendered: Mapping[str, Any]) -> list[str]:
    """The checked fields in which ``spec`` differs from the render (empty: it is ours)."""
    out: list[str] = []
    container = spec.get("TaskTemplate", {}).get("ContainerSpec", {})
    mode = _mode(rendered)
    if mode is not None and spec.get("Mode") != mode:
        out.append("Mode")
    env = _env(rendered)
    if env is not None and sorted(container.get("Env") or []) != env:
        out.append("Env")
    image = rendered.get("image") or ""
    if image and image_name(str(container.get("Image", ""))) != image_name(image):
        out.append("Image")
    want = {str(k): str(v) for k, v in ((rendered.get("deploy") or {}).get("labels") or {}).items()}
    have = {k: v for k, v in (spec.get("Labels") or {}).items() if not k.startswith(_CLI_LABELS)}
    if have != want:
        out.append("Labels")
    return out


def _with_render(spec: Mapping[str, Any], rendered: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with the checked fields set to what the render says."""
    out = copy.deepcopy(dict(spec))
    mode = _mode(rendered)
    if mode is not None:
        out["Mode"] = mode
    container = out.setdefault("TaskTemplate", {}).setdefault("ContainerSpec", {})
    env = _env(rendered)
    if env is not None:
        if env:
            container["Env"] = env
        else:
            container.pop("Env", None)
    image = rendered.get("image") or ""
    if image and image_name(str(container.get("Image", ""))) != image_name(image):
        container["Image"] = image
    labels = {k: v for k, v in (out.get("Labels") or {}).items() if k.startswith(_CLI_LABELS)}
    deploy_labels = (rendered.get("deploy") or {}).get("labels") or {}
    labels.update({str(k): str(v) for k, v in deploy_labels.items()})
    out["Labels"] = labels
    return out


def applied_spec(read: ServiceState, rendered: Mapping[str, Any]) -> Mapping[str, Any]:
    """The spec gitswarm applied to a service, from ``read`` (the service as read right
    after its deploy) and the compose service it was rendered from."""
    if not _mismatches(read.spec, rendered):
        return read.spec
    previous = read.previous_spec
    if previous is not None and not _mismatches(previous, rendered):
        return previous
    return _with_render(read.spec, rendered)
