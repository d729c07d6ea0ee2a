"""Reading the real swarm in integration tests."""

from __future__ import annotations

import docker


def versions(client: docker.DockerClient, stack: str) -> dict[str, int]:
    services = client.api.services(filters={"label": f"com.docker.stack.namespace={stack}"})
    return {s["Spec"]["Name"]: s["Version"]["Index"] for s in services}


def running_tasks(client: docker.DockerClient, service: str) -> set[str]:
    tasks = client.api.tasks(filters={"service": service, "desired-state": "running"})
    return {t["ID"] for t in tasks}


def image_of(client: docker.DockerClient, service: str) -> str:
    spec = client.api.inspect_service(service)["Spec"]
    image: str = spec["TaskTemplate"]["ContainerSpec"]["Image"]
    return image


def object_names(client: docker.DockerClient, stack: str, kind: str) -> set[str]:
    flt = {"label": f"com.docker.stack.namespace={stack}"}
    listing = (
        client.api.configs(filters=flt) if kind == "config" else client.api.secrets(filters=flt)
    )
    return {o["Spec"]["Name"] for o in listing}
