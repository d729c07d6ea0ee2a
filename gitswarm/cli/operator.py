"""The operator's side of the agent config, for the commands that deploy (edge).

``gitswarm serve --config FILE`` reads every setting of FILE (cli/serve.py). The commands
that talk to Docker or run secret providers (``sync``, ``status``, ``diff``, ``rollback``,
and ``render``/``validate``/``policy check`` for providers) read the same file for the
settings that are the operator's and never the repository's: ``targets:`` (where each
target is and its credentials, swarm/targets.py) and ``providers:`` (external secret
commands, source/providers.py). The file is ``--config FILE``, else ``$GITSWARM_CONFIG``;
without one, the only target is ``local`` and there are no providers. Its other settings
are the agent's and are not read here. The file itself is read by source/agentconfig.py,
the one reader of the agent config (serve.py and promote/operator.py use it too).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

CONFIG_ENV = "GITSWARM_CONFIG"
_META = "gitswarm.operator_config"

if TYPE_CHECKING:  # the modules behind these load when a command runs (startup time)
    from gitswarm.policy.floor import PolicyLayer
    from gitswarm.source.providers import ProviderSet
    from gitswarm.swarm.targets import TargetTable


@dataclass(frozen=True)
class OperatorConfig:
    targets: TargetTable
    providers: ProviderSet
    path: Path | None = None
    # The policy floor per environment (``policies:``): rules no commit can loosen.
    policies: Mapping[str, PolicyLayer] = field(default_factory=dict)
    lines: Mapping[str, int] = field(default_factory=dict)


def config_path(flag: Path | str | None, environ: Mapping[str, str]) -> Path | None:
    if flag:
        return Path(flag)
    value = environ.get(CONFIG_ENV)
    return Path(value) if value else None


def load_operator(path: Path | None, environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """``targets:``, ``providers:`` and ``policies:`` of the agent config at ``path``
    (None: none)."""
    from gitswarm.source.agentconfig import policy_floors, read_agent_config
    from gitswarm.source.keys import keys_dir
    from gitswarm.source.providers import ProviderSet, parse_providers
    from gitswarm.swarm.targets import TargetTable, parse_targets

    environ = os.environ if environ is None else environ
    if path is None:
        return OperatorConfig(TargetTable(), ProviderSet())
    config = read_agent_config(path)
    root = keys_dir(environ)
    targets = TargetTable(source=str(path))
    providers = ProviderSet()
    if "targets" in config.data:
        where = f"{path}:{config.line(('targets',))}"
        targets = parse_targets(
            config.data["targets"], where, keys_dir=root,
            lines=config.lines_under(("targets",)), path=path,
        )  # fmt: skip
    if "providers" in config.data:
        where = f"{path}:{config.line(('providers',))}"
        providers = parse_providers(
            config.data["providers"], where, environ=environ,
            lines=config.lines_under(("providers",)), path=path,
        )  # fmt: skip
    policies: dict[str, PolicyLayer] = {}
    if "policies" in config.data:
        where = f"{path}:{config.line(('policies',))}"
        policies = policy_floors(config.data["policies"], where, config, environ)
    return OperatorConfig(targets, providers, path, policies=policies)


def _remember(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    ctx.meta[_META] = value


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE`` (default ``$GITSWARM_CONFIG``): the agent config whose targets and
    providers this command uses (read by ``operator()``)."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        expose_value=False,
        callback=_remember,
        help=(
            "The agent config whose targets:, providers: and policies: to use "
            "(default: $GITSWARM_CONFIG)."
        ),
    )(fn)


def operator() -> OperatorConfig:
    """The operator config of the running command (``--config`` / ``$GITSWARM_CONFIG``)."""
    ctx = click.get_current_context(silent=True)
    flag = ctx.meta.get(_META) if ctx is not None else None
    return load_operator(config_path(flag, os.environ))


__all__ = [
    "CONFIG_ENV",
    "OperatorConfig",
    "config_option",
    "config_path",
    "load_operator",
    "operator",
]
