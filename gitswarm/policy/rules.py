"""The built-in rules: one function per rule, each reading the rendered stack.

They run on ``DesiredStack.compose``, the document after the base+overlay merge and
interpolation, so an overlay cannot hide a violation from them. Each yields a
:class:`Finding` per thing wrong (a service may have several); gate.py turns findings
into results with the rule's mode, exemptions and file:line. ``deployment_windows`` is
not here: it depends on the clock, not on the stack (see windows.py).

What "privileged-like" and "pinned" mean is spelled out in each rule's docstring; the
parameters live in settings.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from gitswarm.model.position import Path
from gitswarm.model.stack import DesiredStack
from gitswarm.policy import compose as c
from gitswarm.policy.settings import NAMED_KINDS, PolicySettings, normalise_capability


@dataclass(frozen=True, slots=True)
class Finding:
    service: str | None
    detail: str  # names the service (or object); gate.py adds the rule name
    path: Path  # into the compose document, for the source location


Rule = Callable[[DesiredStack, PolicySettings], Iterator[Finding]]


def _svc(name: str) -> str:
    return f"service {name!r}"


def no_root_containers(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """``user`` is set, and its user part is neither ``root`` nor UID 0. Without ``user``
    the image's default user runs the process, which is root for most images."""
    for name, spec in c.services(stack.compose):
        user = spec.get("user")
        path: Path = ("services", name, "user")
        if user is None or not str(user).strip():
            yield Finding(
                name,
                f"{_svc(name)} sets no user, so the image's default user (often root) runs "
                'it; set user: to a non-root UID, e.g. "1000:1000"',
                path,
            )
            continue
        uid = str(user).split(":", 1)[0].strip()
        if uid == "root" or (uid.isdigit() and int(uid) == 0):
            yield Finding(
                name, f"{_svc(name)} runs as root (user: {user}); use a non-root UID", path
            )


def required_resource_limits(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """``deploy.resources.limits`` sets ``cpus`` and ``memory`` (non-zero); with
    ``reservations: true`` also ``deploy.resources.reservations``."""
    kinds = ["limits"] + (["reservations"] if settings.resources.reservations else [])
    for name, spec in c.services(stack.compose):
        for kind in kinds:
            values = c.get(spec, "deploy", "resources", kind)
            values = values if isinstance(values, Mapping) else {}
            missing = [k for k in ("cpus", "memory") if not c.positive(values.get(k))]
            if missing:
                what = " and ".join(missing)
                yield Finding(
                    name,
                    f"{_svc(name)} sets no {what} in deploy.resources.{kind}"
                    + (
                        "; one runaway task could starve every other service on its node"
                        if kind == "limits"
                        else "; the scheduler cannot place it by what it needs"
                    ),
                    ("services", name, "deploy", "resources", kind),
                )


def no_privileged_containers(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """Nothing that gives a container the host: ``privileged``, dangerous ``cap_add``,
    bind mounts of the host root or of sensitive host paths (docker.sock, /proc, ...,
    including a folder that contains one), host network (``network_mode: host`` or, as
    Swarm does it, an external network named ``host``), host pid/ipc/uts/userns
    namespaces, ``devices``, and ``security_opt`` that switches off seccomp, AppArmor or
    SELinux confinement. (``docker stack deploy`` ignores some of these keys today; a
    stack that asks for them is still refused, since it states the wrong intent.)"""
    dangerous = settings.privileged.capabilities
    for name, spec in c.services(stack.compose):
        base: Path = ("services", name)
        if c.truthy(spec.get("privileged")):
            yield Finding(name, f"{_svc(name)} is privileged", (*base, "privileged"))
        caps = spec.get("cap_add") or []
        if isinstance(caps, list):
            bad = sorted({normalise_capability(str(x)) for x in caps} & dangerous)
            if bad:
                yield Finding(
                    name,
                    f"{_svc(name)} adds dangerous capabilities {', '.join(bad)}",
                    (*base, "cap_add"),
                )
        for mount in c.bind_mounts(spec):
            where: Path = (*base, "volumes", mount.index)
            if mount.source == "/":
                yield Finding(name, f"{_svc(name)} bind-mounts the host root /", where)
                continue
            for sensitive in settings.privileged.host_paths:
                if c.exposes(mount.source, sensitive):
                    yield Finding(
                        name,
                        f"{_svc(name)} bind-mounts host path {mount.source}, which exposes "
                        f"{sensitive}",
                        where,
                    )
                    break
        if spec.get("network_mode") == "host":
            yield Finding(
                name, f"{_svc(name)} uses the host network (network_mode: host)", (*base,)
            )
        for net in c.service_networks(spec):
            if c.network_name(stack.compose, net) == "host":
                yield Finding(
                    name,
                    f"{_svc(name)} joins the host network (network {net!r} is Docker's 'host')",
                    (*base, "networks"),
                )
        for key in ("pid", "ipc", "uts", "userns_mode"):
            if spec.get(key) == "host":
                yield Finding(
                    name, f"{_svc(name)} shares the host's namespace ({key}: host)", (*base, key)
                )
        if spec.get("devices"):
            yield Finding(name, f"{_svc(name)} maps host devices", (*base, "devices"))
        for opt in spec.get("security_opt") or []:
            text = str(opt).replace("=", ":").lower()
            if text in ("seccomp:unconfined", "apparmor:unconfined", "label:disable"):
                yield Finding(
                    name,
                    f"{_svc(name)} switches off confinement (security_opt: {opt})",
                    (*base, "security_opt"),
                )


def required_security_contexts(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """``read_only: true`` (a read-only root filesystem) and ``security_opt`` containing
    ``no-new-privileges`` (or ``no-new-privileges:true``); each can be switched off."""
    want = settings.security
    for name, spec in c.services(stack.compose):
        if want.read_only and not c.truthy(spec.get("read_only")):
            yield Finding(
                name,
                f"{_svc(name)} has a writable root filesystem; set read_only: true "
                "(and mount a tmpfs or volume where it must write)",
                ("services", name, "read_only"),
            )
        if want.no_new_privileges and not _no_new_privileges(spec.get("security_opt")):
            yield Finding(
                name,
                f"{_svc(name)} lets processes gain privileges; add "
                "security_opt: [no-new-privileges:true]",
                ("services", name, "security_opt"),
            )


def _no_new_privileges(options: object) -> bool:
    if not isinstance(options, list):
        return False
    for opt in options:
        text = str(opt).strip().lower().replace("=", ":")
        if text in ("no-new-privileges", "no-new-privileges:true"):
            return True
    return False


def required_labels(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """Every required label is present and non-empty -- on the service
    (``deploy.labels``, the default), the container (``labels``) or either -- and matches
    its pattern where one is given."""
    want = settings.labels
    for name, spec in c.services(stack.compose):
        service_labels = c.labels(c.get(spec, "deploy", "labels"))
        container_labels = c.labels(spec.get("labels"))
        path: tuple[str, ...]
        if want.where == "service":
            have, where, path = service_labels, "deploy.labels", ("deploy", "labels")
        elif want.where == "container":
            have, where, path = container_labels, "labels", ("labels",)
        else:
            have, where, path = {**container_labels, **service_labels}, "labels", ()
        for label, pattern in want.labels.items():
            value = have.get(label, "")
            if not value:
                yield Finding(
                    name,
                    f"{_svc(name)} has no label {label} in {where}",
                    ("services", name, *path),
                )
            elif pattern is not None and not pattern.fullmatch(value):
                yield Finding(
                    name,
                    f"{_svc(name)} label {label}={value!r} does not match {pattern.pattern!r}",
                    ("services", name, *path, label),
                )


# What swarmkit accepts as a service name (controlapi isValidDNSName), at most 63 chars.
_SWARM_NAME = re.compile(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")


def naming_conventions(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """Names match the configured patterns (services: lower-case kebab-case by default;
    networks, volumes, configs, secrets and the stack only when configured). Also checks
    what Swarm itself will refuse: a service name ``<stack>_<service>`` longer than 63
    characters or with characters outside ``[a-zA-Z0-9_-]``."""
    patterns = settings.naming.patterns
    stack_pattern = patterns.get("stack")
    if stack_pattern is not None and not stack_pattern.fullmatch(stack.stack):
        yield Finding(
            None,
            f"stack name {stack.stack!r} does not match {stack_pattern.pattern!r}",
            (),
        )
    for name, _spec in c.services(stack.compose):
        full = stack.service_name(name)
        if len(full) > 63 or not _SWARM_NAME.match(full):
            yield Finding(
                name,
                f"{_svc(name)}: Swarm refuses the service name {full!r} (at most 63 "
                "characters of a-z, A-Z, 0-9, '-' and '_', starting and ending alphanumeric)",
                ("services", name),
            )
    for kind in NAMED_KINDS:
        pattern = patterns.get(kind)
        if pattern is None:
            continue
        section = stack.compose.get(kind) or {}
        for key in section if isinstance(section, Mapping) else ():
            if not pattern.fullmatch(str(key)):
                singular = kind[:-1]
                yield Finding(
                    str(key) if kind == "services" else None,
                    f"{singular} {str(key)!r} does not match {pattern.pattern!r}",
                    (kind, str(key)),
                )


_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)*([-+_.][0-9A-Za-z][0-9A-Za-z._+-]*)?$")


def no_latest_tag(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """Images are pinned. ``require: tag`` (default): an explicit tag that is not a
    floating one (``latest``, ``stable``, ``main``, ...); ``version``: a tag that is a
    version with at least major.minor (``1.4``, ``v2.0.1-alpine``; ``1`` alone floats);
    ``digest``: ``@sha256:...``. A digest satisfies every level."""
    want = settings.images
    for name, spec in c.services(stack.compose):
        path: Path = ("services", name, "image")
        image = spec.get("image")
        if not isinstance(image, str) or not image.strip():
            yield Finding(name, f"{_svc(name)} has no image", path)
            continue
        ref = c.parse_image(image)
        if ref.digest:
            continue
        if want.require == "digest":
            yield Finding(
                name, f"{_svc(name)} image {image} is not pinned by digest (@sha256:...)", path
            )
        elif ref.tag is None:
            yield Finding(
                name, f"{_svc(name)} image {image} has no tag, so Docker pulls :latest", path
            )
        elif ref.tag.lower() in want.floating_tags:
            yield Finding(
                name,
                f"{_svc(name)} image {image} uses the floating tag :{ref.tag}; pin a version",
                path,
            )
        elif want.require == "version" and not _VERSION.match(ref.tag):
            yield Finding(
                name,
                f"{_svc(name)} image {image}: tag :{ref.tag} is not a version such as 1.4.2",
                path,
            )


def allowed_registries(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """Every image comes from an allowed registry: an entry is a registry host
    (``ghcr.io``, ``127.0.0.1:5000``, ``docker.io`` for Docker Hub) or a repository prefix
    (``ghcr.io/acme``, ``docker.io/library`` for official images only)."""
    allowed = settings.registries.registries
    for name, spec in c.services(stack.compose):
        image = spec.get("image")
        if not isinstance(image, str) or not image.strip():
            continue  # no_latest_tag reports a missing image
        ref = c.parse_image(image)
        if not any(
            ref.registry == entry or ref.name == entry or ref.name.startswith(entry + "/")
            for entry in allowed
        ):
            yield Finding(
                name,
                f"{_svc(name)} image {image} is from {ref.registry}, which is not an allowed "
                f"registry ({', '.join(allowed)})",
                ("services", name, "image"),
            )


def required_healthcheck(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """A ``healthcheck`` with a ``test``, not disabled (jobs are exempt). gitswarm waits
    for healthy tasks; an image's own HEALTHCHECK is invisible to a check of Git, so the
    stack must state it."""
    for name, spec in c.services(stack.compose):
        if c.is_job(spec):
            continue
        check = spec.get("healthcheck")
        path: Path = ("services", name, "healthcheck")
        if not isinstance(check, Mapping):
            yield Finding(name, f"{_svc(name)} declares no healthcheck", path)
        elif c.truthy(check.get("disable")) or check.get("test") in (["NONE"], "NONE"):
            yield Finding(name, f"{_svc(name)} disables its healthcheck", path)
        elif not check.get("test"):
            yield Finding(
                name,
                f"{_svc(name)} healthcheck has no test (the image's HEALTHCHECK, if any, "
                "cannot be checked from Git)",
                path,
            )


def update_config_rollback(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """``deploy.update_config.failure_action: rollback``, so Swarm itself returns to the
    previous spec when an update fails (its default is ``pause``). Jobs are exempt."""
    for name, spec in c.services(stack.compose):
        if c.is_job(spec):
            continue
        action = c.get(spec, "deploy", "update_config", "failure_action")
        if action != "rollback":
            shown = action if action is not None else "unset, so Swarm's default pause"
            yield Finding(
                name,
                f"{_svc(name)} does not roll back a failed update "
                f"(deploy.update_config.failure_action: {shown})",
                ("services", name, "deploy", "update_config", "failure_action"),
            )


def host_ports_stop_first(stack: DesiredStack, settings: PolicySettings) -> Iterator[Finding]:
    """A service that publishes a port in ``host`` mode updates (and rolls back)
    ``stop-first``: a host-mode port is held by one task per node, so with
    ``start-first`` the new task cannot bind it while the old one still runs on the same
    node and the update never finishes. Allowed when
    ``deploy.placement.max_replicas_per_node`` lets Swarm put the new task elsewhere."""
    for name, spec in c.services(stack.compose):
        ports = spec.get("ports") or []
        host = [p for p in ports if isinstance(p, Mapping) and p.get("mode") == "host"]
        if not host:
            continue
        if c.get(spec, "deploy", "placement", "max_replicas_per_node"):
            continue
        for section in ("update_config", "rollback_config"):
            if c.get(spec, "deploy", section, "order") == "start-first":
                port = host[0].get("published", host[0].get("target"))
                yield Finding(
                    name,
                    f"{_svc(name)} publishes port {port} in host mode but its {section} "
                    "order is start-first: the new task cannot bind the port while the old "
                    "one holds it on the same node, so the update never finishes; use "
                    "order: stop-first",
                    ("services", name, "deploy", section, "order"),
                )


BUILTIN: Mapping[str, Rule] = {
    "no_root_containers": no_root_containers,
    "required_resource_limits": required_resource_limits,
    "no_privileged_containers": no_privileged_containers,
    "required_security_contexts": required_security_contexts,
    "required_labels": required_labels,
    "naming_conventions": naming_conventions,
    "no_latest_tag": no_latest_tag,
    "allowed_registries": allowed_registries,
    "required_healthcheck": required_healthcheck,
    "update_config_rollback": update_config_rollback,
    "host_ports_stop_first": host_ports_stop_first,
}


def run(name: str, stack: DesiredStack, settings: PolicySettings) -> list[Finding]:
    return list(BUILTIN[name](stack, settings))
