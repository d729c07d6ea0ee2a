"""Compose schema validation with the Docker CLI's own JSON schemas (pure).

Called by render/compose.py for each compose file after interpolation, as the CLI does.
The schemas are vendored unchanged in render/schemas/ (see its NOTICE.md); jsonschema
applies them (draft 4) with the two formats the CLI registers (``ports``, ``duration``).
Every violation becomes a Problem at the file and line of the offending key or value.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError as SchemaViolation

from gitswarm.errors import Problem
from gitswarm.render.composetypes import parse_port_spec
from gitswarm.render.golang import GoError, parse_duration, sprint
from gitswarm.repo.yamlsrc import INTEGER_RANGE, Document, YamlBigInteger

DEFAULT_VERSION = "3.13"
RULE = "compose-schema"

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("ports", raises=GoError)
def _is_port(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return True
    parse_port_spec(value if isinstance(value, str) else sprint(value))
    return True


@_FORMATS.checks("duration", raises=GoError)
def _is_duration(value: object) -> bool:
    if isinstance(value, str):
        parse_duration(value)
    return True


def normalize_version(version: str) -> str:
    return DEFAULT_VERSION if version in ("", "3") else version


@functools.cache
def supported_versions() -> tuple[str, ...]:
    names = [p.name for p in resources.files("gitswarm.render.schemas").iterdir()]
    found = [n[len("config_schema_v") : -len(".json")] for n in names if n.endswith(".json")]
    return tuple(sorted(found, key=lambda v: tuple(int(x) for x in v.split("."))))


@functools.cache
def _schema(version: str) -> dict[str, Any] | None:
    package = resources.files("gitswarm.render.schemas")
    resource = package / f"config_schema_v{version}.json"
    if not resource.is_file():
        return None
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


def _validator(version: str) -> jsonschema.Draft4Validator | None:
    # The version is the commit's text: only the name of a vendored schema becomes a
    # file name (any other could be too long for the OS: an OSError instead of a clear
    # problem), and only those are cached (not one entry per version ever written).
    if version not in supported_versions():
        return None
    return _load_validator(version)


@functools.cache
def _load_validator(version: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(_schema(version) or {}, format_checker=_FORMATS)


# Where a compose document's keys are closed sets (additionalProperties: false), by the
# schema definition that says which keys: (section, definition, key inside an item).
_CLOSED_LEVELS = (
    ("services", "service", None),
    ("services", "deployment", "deploy"),
    ("services", "healthcheck", "healthcheck"),
    ("networks", "network", None),
    ("volumes", "volume", None),
    ("secrets", "secret", None),
    ("configs", "config", None),
)
KeySet = tuple[frozenset[str], tuple[re.Pattern[str], ...]]


@functools.cache
def _closed_keys(version: str) -> dict[str, KeySet]:
    """The keys each closed level of ``version``'s schema allows (by definition name,
    "" for the top level); a level that is not closed in that version is left out."""
    schema = _schema(version) or {}
    levels = {"": schema, **schema.get("definitions", {})}
    out: dict[str, KeySet] = {}
    for name, node in levels.items():
        if isinstance(node, dict) and node.get("additionalProperties") is False:
            patterns = tuple(re.compile(p) for p in node.get("patternProperties", {}))
            out[name] = (frozenset(node.get("properties", {})), patterns)
    return out


def _keys_allowed(data: dict[str, Any], version: str) -> bool:
    """False if ``data`` uses a key that ``version``'s schema cannot accept where it is:
    a quick, certain no (the full validation says yes)."""
    closed = _closed_keys(version)

    def fits(level: str, keys: Iterable[str]) -> bool:
        if level not in closed:
            return True  # an open level (or one the top level already refused)
        known, patterns = closed[level]
        return all(k in known or any(p.search(k) for p in patterns) for k in keys)

    if not fits("", data):
        return False
    for section, level, inner in _CLOSED_LEVELS:
        items = data.get(section)
        for item in items.values() if isinstance(items, dict) else ():
            value = item.get(inner) if inner and isinstance(item, dict) else item
            if isinstance(value, dict) and not fits(level, value):
                return False
    return True


def _schema_of(error: SchemaViolation) -> dict[str, Any]:
    return error.schema if isinstance(error.schema, dict) else {}


def _value_of(error: SchemaViolation) -> Any:
    value: Any = error.validator_value
    return value


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "the top level"


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "null": "empty",
}


def _types(expected: Any) -> list[str]:
    return [expected] if isinstance(expected, str) else list(expected)


def _describe(value: Any) -> str:
    if isinstance(value, YamlBigInteger):
        return value.written  # as written, not as the float64 yaml.v3 makes of it
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _unknown_keys(error: SchemaViolation) -> list[str]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    known = set(_schema_of(error).get("properties", {}))
    patterns = [re.compile(p) for p in _schema_of(error).get("patternProperties", {})]
    return [k for k in instance if k not in known and not any(p.search(k) for p in patterns)]


Located = tuple[tuple[str | int, ...], Problem]

_FORMAT_WORDS = {"ports": "port mapping"}

_NAME_RULES = {
    "^[a-zA-Z0-9._-]+$": "use only ASCII letters (a-z, A-Z), digits (0-9), '.', '_' and '-'",
    "^[a-z]+$": "use only lower-case letters a-z",
}


def _name_rule(pattern: str) -> str:
    return _NAME_RULES.get(pattern, f"names must match {pattern}")


def _problems_for(error: SchemaViolation, doc: Document) -> list[Located]:
    path = tuple(error.absolute_path)
    where = _dotted(path)
    validator = error.validator
    if validator == "additionalProperties":
        out = []
        names = [p for p in _schema_of(error).get("patternProperties", {}) if p != "^x-"]
        for key in _unknown_keys(error):
            scope = f"in {where}" if path else "at the top level"
            where_key = (*path, key)
            if names and not key.startswith("x-"):
                # a mapping of names (services, networks, ulimits, ...): the key is a name
                # with characters the schema does not allow, not a misspelt setting
                message = f"{where}: {key!r} is not a valid name: {_name_rule(names[0])}"
            else:
                message = (
                    f"unknown key {key!r} {scope}; check its spelling and indentation "
                    "(extension keys must start with x-)"
                )
            out.append((where_key, doc.problem(where_key, message, RULE)))
        return out
    if validator == "type":
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in _types(_value_of(error)))
        message = f"{where} must be {words}, not {_describe(error.instance)}"
        if isinstance(error.instance, YamlBigInteger):
            low, high = INTEGER_RANGE
            message += f": a compose file's integers range from {low} to {high}"
    elif validator in ("oneOf", "anyOf"):
        context = list(error.context or [])
        same_level = [c for c in context if tuple(c.absolute_path) == path]
        if (
            context
            and all(c.validator == "type" for c in same_level)
            and len(same_level) == len(context)
        ):
            expected: list[str] = []
            for c in context:
                expected += [_TYPE_WORDS.get(t, t) for t in _types(_value_of(c))]
            words = " or ".join(dict.fromkeys(expected))
            message = f"{where} must be {words}, not {_describe(error.instance)}"
        elif context:
            # the branch whose type matched says what is wrong ("70000:80" is a string
            # with a bad port), not the branches of other types ("must be a number")
            relevant = [c for c in context if c.validator != "type"] or context
            deepest = max(relevant, key=lambda c: len(c.absolute_path))
            return _problems_for(deepest, doc)
        else:  # pragma: no cover - jsonschema always gives context for oneOf
            message = f"{where}: {error.message}"
    elif validator == "required":
        message = f"{where}: {error.message}"
    elif validator == "enum":
        allowed = ", ".join(repr(v) for v in _value_of(error))
        message = f"{where} must be one of {allowed}, not {_describe(error.instance)}"
    elif validator == "format":
        kind = _FORMAT_WORDS.get(_value_of(error), _value_of(error))
        message = f"{where}: {_describe(error.instance)} is not a valid {kind}"
        if error.cause is not None:
            message += f" ({error.cause})"
    elif validator == "uniqueItems":
        message = f"{where} lists the same item twice; remove the duplicate"
    else:
        message = f"{where}: {error.message}"
    return [(path, doc.problem(path, message, RULE))]


def deployable_version(data: dict[str, Any], written: str | None) -> str:
    """The version the deployed file says: the lowest Compose version, not below the
    ``written`` one (any, when the files name none), whose schema accepts ``data``.

    ``docker stack config`` keeps the first file's ``version`` while writing what its
    loader filled in: ``name:`` on networks, volumes, configs and secrets, long-form
    ports and volumes. Under 3.0-3.4 that output fails the CLI's own schema
    (``networks.x Additional property name is not allowed``). Unversioned files it
    prints as the latest version (3.13), which Docker CLIs before 27 refuse (and those
    before 23 refuse files without a version; Debian 12's docker.io is 20.10). In the
    CLI's loader the version selects the schema and nothing else (beside deprecation
    warnings for ``external.name``, which gitswarm's output never has), so the lowest
    fitting version changes no value deployed and loads in every CLI that knows it.
    Falls back to the written version (or the latest) when no schema accepts the data:
    ``docker stack deploy`` then says why."""
    fallback = normalize_version(written or "")
    known = supported_versions()
    if fallback not in known:
        return fallback
    start = 0 if written is None else known.index(fallback)
    for candidate in known[start:]:
        if not _keys_allowed(data, candidate):
            continue  # cheap, and most versions below the answer fail here
        validator = _validator(candidate)
        if validator is not None and validator.is_valid(data):
            return candidate
    return fallback


def validate_compose(doc: Document, data: dict[str, Any], version: str) -> list[Located]:
    """Problems of one (interpolated) compose file against the schema of ``version``,
    each with the path of the offending node."""
    version = normalize_version(version)
    validator = _validator(version)
    if validator is None:
        known = ", ".join(supported_versions())
        message = (
            f"unsupported Compose file version {version!r}; use one of {known} "
            "(or leave version out for the latest)"
        )
        return [(("version",), doc.problem(("version",), message, RULE))]
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    problems: list[Located] = []
    for error in errors:
        problems.extend(_problems_for(error, doc))
    return problems
