"""The agent config file, read in one place: its settings and the line of every key (I/O edge).

The file is the operator's (``gitswarm serve --config FILE``, and ``--config`` /
``$GITSWARM_CONFIG`` of the commands that deploy or promote). Three readers take their
part of it from here: cli/serve.py (every setting), cli/operator.py (``targets:``,
``providers:`` and ``policies:``, the floor parsed by :func:`policy_floors`) and
promote/operator.py (``promotion:``). Reading it once, the same way,
means that a wrong value is named the same way whoever finds it: the file, the line of
the key, the setting (``agent.yml:7: promotion.commands.scan.timeout: ...``).

The YAML goes through repo/yamlsrc.py, the bounded parser the repository's own files
use: a key written twice, a too deep or too large document, a non-string key are errors
with file, line and column, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitswarm.errors import ConfigError, YamlError
from gitswarm.files import TooLarge, read_bounded
from gitswarm.model.position import Path as KeyPath
from gitswarm.model.position import Position, nearest
from gitswarm.policy.floor import PolicyLayer, parse_floor
from gitswarm.policy.settings import REGO
from gitswarm.repo.policies import MAX_POLICY_BYTES
from gitswarm.repo.yamlsrc import parse_yaml

MAX_BYTES = 1 << 20  # an agent config is a page or two; this bounds a wrong --config


@dataclass(frozen=True)
class AgentConfig:
    """The settings of one agent config file, as plain data, and where each was written."""

    path: Path | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    positions: Mapping[KeyPath, Position] = field(default_factory=dict)

    def line(self, keys: KeyPath) -> int | None:
        """The line of ``keys`` (("promotion", "interval")), else of its nearest parent."""
        found = nearest(self.positions, keys) if keys else None
        return found[0] if found else None

    def lines_under(self, keys: KeyPath) -> dict[str, int]:
        """The line of each key right under ``keys``: {"production": 12, ...}."""
        depth = len(keys)
        return {
            str(at[depth]): position[0]
            for at, position in self.positions.items()
            if len(at) == depth + 1 and at[:depth] == keys
        }

    def where(self, keys: KeyPath) -> Where:
        return Where(keys, self)


@dataclass(frozen=True)
class Where:
    """A setting's place, for messages: ``agent.yml:7: promotion.commands.scan``.
    ``where / "argv"`` is the place of a key under it (with its own line when written)."""

    keys: KeyPath
    config: AgentConfig | None = None

    @classmethod
    def of(cls, where: Where | str) -> Where:
        """``where`` as a Where: a dotted name ("promotion.commands") has no file."""
        return where if isinstance(where, Where) else cls(tuple(where.split(".")))

    def __truediv__(self, key: str | int) -> Where:
        return Where((*self.keys, key), self.config)

    @property
    def name(self) -> str:
        out = ""
        for key in self.keys:
            out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
        return out

    def __str__(self) -> str:
        if self.config is None or self.config.path is None:
            return self.name
        line = self.config.line(self.keys)
        return (
            f"{self.config.path}:{line}: {self.name}"
            if line
            else f"{self.config.path}: {self.name}"
        )


def read_agent_config(path: Path) -> AgentConfig:
    """The agent config at ``path``; ConfigError with the file (and line) when it cannot be
    read or is not a mapping of settings."""
    try:
        raw = read_bounded(path, MAX_BYTES)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the agent config: {exc.strerror or exc}; "
            "check the path given to --config or $GITSWARM_CONFIG"
        ) from None
    except TooLarge:
        raise ConfigError(
            f"{path}: the agent config is over {MAX_BYTES >> 20} MiB; is it the right file?"
        ) from None
    try:
        document = parse_yaml(raw, str(path))
    except YamlError as exc:
        problem = exc.problems[0] if exc.problems else None
        message = problem.message if problem else str(exc)
        spot = problem.where() if problem and problem.file else str(path)
        raise ConfigError(f"{spot}: the agent config is not valid YAML: {message}") from None
    if document.data is None:
        return AgentConfig(path)
    if not isinstance(document.data, dict):
        raise ConfigError(f"{path}:1: the agent config must be a mapping of settings")
    return AgentConfig(path, document.data, document.positions)


FLOOR_REGO_FILES = 64  # .rego files in one floor's folder


def policy_floors(
    value: Any, where: str, config: AgentConfig, environ: Mapping[str, str] | None = None
) -> dict[str, PolicyLayer]:
    """``policies:``: environment name -> the rules no commit can loosen (policy/floor.py),
    in the syntax of an environment's ``policies:`` in gitswarm.yml, plus ``rego.dir``: a
    folder of ``.rego`` files on this host (absolute, or relative to $GITSWARM_KEYS_DIR)
    evaluated for every commit. ``where``: the setting's origin for messages
    ("agent.yml:7"); each mistake names its own line."""
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: policies must map environment names to policy settings, as in "
            "gitswarm.yml: {production: {no_privileged_containers: enforce}}"
        )
    lines = config.lines_under(("policies",))
    path = config.path
    floors: dict[str, PolicyLayer] = {}
    for env, spec in value.items():
        line = lines.get(str(env))
        at = f"{path}:{line}: policies.{env}" if path and line else f"{where}: policies.{env}"
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"{at} must be a mapping of rule names to modes, as under an environment's "
                "policies: in gitswarm.yml (no_privileged_containers: enforce)"
            )
        inside = ("policies", env)
        positions = {
            keys[2:]: position
            for keys, position in config.positions.items()
            if keys[:2] == inside and len(keys) > 2
        }
        spec, sources = _floor_rego(spec, config.where((*inside, "rego")), environ)
        floors[str(env)] = parse_floor(
            spec, env=str(env), file=str(path or where), positions=positions,
            rego_sources=sources,
        )  # fmt: skip
    return floors


def _floor_rego(
    spec: Mapping[str, Any], where: Where, environ: Mapping[str, str] | None
) -> tuple[Mapping[str, Any], dict[str, str]]:
    """``spec`` without ``rego.dir``, and the Rego files of that folder (path -> text)."""
    from gitswarm.source.keys import keys_dir  # keys.py reads age; only a floor needs it

    rego = spec.get(REGO)
    if rego is None:
        return spec, {}
    if not isinstance(rego, Mapping) or "dir" not in rego:
        raise ConfigError(
            f"{where}: a floor's rego needs dir: a folder of .rego files on this host "
            "({mode: enforce, dir: /etc/gitswarm/policies}); Rego in the repository's "
            "policies/ is the repository's"
        )
    folder = rego["dir"]
    if not isinstance(folder, str) or not folder:
        raise ConfigError(f"{where / 'dir'}: must be the path of a folder, not {folder!r}")
    root = Path(folder).expanduser()
    root = root if root.is_absolute() else keys_dir(environ) / root
    try:
        names = sorted(p for p in root.iterdir() if p.name.endswith(".rego"))
    except OSError as exc:
        raise ConfigError(
            f"{where / 'dir'}: cannot read the folder {root}: {exc.strerror or exc} (relative "
            "paths are read from $GITSWARM_KEYS_DIR)"
        ) from None
    if not names:
        raise ConfigError(f"{where / 'dir'}: {root} holds no .rego file")
    if len(names) > FLOOR_REGO_FILES:
        raise ConfigError(f"{where / 'dir'}: {root} holds over {FLOOR_REGO_FILES} .rego files")
    sources: dict[str, str] = {}
    for file in names:
        try:
            sources[str(file)] = read_bounded(file, MAX_POLICY_BYTES).decode(
                "utf-8", errors="replace"
            )
        except TooLarge:
            raise ConfigError(
                f"{where / 'dir'}: {file} is over {MAX_POLICY_BYTES >> 10} KiB"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"{where / 'dir'}: cannot read {file}: {exc.strerror or exc}"
            ) from None
    rest = {k: v for k, v in rego.items() if k != "dir"}
    return {**spec, REGO: rest}, sources


__all__ = [
    "FLOOR_REGO_FILES",
    "MAX_BYTES",
    "AgentConfig",
    "Where",
    "policy_floors",
    "read_agent_config",
]
