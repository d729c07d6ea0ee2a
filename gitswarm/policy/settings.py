"""The ``policies:`` block of an environment in gitswarm.yml, parsed and validated.

repo/ keeps ``environments.<env>.policies`` as the raw mapping (Environment.policies);
this module turns it into :class:`PolicySettings`, or raises one ConfigError listing every
mistake (unknown rule, bad mode, exemption without a reason, bad parameter), each with
gitswarm.yml's line and column (from Environment.positions) and the rule it concerns.
gate.py parses on every evaluation; `gitswarm validate` may call :func:`parse_settings`
early.

Shape -- every rule has a mode, ``enforce`` (blocks the deploy), ``warn`` (reported and
recorded, never blocks) or ``off``; short form ``rule: MODE``, long form a mapping with
``mode``, per-service exemptions (each needs a reason) and the rule's parameters::

    environments:
      production:
        policies:
          default: warn                    # mode of every built-in rule not listed here
          no_root_containers: enforce
          no_privileged_containers:
            mode: enforce
            exempt:
              node-exporter: "reads host /proc and /sys for metrics (SEC-142)"
            capabilities: [ALL, SYS_ADMIN, NET_ADMIN]    # dangerous cap_add (default: a list)
            host_paths: [/var/run/docker.sock, /proc]    # besides host "/" (default: a list)
          required_resource_limits: {mode: enforce, reservations: true}
          required_security_contexts: {mode: enforce, read_only: true, no_new_privileges: true}
          required_labels:
            mode: enforce
            labels: [com.example.team]     # or {com.example.team: "^(web|data)$"}: value regex
            where: service                 # deploy.labels (service) | labels (container) | either
          naming_conventions:
            mode: warn
            services: "^[a-z][a-z0-9]*(-[a-z0-9]+)*$"    # the default; also networks,
            #                              volumes, configs, secrets, stack (default: unchecked)
          no_latest_tag: {mode: enforce, require: version}   # tag | version | digest
          allowed_registries: {mode: enforce, registries: ["127.0.0.1:5000", ghcr.io/acme]}
          required_healthcheck: enforce
          update_config_rollback: enforce
          host_ports_stop_first: enforce   # host-mode ports need stop-first updates
          deployment_windows:
            mode: enforce
            timezone: Europe/Berlin        # for windows that name none (default UTC)
            allow: ["Mon-Thu 09:00-16:00", {schedule: "0 9 * * 5", duration: 3h}]
            deny:
              - {name: year-end freeze, from: 2025-12-20, until: 2026-01-06}
          certificate_expiry: {mode: warn, days: 30}   # X.509 in configs/secrets
          secret_max_age: {mode: warn, max_age: 90d}   # a value unchanged for longer
          rego:                            # policies/*.rego
            mode: enforce                  # mode of their `deny` rules; `warn` rules warn
            params: {team_registry: "127.0.0.1:5000"}   # data.gitswarm.params in Rego

Defaults, for a rule not listed: the ``default`` mode (``warn`` unless set) -- except the
rules that mean nothing without parameters (``required_labels``, ``allowed_registries``,
``deployment_windows``), which are ``off`` until configured, and ``rego``, which is
``enforce``: a policy author who writes ``deny`` means deny. Exemptions name compose
services; an exemption for a service this stack does not have is harmless (one
environment may host several applications). Window syntax: see windows.py.

Why one file (over 450 lines): every rule's settings are parsed the same way, side by
side, so a new rule's parameters follow the others'.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from gitswarm.errors import ConfigError, Problem, collect
from gitswarm.model.config import Environment
from gitswarm.model.policy import Mode
from gitswarm.model.position import Path, nearest
from gitswarm.policy.cron import Cron, CronWindow
from gitswarm.policy.windows import (
    DateWindow,
    Window,
    WindowSettings,
    WindowSyntaxError,
    load_zone,
    parse_duration,
    parse_instant,
    parse_weekly,
)

CONFIG_FILE = "gitswarm.yml"
MODES: tuple[Mode, ...] = ("enforce", "warn", "off")

RULES: tuple[str, ...] = (
    "no_root_containers",
    "required_resource_limits",
    "no_privileged_containers",
    "required_security_contexts",
    "required_labels",
    "naming_conventions",
    "no_latest_tag",
    "allowed_registries",
    "required_healthcheck",
    "update_config_rollback",
    "host_ports_stop_first",
    "deployment_windows",
    "certificate_expiry",
    "secret_max_age",
)
REGO = "rego"
# Rules that depend on the clock (and what the swarm knows), not on the stack alone:
# gate.py runs them beside the others.
CLOCK_RULES = ("deployment_windows", "certificate_expiry", "secret_max_age")
# Rules that check nothing until given parameters: off unless configured.
NEEDS_PARAMETERS = (
    "required_labels",
    "allowed_registries",
    "deployment_windows",
    "secret_max_age",
)

DEFAULT_DANGEROUS_CAPABILITIES = frozenset(
    {
        "ALL",
        "SYS_ADMIN",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_PTRACE",
        "SYS_BOOT",
        "SYS_TIME",
        "NET_ADMIN",
        "DAC_READ_SEARCH",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "BPF",
        "PERFMON",
        "SYSLOG",
    }
)
# Host paths a bind mount must not expose (the path itself, a parent or a child of it).
# The host root "/" is always forbidden.
DEFAULT_HOST_PATHS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd",
    "/run/containerd",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
)
DEFAULT_SERVICE_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
DEFAULT_FLOATING_TAGS = frozenset(
    {"latest", "stable", "edge", "main", "master", "develop", "dev", "nightly", "mainline"}
)
NAMED_KINDS = ("services", "networks", "volumes", "configs", "secrets")


# --- the parsed settings ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleSettings:
    name: str
    mode: Mode
    exempt: Mapping[str, str] = field(default_factory=dict)  # service -> reason
    configured: bool = False  # written in gitswarm.yml, not a default


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    reservations: bool = False


@dataclass(frozen=True, slots=True)
class Privileged:
    capabilities: frozenset[str] = DEFAULT_DANGEROUS_CAPABILITIES
    host_paths: tuple[str, ...] = DEFAULT_HOST_PATHS


@dataclass(frozen=True, slots=True)
class SecurityContexts:
    read_only: bool = True
    no_new_privileges: bool = True


LabelWhere = Literal["service", "container", "either"]


@dataclass(frozen=True, slots=True)
class RequiredLabels:
    labels: Mapping[str, re.Pattern[str] | None] = field(default_factory=dict)
    where: LabelWhere = "service"


@dataclass(frozen=True, slots=True)
class NamingConventions:
    patterns: Mapping[str, re.Pattern[str]] = field(
        default_factory=lambda: {"services": re.compile(DEFAULT_SERVICE_PATTERN)}
    )  # "services" | "networks" | ... | "stack" -> pattern the name must match


PinLevel = Literal["tag", "version", "digest"]


@dataclass(frozen=True, slots=True)
class ImagePinning:
    require: PinLevel = "tag"
    floating_tags: frozenset[str] = DEFAULT_FLOATING_TAGS


@dataclass(frozen=True, slots=True)
class AllowedRegistries:
    registries: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CertificateExpiry:
    days: int = 30  # report a certificate this many days before it expires


@dataclass(frozen=True, slots=True)
class SecretAge:
    max_age_days: int = 0  # a secret's value unchanged longer than this is reported


@dataclass(frozen=True, slots=True)
class RegoSettings:
    params: Mapping[str, Any] = field(default_factory=dict)  # data.gitswarm.params


@dataclass(frozen=True)
class PolicySettings:
    rules: Mapping[str, RuleSettings]  # every built-in rule and "rego", with its mode
    resources: ResourceLimits = field(default_factory=ResourceLimits)
    privileged: Privileged = field(default_factory=Privileged)
    security: SecurityContexts = field(default_factory=SecurityContexts)
    labels: RequiredLabels = field(default_factory=RequiredLabels)
    naming: NamingConventions = field(default_factory=NamingConventions)
    images: ImagePinning = field(default_factory=ImagePinning)
    registries: AllowedRegistries = field(default_factory=AllowedRegistries)
    windows: WindowSettings = field(default_factory=WindowSettings)
    rego: RegoSettings = field(default_factory=RegoSettings)
    certificates: CertificateExpiry = field(default_factory=CertificateExpiry)
    secret_age: SecretAge = field(default_factory=SecretAge)

    def rule(self, name: str) -> RuleSettings:
        return self.rules[name]

    def mode(self, name: str) -> Mode:
        return self.rules[name].mode

    @property
    def modes(self) -> dict[str, Mode]:
        return {name: rule.mode for name, rule in self.rules.items()}


def default_settings() -> PolicySettings:
    """What an environment without a ``policies:`` block gets."""
    return parse_settings({})


def settings_for(env: Environment) -> PolicySettings:
    prefix = ("policies",)
    positions = {path[1:]: where for path, where in env.positions.items() if path[:1] == prefix}
    return parse_settings(env.policies, env=env.name, file=env.source, positions=positions)


# --- parsing ---------------------------------------------------------------------------

RULE_SETTINGS = "policy-settings"  # the rule of a problem that belongs to no single rule


class _Parser:
    """Collects the problems of one ``policies:`` mapping, each at the line and column of
    the setting it is about (``positions``: path inside ``policies:`` -> where written,
    from repo/yamlsrc) and with the policy rule it concerns."""

    def __init__(
        self,
        env: str,
        file: str,
        positions: Mapping[Path, tuple[int, int]],
        prefix: str | None = None,
    ) -> None:
        self.prefix = prefix or (f"environments.{env}.policies" if env else "policies")
        self.file = file
        self.positions = positions
        self.problems: list[Problem] = []

    def locate(self, path: Sequence[str | int]) -> tuple[int, int] | None:
        return nearest(self.positions, path)

    def error(self, path: Sequence[str | int], message: str) -> None:
        where = ".".join([self.prefix, *(str(p) for p in path)])
        line, column = self.locate(path) or (None, None)
        rule = str(path[0]) if path and path[0] in (*RULES, REGO) else RULE_SETTINGS
        self.problems.append(
            Problem(f"{where}: {message}", file=self.file, line=line, column=column, rule=rule)
        )

    # -- small typed readers, each reporting its own mistakes ---------------------------

    def mode(self, value: object, path: Sequence[str | int]) -> Mode | None:
        if value is False:  # YAML 1.1 reads a bare `off` as false
            return "off"
        if isinstance(value, str) and value in MODES:
            return value
        self.error(path, f"mode must be enforce, warn or off, not {value!r}")
        return None

    def boolean(self, value: object, path: Sequence[str | int]) -> bool:
        if isinstance(value, bool):
            return value
        self.error(path, f"must be true or false, not {value!r}")
        return False

    def strings(self, value: object, path: Sequence[str | int]) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, Sequence) and all(isinstance(v, str) and v for v in value):
            return [str(v) for v in value]
        self.error(path, f"must be a list of non-empty strings, not {value!r}")
        return []

    def pattern(self, value: object, path: Sequence[str | int]) -> re.Pattern[str] | None:
        if not isinstance(value, str) or not value:
            self.error(path, f"must be a regular expression, not {value!r}")
            return None
        try:
            return re.compile(value)
        except re.error as exc:
            self.error(path, f"bad regular expression {value!r}: {exc}")
            return None

    def exemptions(self, value: object, path: Sequence[str | int]) -> dict[str, str]:
        if not isinstance(value, Mapping):
            self.error(path, 'exemptions name each service with its reason: exempt: {web: "why"}')
            return {}
        found: dict[str, str] = {}
        for service, reason in value.items():
            if not isinstance(reason, str) or not reason.strip():
                self.error(
                    [*path, str(service)],
                    "an exemption needs a reason (a non-empty string saying why)",
                )
                continue
            found[str(service)] = reason.strip()
        return found


_COMMON_KEYS = ("mode", "exempt")
_PARAMETERS: dict[str, tuple[str, ...]] = {
    "no_root_containers": (),
    "required_resource_limits": ("reservations",),
    "no_privileged_containers": ("capabilities", "host_paths"),
    "required_security_contexts": ("read_only", "no_new_privileges"),
    "required_labels": ("labels", "where"),
    "naming_conventions": (*NAMED_KINDS, "stack"),
    "no_latest_tag": ("require", "floating_tags"),
    "allowed_registries": ("registries",),
    "required_healthcheck": (),
    "update_config_rollback": (),
    "host_ports_stop_first": (),
    "deployment_windows": ("timezone", "allow", "deny"),
    "certificate_expiry": ("days",),
    "secret_max_age": ("max_age",),
    REGO: ("params",),
}


def parse_settings(
    raw: Mapping[str, Any] | None,
    *,
    env: str = "",
    file: str = CONFIG_FILE,
    positions: Mapping[Path, tuple[int, int]] | None = None,
    prefix: str | None = None,
) -> PolicySettings:
    """Validate one environment's ``policies:`` mapping. Raises ConfigError listing every
    problem at once; ``positions`` (paths inside ``policies:``) give each its line;
    ``prefix`` names the block in messages (default ``environments.<env>.policies``)."""
    p = _Parser(env, file, positions or {}, prefix)
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        p.error([], f"must be a mapping of rule names to modes, not {raw!r}")
        collect(p.problems, ConfigError, "invalid policy settings")
    default: Mode = "warn"
    if "default" in raw:
        default = p.mode(raw["default"], ["default"]) or "warn"

    rules: dict[str, RuleSettings] = {}
    params: dict[str, Mapping[str, Any]] = {}
    for key, value in raw.items():
        if key == "default":
            continue
        if key not in _PARAMETERS:
            close = difflib.get_close_matches(str(key), [*RULES, REGO, "default"], n=1)
            hint = f" -- did you mean {close[0]}?" if close else ""
            known = ", ".join((*RULES, REGO))
            p.error([str(key)], f"unknown policy rule{hint} (known: {known})")
            continue
        rule_default: Mode = "enforce" if key == REGO else default
        rules[key], params[key] = _parse_rule(p, key, value, rule_default)

    for name in (*RULES, REGO):
        if name not in rules:
            mode: Mode = "off" if name in NEEDS_PARAMETERS else default
            rules[name] = RuleSettings(name=name, mode="enforce" if name == REGO else mode)

    settings = PolicySettings(
        rules=rules,
        resources=_resources(p, params.get("required_resource_limits") or {}),
        privileged=_privileged(p, params.get("no_privileged_containers") or {}),
        security=_security(p, params.get("required_security_contexts") or {}),
        labels=_labels(p, params.get("required_labels") or {}, rules["required_labels"]),
        naming=_naming(p, params.get("naming_conventions") or {}),
        images=_images(p, params.get("no_latest_tag") or {}),
        registries=_registries(
            p, params.get("allowed_registries") or {}, rules["allowed_registries"]
        ),
        windows=_windows(p, params.get("deployment_windows") or {}, rules["deployment_windows"]),
        rego=_rego(p, params.get(REGO) or {}),
        certificates=_certificates(p, params.get("certificate_expiry") or {}),
        secret_age=_secret_age(p, params.get("secret_max_age") or {}, rules["secret_max_age"]),
    )
    collect(p.problems, ConfigError, "invalid policy settings")
    return settings


def _parse_rule(
    p: _Parser, name: str, value: object, default: Mode
) -> tuple[RuleSettings, Mapping[str, Any]]:
    if not isinstance(value, Mapping):
        mode = p.mode(value, [name]) or default
        return RuleSettings(name=name, mode=mode, configured=True), {}
    mode = default
    if "mode" in value:
        mode = p.mode(value["mode"], [name, "mode"]) or default
    exempt: dict[str, str] = {}
    if "exempt" in value:
        if name == "deployment_windows":
            p.error(
                [name, "exempt"],
                "deployment windows hold the whole stack; there are no per-service exemptions",
            )
        else:
            exempt = p.exemptions(value["exempt"], [name, "exempt"])
    allowed = (*_COMMON_KEYS, *_PARAMETERS[name])
    for key in value:
        if key not in allowed:
            choices = ", ".join(allowed)
            p.error([name, str(key)], f"unknown setting (known: {choices})")
    rule_params = {k: v for k, v in value.items() if k not in _COMMON_KEYS}
    return RuleSettings(name=name, mode=mode, exempt=exempt, configured=True), rule_params


def _resources(p: _Parser, params: Mapping[str, Any]) -> ResourceLimits:
    path = ["required_resource_limits", "reservations"]
    if "reservations" in params:
        return ResourceLimits(reservations=p.boolean(params["reservations"], path))
    return ResourceLimits()


def _privileged(p: _Parser, params: Mapping[str, Any]) -> Privileged:
    rule = "no_privileged_containers"
    caps = DEFAULT_DANGEROUS_CAPABILITIES
    if "capabilities" in params:
        found = p.strings(params["capabilities"], [rule, "capabilities"])
        caps = frozenset(normalise_capability(c) for c in found)
    paths: tuple[str, ...] = DEFAULT_HOST_PATHS
    if "host_paths" in params:
        found = p.strings(params["host_paths"], [rule, "host_paths"])
        for index, item in enumerate(found):
            if not item.startswith("/"):
                p.error([rule, "host_paths", index], f"{item!r} is not an absolute path")
        paths = tuple(found)
    return Privileged(capabilities=caps, host_paths=paths)


def normalise_capability(name: str) -> str:
    name = name.strip().upper()
    return name[4:] if name.startswith("CAP_") else name


def _security(p: _Parser, params: Mapping[str, Any]) -> SecurityContexts:
    rule = "required_security_contexts"
    values = {
        key: p.boolean(params[key], [rule, key])
        for key in ("read_only", "no_new_privileges")
        if key in params
    }
    return SecurityContexts(**values)


def _labels(p: _Parser, params: Mapping[str, Any], rule: RuleSettings) -> RequiredLabels:
    name = "required_labels"
    labels: dict[str, re.Pattern[str] | None] = {}
    raw = params.get("labels")
    if isinstance(raw, Mapping):
        for key, pattern in raw.items():
            labels[str(key)] = (
                None if pattern is None else p.pattern(pattern, [name, "labels", str(key)])
            )
    elif raw is not None:
        labels = dict.fromkeys(p.strings(raw, [name, "labels"]))
    if rule.mode != "off" and not labels:
        p.error([name], "needs the labels to require: {mode: enforce, labels: [com.example.team]}")
    where: LabelWhere = "service"
    if "where" in params:
        if params["where"] in ("service", "container", "either"):
            where = params["where"]
        else:
            p.error(
                [name, "where"],
                f"must be service, container or either, not {params['where']!r}",
            )
    return RequiredLabels(labels=labels, where=where)


def _naming(p: _Parser, params: Mapping[str, Any]) -> NamingConventions:
    patterns: dict[str, re.Pattern[str]] = {"services": re.compile(DEFAULT_SERVICE_PATTERN)}
    for kind in (*NAMED_KINDS, "stack"):
        if kind in params:
            compiled = p.pattern(params[kind], ["naming_conventions", kind])
            if compiled is not None:
                patterns[kind] = compiled
    return NamingConventions(patterns=patterns)


def _images(p: _Parser, params: Mapping[str, Any]) -> ImagePinning:
    require: PinLevel = "tag"
    if "require" in params:
        if params["require"] in ("tag", "version", "digest"):
            require = params["require"]
        else:
            p.error(
                ["no_latest_tag", "require"],
                f"must be tag, version or digest, not {params['require']!r}",
            )
    floating = DEFAULT_FLOATING_TAGS
    if "floating_tags" in params:
        floating = frozenset(
            t.lower()
            for t in p.strings(params["floating_tags"], ["no_latest_tag", "floating_tags"])
        )
    return ImagePinning(require=require, floating_tags=floating | {"latest"})


def _days(p: _Parser, value: object, path: Sequence[str | int]) -> int | None:
    """A number of days: 30, or "30d" / "30_days" (the seed's ``rotation: 30_days``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    elif isinstance(value, str) and (match := re.fullmatch(r"(\d+)\s*(d|days?|_days)?", value)):
        days = int(match.group(1))
    else:
        p.error(path, f"must be a number of days (30, 30d or 30_days), not {value!r}")
        return None
    if not 0 < days <= 3650:
        p.error(path, f"must be from 1 to 3650 days, not {days}")
        return None
    return days


def _certificates(p: _Parser, params: Mapping[str, Any]) -> CertificateExpiry:
    if "days" not in params:
        return CertificateExpiry()
    days = _days(p, params["days"], ["certificate_expiry", "days"])
    return CertificateExpiry(days=days) if days is not None else CertificateExpiry()


def _secret_age(p: _Parser, params: Mapping[str, Any], rule: RuleSettings) -> SecretAge:
    if "max_age" not in params:
        if rule.mode != "off":
            p.error(["secret_max_age"], "needs the age: {mode: warn, max_age: 90d}")
        return SecretAge()
    days = _days(p, params["max_age"], ["secret_max_age", "max_age"])
    return SecretAge(max_age_days=days or 0)


def _registries(p: _Parser, params: Mapping[str, Any], rule: RuleSettings) -> AllowedRegistries:
    found: list[str] = []
    if "registries" in params:
        found = p.strings(params["registries"], ["allowed_registries", "registries"])
    if rule.mode != "off" and not found:
        p.error(
            ["allowed_registries"],
            'needs the registries: {mode: enforce, registries: ["registry.example.com"]}',
        )
    return AllowedRegistries(registries=tuple(r.rstrip("/").lower() for r in found))


def _windows(p: _Parser, params: Mapping[str, Any], rule: RuleSettings) -> WindowSettings:
    name = "deployment_windows"
    zone_name = "UTC"
    if "timezone" in params:
        value = params["timezone"]
        try:
            if not isinstance(value, str):
                raise WindowSyntaxError(f"{value!r} is not a time zone name")
            load_zone(value)
            zone_name = value
        except WindowSyntaxError as exc:
            p.error([name, "timezone"], str(exc))
    lists: dict[str, tuple[Window, ...]] = {}
    for kind in ("allow", "deny"):
        raw = params.get(kind, [])
        if isinstance(raw, str | Mapping):
            raw = [raw]
        if not isinstance(raw, Sequence):
            p.error([name, kind], "must be a list of windows")
            raw = []
        windows: list[Window] = []
        for index, item in enumerate(raw):
            try:
                windows.append(parse_window(item, zone_name))
            except WindowSyntaxError as exc:
                key = [exc.key] if exc.key is not None else []
                p.error([name, kind, index, *key], str(exc))
        lists[kind] = tuple(windows)
    settings = WindowSettings(allow=lists["allow"], deny=lists["deny"], timezone=zone_name)
    if rule.mode != "off" and not (params.get("allow") or params.get("deny")):
        p.error(
            [name],
            'needs allow and/or deny windows: {mode: enforce, allow: ["Mon-Thu 09:00-16:00"]}',
        )
    return settings


def parse_window(item: object, zone_name: str) -> Window:
    """One entry of ``allow``/``deny``: a weekly text, or a mapping with ``when``
    (weekly text), ``schedule`` + ``duration`` (cron) or ``from`` + ``until`` (dates), and
    optionally ``timezone`` and ``name``. A WindowSyntaxError names the key it is about."""
    if isinstance(item, str):
        return parse_weekly(item, load_zone(zone_name), zone_name)
    if not isinstance(item, Mapping):
        raise WindowSyntaxError(f"{item!r} is not a window (a text or a mapping)")
    known = {"when", "schedule", "duration", "from", "until", "timezone", "name"}
    unknown = sorted(str(k) for k in item if k not in known)
    if unknown:
        raise WindowSyntaxError(
            f"unknown window keys {unknown} (known: {sorted(known)})", key=unknown[0]
        )
    if "timezone" in item:
        with _at("timezone"):
            if not isinstance(item["timezone"], str):
                raise WindowSyntaxError(f"{item['timezone']!r} is not a time zone name")
            zone_name = item["timezone"]
            zone = load_zone(zone_name)
    else:
        zone = load_zone(zone_name)
    title = item.get("name")
    kinds = [k for k in ("when", "schedule", "from") if k in item]
    if len(kinds) != 1:
        raise WindowSyntaxError(
            "a window is one of: {when: 'Mon-Fri 09:00-17:00'}, "
            "{schedule: '0 9 * * 1-5', duration: 8h}, {from: 2025-12-20, until: 2026-01-06}"
        )
    window: Window
    if kinds[0] == "when":
        with _at("when"):
            if not isinstance(item["when"], str):
                raise WindowSyntaxError(f"when: {item['when']!r} is not a window text")
            window = parse_weekly(item["when"], zone, zone_name)
    elif kinds[0] == "schedule":
        if not isinstance(item["schedule"], str) or "duration" not in item:
            raise WindowSyntaxError(
                "a cron window needs schedule: '<5 fields>' and duration", key="schedule"
            )
        with _at("schedule"):
            cron = Cron.parse(item["schedule"])
        with _at("duration"):
            duration = parse_duration(str(item["duration"]))
        label = f"cron '{cron.text}' for {item['duration']} {zone_name}"
        window = CronWindow(label=label, zone=zone, cron=cron, duration=duration)
    else:
        if "until" not in item:
            raise WindowSyntaxError("a date window needs from and until", key="from")
        with _at("from"):
            start = parse_instant(item["from"], zone, end=False)
        with _at("until"):
            end = parse_instant(item["until"], zone, end=True)
            if end <= start:
                raise WindowSyntaxError(
                    f"window from {item['from']} until {item['until']} is empty"
                )
        label = f"from {item['from']} until {item['until']} {zone_name}"
        window = DateWindow(label=label, start=start, end=end)
    if title:
        window = _titled(window, str(title))
    return window


@contextlib.contextmanager
def _at(key: str) -> Iterator[None]:
    """Name the window key a WindowSyntaxError raised inside is about."""
    try:
        yield
    except WindowSyntaxError as exc:
        if exc.key is None:
            exc.key = key
        raise


def _titled(window: Window, title: str) -> Window:
    return replace(window, label=f"'{title}' ({window.label})")


def _rego(p: _Parser, params: Mapping[str, Any]) -> RegoSettings:
    if "params" not in params:
        return RegoSettings()
    value = params["params"]
    if not isinstance(value, Mapping):
        p.error([REGO, "params"], "must be a mapping (it becomes data.gitswarm.params)")
        return RegoSettings()
    try:
        plain = json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError) as exc:
        p.error([REGO, "params"], f"must be plain data: {exc}")
        return RegoSettings()
    return RegoSettings(params=plain)
