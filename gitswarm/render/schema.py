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


def supported_versions() -> list[str]:
    names = [p.name for p in resources.files("gitswarm.render.schemas").iterdir()]
    found = [n[len("config_schema_v") : -len(".json")] for n in names if n.endswith(".json")]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


@functools.cache
def _known_versions() -> frozenset[str]:
    return frozenset(supported_versions())


def _validator(version: str) -> jsonschema.Draft4Validator | None:
    # The version is the commit's text: only the name of a vendored schema becomes a
    # file name (any other could be too long for the OS: an OSError instead of a clear
    # problem), and only those are cached (not one entry per version ever written).
    if version not in _known_versions():
        return None
    return _load_validator(version)


@functools.cache
def _load_validator(version: str) -> jsonschema.Draft4Validator:
    resource = resources.files("gitswarm.render.schemas") / f"config_schema_v{version}.json"
    schema = json.loads(resource.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(schema, format_checker=_FORMATS)


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
