"""The operator's promotion settings: what only the agent's host may decide (edge).

``promotion:`` of the agent's config file (`gitswarm serve --config`, and
`gitswarm promote/approve --config` for the CLI)::

    promotion:
      automation: true            # image automation, auto-promotion, holds, expiry
      interval: 30                # seconds between two automation rounds
      commands:                   # what `command:` gates in gitswarm.yml may name
        perf-test: {argv: [/opt/ci/perf-test.sh, "{to}", "{images}"], timeout: 10m}
      http_allow:                 # where `http:` gates in gitswarm.yml may GET (egress.py)
        - "http://127.0.0.1:8080/healthz"
        - "10.20.0.0/16"
      registries:                 # credentials and endpoints, by registry host
        ghcr.io: {username: ci, password_env: GHCR_TOKEN}
        "127.0.0.1:5000": {endpoint: "http://10.0.0.5:5000"}

**Trust model of gates.** gitswarm.yml is written by whoever can push to the GitOps
repository; the agent's config is written by the operator of the agent's host. A
pusher can already change what the swarm runs (through the target's checks), but a
``command`` gate runs *on the agent's host*: an argv from gitswarm.yml would let every
pusher run code there, with the agent's Docker socket and age identities in reach. So
gitswarm.yml only *names* commands; the argv, timeout and environment of each are
here, and a name the operator did not define fails its gate (nothing is run). Values a
commit controls (app, environment names, tags) reach a command only as separate argv
elements or ``GITSWARM_PROMOTION_*`` variables, never through a shell. An ``http`` gate
runs on the agent's host too, inside the operator's network: gitswarm.yml may write its
URL, but only a URL that ``http_allow`` admits is ever asked for (none, by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitswarm.errors import ConfigError
from gitswarm.promote.egress import HttpAllow, parse_allow
from gitswarm.promote.gates import GateCommand, commands_from_mapping
from gitswarm.promote.registry import RegistryAuth, registries_from_mapping
from gitswarm.source.agentconfig import AgentConfig, Where, read_agent_config

KEYS = ("automation", "interval", "commands", "http_allow", "registries")


@dataclass(frozen=True)
class OperatorSettings:
    commands: Mapping[str, GateCommand] = field(default_factory=dict)
    registries: Mapping[str, RegistryAuth] = field(default_factory=dict)
    automation: bool = True
    interval: float = 30.0
    http_allow: HttpAllow = field(default_factory=HttpAllow)


def operator_settings(
    data: Any,
    environ: Mapping[str, str] | None = None,
    where: Where | None = None,
    source: str = "the agent config",
) -> OperatorSettings:
    """``promotion:`` of the agent's config (``source``) as OperatorSettings; ConfigError
    naming the file, line and key when it is wrong (``where``: the ``promotion`` key of
    the file read by source/agentconfig.py, or the bare name for data from elsewhere)."""
    environ = os.environ if environ is None else environ
    where = Where(("promotion",)) if where is None else where
    if data is None:
        return OperatorSettings(http_allow=HttpAllow(source=source))
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping with {', '.join(KEYS)}")
    for key in data:
        if key not in KEYS:
            raise ConfigError(
                f"{where / str(key)}: unknown setting {str(key)!r} (known: {', '.join(KEYS)})"
            )
    automation = data.get("automation", True)
    if not isinstance(automation, bool):
        raise ConfigError(f"{where / 'automation'} must be true or false")
    interval = data.get("interval", 30)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval >= 1:
        raise ConfigError(f"{where / 'interval'} must be a number of seconds, at least 1")
    return OperatorSettings(
        commands=commands_from_mapping(data.get("commands"), where / "commands"),
        registries=registries_from_mapping(data.get("registries"), environ, where / "registries"),
        automation=automation,
        interval=float(interval),
        http_allow=parse_allow(data.get("http_allow"), where / "http_allow", source),
    )


def settings_of(config: AgentConfig, environ: Mapping[str, str] | None = None) -> OperatorSettings:
    """The ``promotion:`` section of an agent config read by source/agentconfig.py."""
    source = str(config.path) if config.path else "the agent config"
    where = config.where(("promotion",))
    return operator_settings(config.data.get("promotion"), environ, where, source)


def load_operator_settings(
    path: Path | None, environ: Mapping[str, str] | None = None
) -> OperatorSettings:
    """The ``promotion:`` section of the agent's config file at ``path`` (None: none)."""
    if path is None:
        return OperatorSettings(http_allow=HttpAllow(source="no agent config (--config)"))
    return settings_of(read_agent_config(path), environ)


__all__ = ["OperatorSettings", "load_operator_settings", "operator_settings", "settings_of"]
