"""The GitOps repositories the benchmarks push: small, real, and deployable as they are.

Each application deploys ``environments/bench/docker-compose.yml`` alone (``files:``), a
complete stack file: the naive agent and a bare ``docker stack deploy`` deploy that very
file, gitswarm renders it (labels added) — the same change for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import StringIO
from typing import Any

from ruamel.yaml import YAML

from bench.lab import image

ENV = "bench"
COMPOSE = f"environments/{ENV}/docker-compose.yml"

# The test suite's quick healthy service (tests/gitops.py): busybox httpd on :4000, a
# healthcheck every second, stops at once, a 1 s update monitor.
HEALTHCHECK = {
    "test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
    "interval": "1s",
    "timeout": "3s",
    "retries": 3,
}


def service(tag: str = "1", *, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "image": image(tag),
        "init": True,
        "stop_grace_period": "1s",
        "healthcheck": dict(HEALTHCHECK),
        "deploy": {"replicas": replicas, "update_config": {"monitor": "1s"}},
    }
    svc.update(extra)
    return svc


def idle_service(name: str, tag: str = "1") -> dict[str, Any]:
    """A service with no task (replicas: 0) but a spec of realistic size, for the no-op
    benchmark: 500 of them fit on a 2-core machine."""
    return {
        "image": image(tag),
        "init": True,
        "environment": {"SERVICE": name, "LOG_LEVEL": "info"},
        "healthcheck": dict(HEALTHCHECK),
        "stop_grace_period": "1s",
        "deploy": {
            "replicas": 0,
            "labels": {"com.example.team": "bench"},
            "resources": {"limits": {"cpus": "0.10", "memory": "32M"}},
            "update_config": {"monitor": "1s"},
        },
    }


def dump(data: Any) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def compose(services: Mapping[str, Any]) -> str:
    return dump({"services": dict(services)})


def settings(
    *, application: Mapping[str, Any] | None = None, sync: Mapping[str, Any] | None = None
) -> str:
    data: dict[str, Any] = {
        "project": "bench",
        "targets": {"local": {}},
        "environments": {
            ENV: {
                "target": "local",
                "sync": {
                    "prune": True,
                    "self_heal": True,
                    "auto_rollback": True,
                    "health_timeout": 120,
                    **(sync or {}),
                },
            }
        },
    }
    if application is not None:
        data["application"] = dict(application)
    return dump(data)


def one_stack(stack: str, services: Mapping[str, Any]) -> dict[str, str]:
    """A repository with one application deploying ``services`` as stack ``stack``."""
    return {
        "gitswarm.yml": settings(application={"name": "app", "stack": stack, "files": [COMPOSE]}),
        COMPOSE: compose(services),
        f"environments/{ENV}/.env": "# no variables\n",
    }


def stack_file(name: str, per_stack: int, *, tag: str = "1") -> tuple[str, str]:
    """Path and text of application ``name``'s compose file; ``svc0`` runs busybox:``tag``."""
    services = {
        f"svc{j}": idle_service(f"{name}-{j}", tag if j == 0 else "1") for j in range(per_stack)
    }
    return f"stacks/{name}.yml", compose(services)


# A custom policy of the usual kind (`--rego`): every sync evaluates it, in gitswarm's
# Rego sandbox. It passes: the bench images come from the lab's registry.
POLICY = """\
package bench.policy

import rego.v1

deny contains {"msg": msg, "service": name} if {
\tsome name, svc in input.services
\tnot startswith(svc.image, "127.0.0.1:5000/")
\tmsg := sprintf("image %s is not from the lab registry", [svc.image])
}

deny contains {"msg": sprintf("%s has no memory limit", [name]), "service": name} if {
\tsome name, svc in input.services
\tnot svc.deploy.resources.limits.memory
}

warn contains sprintf("%s deploys %d services", [input.stack, count(input.services)]) if {
\tcount(input.services) > 20
}
"""


def many_stacks(count: int, per_stack: int, *, rego: bool = False) -> dict[str, str]:
    """``count`` applications, one stack each (``n001`` ...), ``per_stack`` idle services
    each, every application with a compose file of its own; with ``rego``, a policy in
    policies/."""
    files = {"gitswarm.yml": settings(), f"environments/{ENV}/.env": "# no variables\n"}
    if rego:
        files["policies/bench.rego"] = POLICY
    for i in range(1, count + 1):
        name = f"n{i:03d}"
        path, text = stack_file(name, per_stack)
        files[f"applications/{name}.yml"] = dump({"stack": name, "files": [path]})
        files[path] = text
    return files
