"""Docker's env-file syntax (``docker run --env-file``, ``env_file:``), in pure Python.

Used for an environment's ``.env`` (interpolation variables) and for a service's
``env_file:`` entries. The format, as the Docker CLI's ``pkg/kvfile`` reads it:

- one ``KEY=VALUE`` per line; leading whitespace is dropped, lines starting with ``#``
  and empty lines are skipped;
- the value is taken as written: no quotes are removed (``A="x"`` is ``"x"`` with the
  quotes), no ``$`` expansion, trailing whitespace is kept;
- a key must not contain spaces or tabs; a line with just ``KEY`` takes the value from
  ``lookup`` (for ``env_file:``, gitswarm's variables), and is an error in ``.env``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gitswarm.errors import Problem

RULE = "env-file"


@dataclass
class EnvFile:
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # where each key was set
    problems: list[Problem] = field(default_factory=list)


def parse_env_file(
    data: bytes, file: str, lookup: Callable[[str], str | None] | None = None
) -> EnvFile:
    out = EnvFile()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            out.problems.append(
                Problem("not valid UTF-8; save the file as UTF-8", file, number, rule=RULE)
            )
            continue
        line = text.lstrip()
        if not line or line.startswith("#"):
            continue
        key, has_value, value = line.partition("=")
        if not key:
            out.problems.append(
                Problem(f"no variable name in {line!r}; write NAME=value", file, number, rule=RULE)
            )
            continue
        if " " in key or "\t" in key:
            out.problems.append(
                Problem(
                    f"variable name {key!r} contains whitespace; write NAME=value "
                    "with no spaces around =",
                    file,
                    number,
                    rule=RULE,
                )
            )
            continue
        if not has_value:
            found = lookup(key) if lookup is not None else None
            if found is None:
                if lookup is None:
                    out.problems.append(
                        Problem(
                            f"{key} has no value; write {key}=value (or {key}= for empty)",
                            file,
                            number,
                            rule=RULE,
                        )
                    )
                continue
            value = found
        out.values[key] = value
        out.lines[key] = number
    return out
