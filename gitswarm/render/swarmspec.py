"""What ``docker stack deploy`` would refuse once the file has passed the schema (pure).

The compose schema leaves many values open that the Docker CLI's conversion to Swarm
specs (docker/cli ``cli/compose/convert``), the daemon's conversion (moby
``daemon/cluster/convert``) or Swarm's own checks (swarmkit ``manager/controlapi``,
``manager/constraint``) then refuse: ``deploy.mode: bogus`` ("Unknown mode: bogus"), a
restart condition of ``sometimes``, a 1 MiB memory limit, a constraint without ``==``.
Refused at deploy time, such a commit fails after the agent has started applying it;
``validate`` refuses it first, with the file and line. A few values Swarm does not refuse
but silently turns into something else (a port ``protocol: tpc`` becomes tcp, a port
``mode: hots`` becomes ingress, a constraint on an unknown key matches no node) are
refused here too. What depends on the cluster (a port another service publishes, a
change of service mode) only the engine can tell: swarm/client.py classifies that
refusal as ``DeployRejected``.

Called by render/stack.py on the merged, typed services (render/composetypes.py).
Each rule is checked against the engine in tests/integration/test_deploy_rejected.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

from gitswarm.errors import Problem
from gitswarm.render.compose import Merged
from gitswarm.render.golang import format_duration

RULE = "swarm-spec"

MODES = ("replicated", "global", "replicated-job", "global-job")
RESTART_CONDITIONS = ("none", "on-failure", "any")
FAILURE_ACTIONS = ("pause", "continue", "rollback")
UPDATE_ORDERS = ("stop-first", "start-first")
ENDPOINT_MODES = ("vip", "dnsrr")
PORT_PROTOCOLS = ("tcp", "udp", "sctp")
PORT_MODES = ("ingress", "host")
MOUNT_TYPES = ("volume", "bind", "tmpfs", "npipe", "cluster")
LEGACY_RESTART = ("no", "always", "unless-stopped", "on-failure")
MIN_NANO_CPUS = 1_000_000  # 0.001 CPU
MIN_MEMORY = 4 * 1024 * 1024
MIN_HEALTH_DURATION = 1_000_000  # 1 ms
MAX_PORT = 65535

# swarmkit manager/constraint: key and value patterns, and the keys a node can match.
_CONSTRAINT_KEY = re.compile(r"[a-z_][a-z0-9\-_.]+", re.IGNORECASE)
_CONSTRAINT_VALUE = re.compile(r"[a-z0-9:\-_\t\n\f\r .*()?+\[\]\\^$|/]+", re.IGNORECASE)
_CONSTRAINT_KEYS = (
    "node.id",
    "node.hostname",
    "node.ip",
    "node.role",
    "node.platform.os",
    "node.platform.arch",
)
_LABEL_PREFIXES = ("node.labels.", "engine.labels.")
# The options each kind of mount refuses (cli/compose/convert/volume.go).
_MOUNT_OPTIONS_REFUSED = {
    "volume": ("tmpfs", "bind", "cluster"),
    "bind": ("volume", "tmpfs", "cluster"),
    "tmpfs": ("bind", "volume", "cluster"),
    "npipe": ("volume", "tmpfs"),
    "cluster": ("tmpfs", "bind", "volume"),
}

Path = tuple[str | int, ...]


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1]


def parse_cpus(text: str) -> int:
    """``opts.ParseCPUs``: nano-CPUs of a rational number ("0.5", "1/2", "2"). ValueError
    with the CLI's words when it is not one, or finer than a nano-CPU."""
    try:
        cpus = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {text} as a rational number") from None
    nano = cpus * 1_000_000_000
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


def constraint_problem(expr: str) -> str | None:
    """What swarmkit (or the scheduler, for a key no node has) says of one constraint."""
    for op in ("==", "!="):
        if op not in expr:
            continue
        key, _, value = expr.partition(op)
        key, value = key.strip(), value.strip()
        if not _CONSTRAINT_KEY.fullmatch(key):
            return f"key {key!r} is invalid (letters, digits, '-', '_' and '.')"
        if not _CONSTRAINT_VALUE.fullmatch(value):
            return f"value {value!r} is invalid"
        known = key.lower() in _CONSTRAINT_KEYS or any(
            key.lower().startswith(p) and len(key) > len(p) for p in _LABEL_PREFIXES
        )
        if not known:
            return (
                f"no node has the key {key!r}, so no task would ever be scheduled; use "
                f"{', '.join(_CONSTRAINT_KEYS)}, node.labels.<name> or engine.labels.<name>"
            )
        return None
    return "has no == or != (e.g. 'node.role == manager')"


def _legacy_restart_problem(policy: str) -> str | None:
    """``opts.ParseRestartPolicy`` of CLI 28 (read from ``restart:`` when there is no
    ``deploy.restart_policy``). A negative count is taken there and becomes 2^64 - 1."""
    name, colon, count = policy.partition(":")
    if name not in LEGACY_RESTART:
        return f"restart {policy!r} is unknown; use {_one_of(LEGACY_RESTART)}[:N]"
    if colon and not count.isdigit():
        return f"restart {policy!r}: the retry count must be a whole number"
    return None


class _Checker:
    def __init__(self, merged: Merged, name: str, service: Mapping[str, Any]) -> None:
        self.merged = merged
        self.name = name
        self.service = service
        self.base: Path = ("services", name)
        self.problems: list[Problem] = []

    def add(self, path: Path, message: str) -> None:
        self.problems.append(
            self.merged.problem((*self.base, *path), f"service {self.name}: {message}", RULE)
        )

    def enum(
        self, path: Path, value: str, allowed: tuple[str, ...], what: str, *, fold: bool = False
    ) -> None:
        """``value`` must be one of ``allowed`` (in any case with ``fold``, as the CLI
        lowercases it first)."""
        if value and (value.lower() if fold else value) not in allowed:
            dotted = ".".join(str(p) for p in path)
            self.add(path, f"{dotted} {value!r} is not {what}; use {_one_of(allowed)}")

    def not_negative(self, path: Path, nanos: int | None) -> None:
        if nanos is not None and nanos < 0:
            dotted = ".".join(str(p) for p in path)
            self.add(path, f"{dotted} is negative ({format_duration(nanos)}); Swarm refuses that")

    # --- the rules ------------------------------------------------------------------

    def deploy(self) -> None:
        deploy = self.service.get("deploy") or {}
        mode = deploy.get("mode") or ""
        if mode and mode not in MODES:
            self.add(
                ("deploy", "mode"),
                f"deploy.mode {mode!r} is not a Swarm service mode; use {_one_of(MODES)}",
            )
        if mode in ("global", "global-job") and deploy.get("replicas") is not None:
            self.add(
                ("deploy", "replicas"),
                f"deploy.replicas cannot be used with deploy.mode {mode!r} (one task per "
                "node); remove replicas, or use mode replicated",
            )
        self.enum(
            ("deploy", "endpoint_mode"),
            deploy.get("endpoint_mode") or "",
            ENDPOINT_MODES,
            "an endpoint mode",
            fold=True,
        )
        for key in ("update_config", "rollback_config"):
            config = deploy.get(key)
            if not config:
                continue
            self.enum(
                ("deploy", key, "failure_action"),
                config.get("failure_action") or "",
                FAILURE_ACTIONS,
                "a failure action",
            )
            self.enum(
                ("deploy", key, "order"), config.get("order") or "", UPDATE_ORDERS, "an order"
            )
        update = deploy.get("update_config")
        if update:  # swarmkit checks these of update_config only
            self.not_negative(("deploy", "update_config", "delay"), update.get("delay"))
            self.not_negative(("deploy", "update_config", "monitor"), update.get("monitor"))
            ratio = update.get("max_failure_ratio") or 0
            if not 0 <= ratio <= 1:
                self.add(
                    ("deploy", "update_config", "max_failure_ratio"),
                    f"deploy.update_config.max_failure_ratio {ratio:g} is not between 0 and 1",
                )
        restart = deploy.get("restart_policy")
        if restart:
            self.enum(
                ("deploy", "restart_policy", "condition"),
                restart.get("condition") or "",
                RESTART_CONDITIONS,
                "a restart condition",
            )
            for key in ("delay", "window"):
                self.not_negative(("deploy", "restart_policy", key), restart.get(key))
        else:
            legacy = self.service.get("restart") or ""
            why = _legacy_restart_problem(legacy) if legacy else None
            if why:
                self.add(("restart",), why)
        self.resources(deploy.get("resources") or {})
        placement = deploy.get("placement") or {}
        for index, expr in enumerate(placement.get("constraints") or []):
            why = constraint_problem(expr)
            if why:
                self.add(
                    ("deploy", "placement", "constraints", index),
                    f"deploy.placement.constraints[{index}] {expr!r}: {why}",
                )

    def resources(self, resources: Mapping[str, Any]) -> None:
        for kind in ("limits", "reservations"):
            section = resources.get(kind)
            if not section:
                continue
            where = ("deploy", "resources", kind)
            cpus = section.get("cpus") or ""
            if cpus:
                try:
                    nano = parse_cpus(cpus)
                except ValueError as exc:
                    self.add((*where, "cpus"), f"deploy.resources.{kind}.cpus {cpus!r}: {exc}")
                else:
                    if nano != 0 and nano < MIN_NANO_CPUS:
                        self.add(
                            (*where, "cpus"),
                            f"deploy.resources.{kind}.cpus {cpus!r} is below Swarm's minimum "
                            "of 0.001 (or leave it unset)",
                        )
            memory = section.get("memory") or 0
            if memory != 0 and memory < MIN_MEMORY:
                self.add(
                    (*where, "memory"),
                    f"deploy.resources.{kind}.memory is {memory} bytes, below Swarm's minimum "
                    "of 4 MiB (or leave it unset)",
                )

    def ports(self) -> None:
        deploy = self.service.get("deploy") or {}
        dnsrr = (deploy.get("endpoint_mode") or "").lower() == "dnsrr"
        seen: dict[tuple[int, str], int] = {}
        for index, port in enumerate(self.service.get("ports") or []):
            where: Path = ("ports", index)
            protocol = (port.get("protocol") or "").lower()
            mode = (port.get("mode") or "").lower()
            if protocol and protocol not in PORT_PROTOCOLS:
                self.add(
                    (*where, "protocol"),
                    f"ports[{index}]: protocol {port['protocol']!r} is not "
                    f"{_one_of(PORT_PROTOCOLS)} (Swarm would silently use tcp)",
                )
            if mode and mode not in PORT_MODES:
                self.add(
                    (*where, "mode"),
                    f"ports[{index}]: mode {port['mode']!r} is not {_one_of(PORT_MODES)} "
                    "(Swarm would silently use ingress)",
                )
            for key in ("published", "target"):
                number = port.get(key) or 0
                if number > MAX_PORT:
                    self.add(
                        (*where, key),
                        f"ports[{index}]: {key} port {number} is out of range (at most {MAX_PORT})",
                    )
            if dnsrr and mode in ("", "ingress"):
                self.add(
                    where,
                    f"ports[{index}] is published in ingress mode, which Swarm refuses with "
                    "deploy.endpoint_mode dnsrr; publish it with mode: host",
                )
            published = port.get("published") or 0
            if published:
                bound = (published, protocol or "tcp")
                if bound in seen:
                    self.add(
                        where,
                        f"ports[{index}]: port {published}/{bound[1]} is published twice (also "
                        f"ports[{seen[bound]}])",
                    )
                else:
                    seen[bound] = index

    def mounts(self) -> None:
        declared = self.merged.sections.get("volumes") or {}
        targets: dict[str, int] = {}
        for index, mount in enumerate(self.service.get("volumes") or []):
            where: Path = ("volumes", index)
            kind = mount.get("type") or "volume"
            source = mount.get("source") or ""
            if kind not in MOUNT_TYPES:
                self.add(
                    (*where, "type"),
                    f"volumes[{index}]: type {kind!r} is not {_one_of(MOUNT_TYPES)}",
                )
                continue
            for option in _MOUNT_OPTIONS_REFUSED[kind]:
                if mount.get(option) is not None:
                    self.add(
                        (*where, option),
                        f"volumes[{index}]: {option} options do not apply to a {kind} mount",
                    )
            if kind == "tmpfs" and source:
                self.add((*where, "source"), f"volumes[{index}]: a tmpfs mount takes no source")
            if kind in ("npipe", "cluster") and not source:
                self.add(where, f"volumes[{index}]: a {kind} mount needs a source")
            if (
                kind == "cluster"
                and source
                and not source.startswith("group:")
                and source not in declared
            ):
                self.add(
                    (*where, "source"),
                    f"volumes[{index}]: cluster volume {source!r} is not declared under the "
                    "top-level volumes:",
                )
            target = mount.get("target") or ""
            if target in targets:
                self.add(
                    (*where, "target"),
                    f"volumes[{index}]: {target!r} is mounted twice (also volumes"
                    f"[{targets[target]}]); Swarm refuses duplicate mount points",
                )
            elif target:
                targets[target] = index

    def healthcheck(self) -> None:
        check = self.service.get("healthcheck")
        if not check:
            return
        if check.get("disable") and check.get("test"):
            self.add(("healthcheck",), "healthcheck sets both test and disable; keep one")
        for key in ("interval", "timeout", "start_period"):
            nanos = check.get(key)
            if nanos is not None and nanos != 0 and nanos < MIN_HEALTH_DURATION:
                self.add(
                    ("healthcheck", key),
                    f"healthcheck.{key} {format_duration(nanos)} is below Swarm's minimum of "
                    "1ms (0 means Docker's default)",
                )

    def credential_spec(self) -> None:
        spec = self.service.get("credential_spec") or {}
        given = [k for k in ("config", "file", "registry") if spec.get(k)]
        if len(given) > 1:
            self.add(
                ("credential_spec",),
                f"credential_spec sets {' and '.join(given)}; use only one of them",
            )
        config = spec.get("config") or ""
        if config and config not in (self.merged.sections.get("configs") or {}):
            self.add(
                ("credential_spec", "config"),
                f"credential_spec.config {config!r} is not declared under the top-level configs:",
            )


def swarm_spec_problems(merged: Merged) -> Iterator[Problem]:
    """Every value of every service that ``docker stack deploy`` would refuse (or
    silently change), located at its file and line."""
    for name in sorted(merged.services):
        checker = _Checker(merged, name, merged.services[name])
        checker.deploy()
        checker.ports()
        checker.mounts()
        checker.healthcheck()
        checker.credential_spec()
        yield from checker.problems
