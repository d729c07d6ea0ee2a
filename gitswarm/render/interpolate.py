"""``${VAR}`` interpolation of compose files, as ``docker stack config`` does it (pure).

Called by render/compose.py on each file before schema validation (the CLI's order).
Forms: ``$VAR``, ``${VAR}``, ``${VAR:-default}`` (unset or empty), ``${VAR-default}``
(unset), ``${VAR:?message}`` (error if unset or empty), ``${VAR?message}`` (error if
unset), ``$$`` (a literal ``$``). Only values are interpolated, never keys. A value that
changes is cast where the CLI casts it (``replicas: ${N}`` becomes an integer).

Deliberate differences from the CLI, each safer and each an error you can fix:

- an unset variable without a default is an error naming the file, line and variable
  (the CLI silently substitutes an empty string, giving e.g. ``image: 'app:'``);
- the operator is the one right after the name: ``${DB:?must-be-set}`` is required with
  the message ``must-be-set`` (the CLI sees the ``-`` first and reads a default);
- an unbraced ``$VAR`` followed by ``-``, ``?`` or ``:`` plus one of those is refused:
  the CLI silently swallows the rest of the value (``$TAG-alpine`` is TAG's value, or
  ``alpine`` when TAG is unset); write ``${TAG}-alpine`` or ``${TAG:-alpine}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitswarm.errors import Problem
from gitswarm.render.composetypes import CAST_PATHS
from gitswarm.render.golang import GoError, atoi, parse_float, parse_go_bool
from gitswarm.repo.yamlsrc import Document, YamlTimestamp

_SUBST = r"[_a-z][_a-z0-9]*(?::?[-?][^}]*)?"
PATTERN = re.compile(
    rf"\$(?:(?P<escaped>\$)|(?P<named>{_SUBST})|\{{(?P<braced>{_SUBST})\}}|(?P<invalid>))",
    re.IGNORECASE,
)
_NAME = re.compile(r"[_a-z][_a-z0-9]*", re.IGNORECASE)

RULE_UNSET = "variable-unset"
RULE_REQUIRED = "variable-required"
RULE_SYNTAX = "interpolation-syntax"
RULE_CAST = "interpolation-type"


class TemplateError(ValueError):
    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


def substitute(template: str, variables: Mapping[str, str]) -> tuple[str, list[TemplateError]]:
    """The interpolated string and every problem found in it."""
    errors: list[TemplateError] = []

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped") is not None:
            return "$"
        braced = match.group("braced")
        text = match.group("named") if braced is None else braced
        if not text:
            errors.append(
                TemplateError(
                    f"invalid interpolation in {template!r}: a $ must start ${{NAME}} or "
                    "$NAME; write $$ for a literal $",
                    RULE_SYNTAX,
                )
            )
            return ""
        name_match = _NAME.match(text)
        name = name_match.group(0) if name_match else text  # the pattern puts a name first
        rest = text[len(name) :]
        if braced is None and rest:
            errors.append(
                TemplateError(
                    f"${text} in {template!r} is ambiguous: the Docker CLI reads "
                    f"{rest!r} as part of the variable; write ${{{name}}}{rest} for text "
                    f"after the variable, or ${{{name}{rest}}} for a default or a check",
                    RULE_SYNTAX,
                )
            )
            return ""
        value = variables.get(name)
        for operator in (":-", ":?", "-", "?"):
            if rest.startswith(operator):
                argument = rest[len(operator) :]
                break
        else:
            operator, argument = "", ""
        if operator == ":-":
            return value if value else argument
        if operator == "-":
            return argument if value is None else value
        if operator in (":?", "?"):
            if value is None or (operator == ":?" and value == ""):
                state = "is not set" if value is None else "is empty"
                errors.append(
                    TemplateError(
                        f"required variable {name} {state}: {argument or '(no message)'}",
                        RULE_REQUIRED,
                    )
                )
                return ""
            return value
        if value is None:
            errors.append(
                TemplateError(
                    f"variable {name} is not set; define it in the environment's .env or "
                    f"give a default: ${{{name}:-default}}",
                    RULE_UNSET,
                )
            )
            return ""
        return value

    return PATTERN.sub(replace, template), errors


def _cast_for(path: tuple[str | int, ...]) -> str | None:
    parts = tuple("[]" if isinstance(p, int) else p for p in path)
    for pattern, cast in CAST_PATHS.items():
        if len(pattern) == len(parts) and all(
            want in ("*", got) for want, got in zip(pattern, parts, strict=True)
        ):
            return cast
    return None


_CASTS: dict[str, Callable[[str], Any]] = {"int": atoi, "float": parse_float, "bool": parse_go_bool}


@dataclass
class Interpolated:
    data: Any
    problems: list[Problem] = field(default_factory=list)
    failed: set[tuple[str | int, ...]] = field(default_factory=set)  # paths with problems


def interpolate(doc: Document, variables: Mapping[str, str]) -> Interpolated:
    """Interpolate every string value of a compose document; collect all problems."""
    problems: list[Problem] = []
    failed: set[tuple[str | int, ...]] = set()

    def walk(value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or isinstance(value, YamlTimestamp):
            return value  # the CLI interpolates strings only, not a YAML time
        new, errors = substitute(value, variables)
        for error in errors:
            problems.append(doc.problem(path, f"{_dotted(path)}: {error}", error.rule))
            failed.add(path)
        if errors or new == value:
            return value
        cast = _cast_for(path)
        if cast is None:
            return new
        try:
            return _CASTS[cast](new)
        except GoError as exc:
            problems.append(
                doc.problem(
                    path,
                    f"{_dotted(path)}: {new!r} after interpolation is not a valid {cast} ({exc})",
                    RULE_CAST,
                )
            )
            failed.add(path)
            return value

    return Interpolated(walk(doc.data, ()), problems, failed)


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out
