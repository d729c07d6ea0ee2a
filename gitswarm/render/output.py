"""The deployable YAML of a DesiredStack (pure): what swarm/ hands to ``docker stack
deploy`` and what ``gitswarm render`` prints.

``docker stack deploy`` interpolates the file it is given, so every ``$`` in a value is
written as ``$$``: the CLI then reads exactly the value the author meant, once. Strings
that YAML (Go's yaml.v3 included) would read as something else — ``"0400"``, ``"true"``,
``"1_000"`` — are quoted, and so are YAML 1.1's booleans (``"yes"``, ``"off"``), which
Docker CLIs before 28 (yaml.v2) read as true and false. Keys keep the order render/
built (the order ``docker stack config`` prints), so the same revision always gives the
same bytes. Secret values never appear: only the names of the Swarm secrets that
gitswarm creates.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.representer import SafeRepresenter

from gitswarm.model.stack import DesiredStack
from gitswarm.repo.yamlsrc import YamlTimestamp, is_plain_string


class _Representer(SafeRepresenter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sort_base_mapping_type_on_output = False  # keep render/'s order


# yaml.v2 (Docker CLIs before 28) reads these as booleans; yaml.v3 as strings
_YAML11_BOOLS = frozenset(
    form
    for word in ("y", "yes", "n", "no", "on", "off")
    for form in (word, word.capitalize(), word.upper())
)


def _represent_str(representer: SafeRepresenter, data: str) -> Any:
    # quoted whenever a plain scalar would read back as something else
    plain = is_plain_string(data) and "\n" not in data and data not in _YAML11_BOOLS
    style = None if plain else '"'
    return representer.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_time(representer: SafeRepresenter, data: YamlTimestamp) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:timestamp", str(data))


_Representer.add_representer(str, _represent_str)
_Representer.add_representer(YamlTimestamp, _represent_time)


def escape_dollars(value: Any) -> Any:
    """Every ``$`` in a string value as ``$$`` (keys are never interpolated)."""
    if isinstance(value, dict):
        return {k: escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_dollars(v) for v in value]
    if isinstance(value, str) and not isinstance(value, YamlTimestamp):
        return value.replace("$", "$$")
    return value


def dump_yaml(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.width = 1 << 16
    yaml.allow_unicode = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def to_yaml(desired: DesiredStack) -> str:
    """The compose file to deploy, ``$`` escaped for ``docker stack deploy``."""
    return dump_yaml(escape_dollars(dict(desired.compose)))
