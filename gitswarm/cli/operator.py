"""The operator's side of the agent config, for the commands that deploy (edge).

``gitswarm serve --config FILE`` reads every setting of FILE (cli/serve.py). The commands
that talk to Docker or run secret providers (``sync``, ``status``, ``diff``, ``rollback``,
and ``render``/``validate``/``policy check`` for providers) read the same file for the
settings that are the operator's and never the repository's: ``targets:`` (where each
target is and its credentials, swarm/targets.py) and ``providers:`` (external secret
commands, source/providers.py). The file is ``--config FILE``, else ``$GITSWARM_CONFIG``;
without one, the only target is ``local`` and there are no providers. Its other settings
are the agent's and are not read here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gitswarm.errors import ConfigError

CONFIG_ENV = "GITSWARM_CONFIG"
_META = "gitswarm.operator_config"

if TYPE_CHECKING:  # the modules behind these load when a command runs (startup time)
    from gitswarm.source.providers import ProviderSet
    from gitswarm.swarm.targets import TargetTable


@dataclass(frozen=True)
class OperatorConfig:
    targets: TargetTable
    providers: ProviderSet
    path: Path | None = None
    lines: Mapping[str, int] = field(default_factory=dict)


def config_path(flag: Path | str | None, environ: Mapping[str, str]) -> Path | None:
    if flag:
        return Path(flag)
    value = environ.get(CONFIG_ENV)
    return Path(value) if value else None


def read_config_file(path: Path) -> tuple[dict[str, Any], dict[tuple[str, str], int], int]:
    """The YAML mapping of ``path`` as plain data, the line of every key under each
    top-level key ((top, sub) -> line), and nothing else."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    try:
        loaded: Any = YAML(typ="rt").load(path.read_text())
    except (OSError, YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the agent config: {exc}") from exc
    if loaded is not None and not isinstance(loaded, CommentedMap):
        raise ConfigError(f"{path}:1: the agent config must be a mapping of settings")
    settings: CommentedMap = loaded if loaded is not None else CommentedMap()
    data: dict[str, Any] = {}
    lines: dict[tuple[str, str], int] = {}
    for key, value in settings.items():
        data[str(key)] = plain(value)
        lines[(str(key), "")] = settings.lc.key(key)[0] + 1
        if isinstance(value, CommentedMap):
            for sub in value:
                lines[(str(key), str(sub))] = value.lc.key(sub)[0] + 1
    return data, lines, 0


def plain(value: Any) -> Any:
    """ruamel's round-trip nodes as plain dicts, lists and scalars."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def sub_lines(lines: Mapping[tuple[str, str], int], top: str) -> dict[str, int]:
    return {sub: line for (key, sub), line in lines.items() if key == top and sub}


def load_operator(path: Path | None, environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """``targets:`` and ``providers:`` of the agent config at ``path`` (None: none)."""
    from gitswarm.source.keys import keys_dir
    from gitswarm.source.providers import ProviderSet, parse_providers
    from gitswarm.swarm.targets import TargetTable, parse_targets

    environ = os.environ if environ is None else environ
    if path is None:
        return OperatorConfig(TargetTable(), ProviderSet())
    data, lines, _ = read_config_file(path)
    root = keys_dir(environ)
    targets = TargetTable(source=str(path))
    providers = ProviderSet()
    if "targets" in data:
        where = f"{path}:{lines[('targets', '')]}"
        targets = parse_targets(
            data["targets"], where, keys_dir=root, lines=sub_lines(lines, "targets"), path=path
        )
    if "providers" in data:
        where = f"{path}:{lines[('providers', '')]}"
        providers = parse_providers(
            data["providers"], where, environ=environ, lines=sub_lines(lines, "providers"),
            path=path,
        )  # fmt: skip
    return OperatorConfig(targets, providers, path)


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
        help="The agent config whose targets: and providers: to use (default: $GITSWARM_CONFIG).",
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
    "plain",
    "read_config_file",
    "sub_lines",
]
