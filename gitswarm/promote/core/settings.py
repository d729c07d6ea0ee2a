"""An environment's ``promotion:`` block of gitswarm.yml, read and checked (pure).

Called by the promotion code for the *target* of a promotion (its gates and approvals)
and by the image automation (its image policies). Every problem is reported at once as a
ConfigError naming ``gitswarm.yml:line``::

    environments:
      production:
        promotion:
          from: staging               # default: the environment before this one
          approvals: 2                # distinct approvers (never the requester); 0: none
          expires: 72h                # a pending promotion expires (default 72h)
          auto: false                 # the agent promotes by itself once the gates pass
          gates:
            source_healthy_for: 10m   # soak: the source Synced and Healthy at its revision
            http:                     # each: GET url, status (default 200), retries
              - {name: health, url: "http://staging.example/health", status: 200,
                 timeout: 5, retries: 3, interval: 2}
            command: [perf-test, security-scan]   # names of the operator's commands
            policy: true              # the target's render passes its enforced rules
            window: true              # the target's deployment window is open
          image_automation:           # Flux-style: commit the newest tag of a repository
            - repository: 127.0.0.1:5000/medianest/app
              policy: {semver: {range: ">=1.0.0"}}
              filter_tags: {pattern: '^v?(?P<v>[0-9.]+)$', extract: '$v'}
              interval: 60s
              apps: [medianest]       # default: every app of the environment using it

Trust: ``command`` gates name commands; what each runs (its argv, its timeout) is the
operator's, in the agent's (or ``gitswarm promote --config``'s) ``promotion.commands``.
gitswarm.yml is written by whoever can push, and an argv from there would be code run
on the agent's host. ``http`` gates are a bounded GET without credentials or redirects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gitswarm.errors import ConfigError, Problem
from gitswarm.model.config import Environment, RepoConfig
from gitswarm.model.position import problem_at
from gitswarm.promote.core.tags import ImagePolicy, TagFilter

RULE = "promotion"
DEFAULT_EXPIRES = timedelta(hours=72)
DEFAULT_INTERVAL = timedelta(minutes=5)
MIN_INTERVAL = timedelta(seconds=1)
MAX_APPROVALS = 10
MAX_HTTP_GATES = 10
MAX_RETRIES = 20
MAX_GATE_TIMEOUT = 300.0
# A gate name goes into a Git trailer key (Gate-<name>): token characters only.
GATE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``90``, ``45s``, ``10m``, ``12h``, ``3d``, ``2w``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration is like 30s, 10m, 12h or 3d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 10m, 12h or 3d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True, slots=True)
class HttpGate:
    name: str
    url: str
    status: int = 200
    timeout: float = 5.0
    retries: int = 0  # further tries after a failure
    interval: float = 2.0  # seconds between tries
    where: str = ""  # file:line of its url, for messages


@dataclass(frozen=True, slots=True)
class Gates:
    source_healthy_for: timedelta | None = None
    http: tuple[HttpGate, ...] = ()
    commands: tuple[str, ...] = ()
    policy: bool = True
    window: bool = True

    def names(self) -> list[str]:
        """Every gate's name, in the order they run (and appear in the commit)."""
        out = ["source-healthy"]
        out += [g.name for g in self.http]
        out += [f"command-{c}" for c in self.commands]
        if self.policy:
            out.append("policy")
        if self.window:
            out.append("window")
        return out


@dataclass(frozen=True, slots=True)
class ImageAutomation:
    repository: str
    policy: ImagePolicy
    interval: timedelta = DEFAULT_INTERVAL
    apps: tuple[str, ...] = ()  # empty: every app of the environment that uses it


@dataclass(frozen=True, slots=True)
class PromotionSettings:
    env: str
    source: str | None  # the environment promoted from; None: the first has none
    approvals: int = 0
    expires: timedelta = DEFAULT_EXPIRES
    auto: bool = False
    gates: Gates = field(default_factory=Gates)
    image_automation: tuple[ImageAutomation, ...] = ()


class _Reader:
    """Collects the problems of one environment's block, each at its line."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.problems: list[Problem] = []

    def problem(self, path: Sequence[str | int], message: str) -> None:
        where = ".".join(str(p) for p in (self.env.name, *path))
        self.problems.append(
            problem_at(
                self.env.source,
                self.env.positions,
                tuple(path),
                f"environments.{where}: {message}",
                RULE,
            )
        )

    def where(self, path: Sequence[str | int]) -> str:
        """file:line of ``path`` in the environment's block."""
        return problem_at(self.env.source, self.env.positions, tuple(path), "", RULE).where()

    def mapping(
        self, value: Any, path: Sequence[str | int], known: Sequence[str]
    ) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(path, f"must be a mapping, not {type(value).__name__}")
            return {}
        for key in value:
            if key not in known:
                self.problem(
                    (*path, str(key)), f"unknown key {key!r}; allowed: {', '.join(sorted(known))}"
                )
        return {str(k): v for k, v in value.items() if k in known}

    def duration(self, value: Any, path: Sequence[str | int]) -> timedelta | None:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None

    def integer(self, value: Any, path: Sequence[str | int], low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(path, f"must be a whole number from {low} to {high}, not {value!r}")
            return None
        return value

    def number(
        self, value: Any, path: Sequence[str | int], low: float, high: float
    ) -> float | None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            self.problem(path, f"must be a number from {low:g} to {high:g}, not {value!r}")
            return None
        return float(value)

    def boolean(self, value: Any, path: Sequence[str | int]) -> bool:
        if not isinstance(value, bool):
            self.problem(path, f"must be true or false, not {value!r}")
            return False
        return value

    def string(self, value: Any, path: Sequence[str | int]) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"must be a non-empty string, not {value!r}")
            return None
        return value


def _previous(config: RepoConfig, env: Environment) -> str | None:
    before = [e for e in config.environments if e.order < env.order]
    return before[-1].name if before else None


def promotion_settings(config: RepoConfig, env_name: str) -> PromotionSettings:
    """The ``promotion:`` block of ``env_name``; ConfigError (file:line) when it is bad."""
    env = config.environment(env_name)
    r = _Reader(env)
    top = ("promotion",)
    data = r.mapping(
        env.promotion, top, ("from", "approvals", "expires", "auto", "gates", "image_automation")
    )
    source = _previous(config, env)
    if "from" in data:
        named = r.string(data["from"], (*top, "from"))
        known = [e.name for e in config.environments]
        if named is not None and named not in known:
            r.problem(
                (*top, "from"), f"environment {named!r} is not declared (known: {', '.join(known)})"
            )
        elif named == env.name:
            r.problem((*top, "from"), "an environment cannot be promoted from itself")
        else:
            source = named
    approvals = 0
    if "approvals" in data:
        approvals = r.integer(data["approvals"], (*top, "approvals"), 0, MAX_APPROVALS) or 0
    expires = DEFAULT_EXPIRES
    if "expires" in data:
        expires = r.duration(data["expires"], (*top, "expires")) or DEFAULT_EXPIRES
        if expires <= timedelta(0):
            r.problem((*top, "expires"), "must be longer than 0s")
    auto = r.boolean(data["auto"], (*top, "auto")) if "auto" in data else False
    gates = _gates(r, data.get("gates"), (*top, "gates"))
    images = _automation(r, data.get("image_automation"), (*top, "image_automation"), config, env)
    if r.problems:
        lines = "\n".join(f"  {p}" for p in r.problems)
        raise ConfigError(
            f"the promotion settings of {env.name} are not valid:\n{lines}", problems=r.problems
        )
    return PromotionSettings(env.name, source, approvals, expires, auto, gates, images)


def _gates(r: _Reader, value: Any, at: tuple[str | int, ...]) -> Gates:
    data = r.mapping(value, at, ("source_healthy_for", "http", "command", "policy", "window"))
    soak = None
    if "source_healthy_for" in data:
        soak = r.duration(data["source_healthy_for"], (*at, "source_healthy_for"))
    http: list[HttpGate] = []
    raw_http = data.get("http") or []
    if isinstance(raw_http, Mapping):
        raw_http = [raw_http]
    if not isinstance(raw_http, list):
        r.problem((*at, "http"), "must be a list of {url, status, timeout, retries}")
        raw_http = []
    if len(raw_http) > MAX_HTTP_GATES:
        r.problem((*at, "http"), f"at most {MAX_HTTP_GATES} http gates")
        raw_http = raw_http[:MAX_HTTP_GATES]
    names: set[str] = set()
    for i, item in enumerate(raw_http):
        path = (*at, "http", i)
        spec = r.mapping(item, path, ("name", "url", "status", "timeout", "retries", "interval"))
        url = r.string(spec.get("url"), (*path, "url")) if "url" in spec else None
        if "url" not in spec:
            r.problem(path, "needs url: (the address to GET)")
        elif url is not None and not re.match(r"^https?://[^\s/?#]+", url):
            r.problem((*path, "url"), f"{url!r} is not an http:// or https:// URL")
            url = None
        name = str(spec.get("name", "http" if len(raw_http) == 1 else f"http-{i + 1}"))
        if not GATE_NAME.match(name):
            r.problem(
                (*path, "name"), f"gate name {name!r}: use 1-40 lower-case letters, digits and '-'"
            )
        if name in names:
            r.problem((*path, "name"), f"two gates are named {name!r}; give each its own name")
        names.add(name)
        status = r.integer(spec.get("status", 200), (*path, "status"), 100, 599) or 200
        timeout = r.number(spec.get("timeout", 5), (*path, "timeout"), 0.1, MAX_GATE_TIMEOUT) or 5.0
        retries = r.integer(spec.get("retries", 0), (*path, "retries"), 0, MAX_RETRIES) or 0
        interval = r.number(spec.get("interval", 2), (*path, "interval"), 0, 60)
        if url is not None:
            every = 2.0 if interval is None else interval
            where = r.where((*path, "url"))
            http.append(HttpGate(name, url, status, timeout, retries, every, where))
    commands: list[str] = []
    raw_cmd = data.get("command") or []
    if isinstance(raw_cmd, str):
        raw_cmd = [raw_cmd]
    if not isinstance(raw_cmd, list):
        r.problem((*at, "command"), "must be a list of command names (defined by the operator)")
        raw_cmd = []
    for i, item in enumerate(raw_cmd):
        if isinstance(item, list | Mapping):
            r.problem(
                (*at, "command", i),
                "a command gate names a command of the operator's config (promotion.commands "
                "in the agent's or `gitswarm promote --config`'s file); gitswarm.yml cannot "
                "give an argv: whoever can push would run code on the agent's host",
            )
            continue
        name = str(item)
        if not GATE_NAME.match(name):
            r.problem(
                (*at, "command", i),
                f"command name {name!r}: use 1-40 lower-case letters, digits and '-'",
            )
        elif name in commands:
            r.problem((*at, "command", i), f"command {name!r} is listed twice")
        else:
            commands.append(name)
    policy = r.boolean(data["policy"], (*at, "policy")) if "policy" in data else True
    window = r.boolean(data["window"], (*at, "window")) if "window" in data else True
    return Gates(soak, tuple(http), tuple(commands), policy, window)


def _automation(
    r: _Reader, value: Any, at: tuple[str | int, ...], config: RepoConfig, env: Environment
) -> tuple[ImageAutomation, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        r.problem(at, "must be a list of {repository, policy, filter_tags, interval}")
        return ()
    out: list[ImageAutomation] = []
    apps = {a.name for a in config.apps_for(env.name)}
    for i, item in enumerate(value):
        path = (*at, i)
        spec = r.mapping(item, path, ("repository", "policy", "filter_tags", "interval", "apps"))
        repository = r.string(spec.get("repository"), (*path, "repository"))
        if repository is not None and (":" in repository.rpartition("/")[2] or "@" in repository):
            r.problem(
                (*path, "repository"),
                f"{repository!r}: name the repository without a tag or digest",
            )
            repository = None
        policy = _policy(r, spec.get("policy"), (*path, "policy"), spec.get("filter_tags"))
        interval = DEFAULT_INTERVAL
        if "interval" in spec:
            interval = r.duration(spec["interval"], (*path, "interval")) or DEFAULT_INTERVAL
            if interval < MIN_INTERVAL:
                r.problem(
                    (*path, "interval"), f"must be at least {MIN_INTERVAL.total_seconds():g}s"
                )
        chosen: list[str] = []
        for j, name in enumerate(spec.get("apps") or []):
            if name not in apps:
                r.problem((*path, "apps", j), f"application {name!r} is not deployed to {env.name}")
            else:
                chosen.append(str(name))
        if repository is not None and policy is not None:
            out.append(ImageAutomation(repository, policy, interval, tuple(chosen)))
    return tuple(out)


def _policy(
    r: _Reader, value: Any, at: tuple[str | int, ...], filter_value: Any
) -> ImagePolicy | None:
    data = r.mapping(value, at, ("semver", "numerical", "alphabetical"))
    if len(data) != 1:
        r.problem(
            at, "give exactly one of semver: {range}, numerical: {order}, alphabetical: {order}"
        )
        return None
    kind, spec = next(iter(data.items()))
    tag_filter: TagFilter | None = None
    if filter_value is not None:
        fpath = (*at[:-1], "filter_tags")
        fspec = r.mapping(filter_value, fpath, ("pattern", "extract"))
        pattern = r.string(fspec.get("pattern"), (*fpath, "pattern"))
        extract = fspec.get("extract", "")
        if not isinstance(extract, str):
            r.problem((*fpath, "extract"), "must be a string like '$version'")
            extract = ""
        if pattern is not None:
            tag_filter = TagFilter(pattern, extract)
            try:
                tag_filter.compiled()
            except ValueError as exc:
                r.problem((*fpath, "pattern"), str(exc))
                tag_filter = None
    if kind == "semver":
        options = r.mapping(spec, (*at, kind), ("range",))
        rng = options.get("range", "*")
        if not isinstance(rng, str):
            r.problem((*at, kind, "range"), "must be a string like '>=1.0.0 <2.0.0'")
            return None
        policy = ImagePolicy("semver", range=rng, filter=tag_filter)
        try:
            policy.spec()
        except ValueError as exc:
            r.problem((*at, kind, "range"), str(exc))
            return None
        return policy
    options = r.mapping(spec, (*at, kind), ("order",))
    order = options.get("order", "asc")
    if order not in ("asc", "desc"):
        r.problem((*at, kind, "order"), f"must be asc or desc, not {order!r}")
        return None
    return ImagePolicy(kind, order=order, filter=tag_filter)  # type: ignore[arg-type]


__all__ = [
    "Gates",
    "HttpGate",
    "ImageAutomation",
    "PromotionSettings",
    "parse_duration",
    "promotion_settings",
]
