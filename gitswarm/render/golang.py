"""Small Go behaviours the Docker CLI's compose loader relies on, in pure Python.

Each function reproduces one Go routine bit for bit where it changes what gets deployed:
``fmt.Sprint`` of YAML scalars, ``time.ParseDuration`` / ``Duration.String``,
go-units ``RAMInBytes``, ``google/shlex.Split`` (how ``command: "a b"`` becomes a list)
and ``strconv`` number parsing. Used by render/compose.py; no I/O.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from gitswarm.repo.yamlsrc import YamlTimestamp

INT64_MAX = 2**63 - 1


class GoError(ValueError):
    """A Go routine would have returned an error."""


# --- fmt.Sprint --------------------------------------------------------------------------


def format_float(value: float) -> str:
    """``strconv.FormatFloat(v, 'g', -1, 64)``, which is what ``fmt.Sprint`` prints:
    the shortest digits that round-trip, in %e form when the exponent is < -4 or >= 6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    _, digit_tuple, raw_exponent = Decimal(repr(abs(value))).as_tuple()
    exponent = int(raw_exponent)
    digits = "".join(str(d) for d in digit_tuple).lstrip("0")
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    point = len(digits) + exponent  # value = 0.<digits> * 10**point
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * (-point)}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def sprint(value: Any) -> str:
    """``fmt.Sprint`` of a value decoded from YAML."""
    if isinstance(value, YamlTimestamp):
        return value.go_string()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if value is None:
        return "<nil>"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(sprint(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{sprint(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    return str(value)


# --- time.Duration ------------------------------------------------------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def parse_duration(text: str) -> int:
    """``time.ParseDuration``: nanoseconds."""
    original = text
    sign = 1
    if text and text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise GoError(f'time: invalid duration "{original}"')
    total = Decimal(0)
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match or match.group(1) in ("", ".") or match.end() == pos:
            raise GoError(f'time: invalid duration "{original}"')
        unit = match.group(2)
        if unit not in _UNITS:
            if not unit:
                raise GoError(f'time: missing unit in duration "{original}"')
            raise GoError(f'time: unknown unit "{unit}" in duration "{original}"')
        total += Decimal(match.group(1)) * _UNITS[unit]
        pos = match.end()
    nanos = int(total)  # Go truncates fractions of a nanosecond
    if nanos > INT64_MAX + (1 if sign < 0 else 0):
        raise GoError(f'time: invalid duration "{original}"')
    return sign * nanos


def _frac(value: int, precision: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of value/10**precision without trailing zeros."""
    out = ""
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            out = str(digit) + out
        value //= 10
    if printed:
        out = "." + out
    return out, value


def format_duration(nanos: int) -> str:
    """``time.Duration.String``: ``1m30s``, ``500ms``, ``1h0m0s``, ``0s``."""
    neg = nanos < 0
    u = -nanos if neg else nanos
    if u < 1_000_000_000:
        if u == 0:
            return "0s"
        if u < 1_000:
            text = f"{u}ns"
        elif u < 1_000_000:
            frac, whole = _frac(u, 3)
            text = f"{whole}{frac}µs"
        else:
            frac, whole = _frac(u, 6)
            text = f"{whole}{frac}ms"
    else:
        frac, secs = _frac(u, 9)
        text = f"{secs % 60}{frac}s"
        minutes = secs // 60
        if minutes > 0:
            text = f"{minutes % 60}m{text}"
            hours = minutes // 60
            if hours > 0:
                text = f"{hours}h{text}"
    return "-" + text if neg else text


# --- go-units RAMInBytes ------------------------------------------------------------------

_BINARY = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_GO_FLOAT = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes``: ``64M`` is 67108864, ``1.5g`` works, ``b`` suffix allowed."""
    sep = max(text.rfind(c) for c in "01234567890. ")
    if sep == -1:
        raise GoError(f"invalid size: '{text}'")
    if text[sep] != " ":
        num, suffix = text[: sep + 1], text[sep + 1 :]
    else:
        num, suffix = text[:sep], text[sep + 1 :]
    if not _GO_FLOAT.match(num):
        raise GoError(f'strconv.ParseFloat: parsing "{num}": invalid syntax')
    size = float(num)
    if size < 0:
        raise GoError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    if len(suffix) > 3:
        raise GoError(f"invalid suffix: '{suffix}'")
    suffix = suffix.lower()
    if suffix[0] == "b":
        if len(suffix) > 1:
            raise GoError(f"invalid suffix: '{suffix}'")
        return int(size)
    if suffix[0] not in _BINARY:
        raise GoError(f"invalid suffix: '{suffix}'")
    size *= _BINARY[suffix[0]]
    if (len(suffix) == 2 and suffix[1] != "b") or (len(suffix) == 3 and suffix[1:] != "ib"):
        raise GoError(f"invalid suffix: '{suffix}'")
    return int(size)


# --- google/shlex.Split ----------------------------------------------------------------------


def shlex_split(text: str) -> list[str]:
    """``github.com/google/shlex.Split``: POSIX-like words; ``#`` starts a comment only at
    the start of a word; in double quotes a backslash takes the next character literally."""
    words: list[str] = []
    state = "start"
    word: list[str] = []
    for char in [*text, None]:
        if state == "start":
            if char is None:
                break
            if char in " \t\r\n":
                continue
            word = []
            if char == '"':
                state = "dquote"
            elif char == "'":
                state = "squote"
            elif char == "\\":
                state = "escape"
            elif char == "#":
                state = "comment"
            else:
                word.append(char)
                state = "word"
        elif state == "word":
            if char is None or char in " \t\r\n":
                words.append("".join(word))
                state = "start"
            elif char == '"':
                state = "dquote"
            elif char == "'":
                state = "squote"
            elif char == "\\":
                state = "escape"
            else:
                word.append(char)
        elif state == "escape":
            if char is None:
                raise GoError("EOF found after escape character")
            word.append(char)
            state = "word"
        elif state == "dquote_escape":
            if char is None:
                raise GoError("EOF found after escape character")
            word.append(char)
            state = "dquote"
        elif state == "dquote":
            if char is None:
                raise GoError("EOF found when expecting closing quote")
            if char == '"':
                state = "word"
            elif char == "\\":
                state = "dquote_escape"
            else:
                word.append(char)
        elif state == "squote":
            if char is None:
                raise GoError("EOF found when expecting closing quote")
            if char == "'":
                state = "word"
            else:
                word.append(char)
        elif state == "comment" and (char is None or char == "\n"):
            state = "start"
    return words


# --- strconv ------------------------------------------------------------------------------


def atoi(text: str) -> int:
    """``strconv.Atoi``: base 10 with an optional sign, nothing else."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise GoError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text, 10)
    if not -(2**63) <= value <= INT64_MAX:
        raise GoError(f'strconv.Atoi: parsing "{text}": value out of range')
    return value


def parse_float(text: str) -> float:
    """``strconv.ParseFloat(s, 64)`` for the decimal forms compose files use."""
    lowered = text.lower().lstrip("+-")
    if lowered in ("inf", "infinity", "nan") or _GO_FLOAT.match(text):
        return float(text)
    raise GoError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')


def parse_go_bool(text: str) -> bool:
    """The CLI's ``toBoolean`` for interpolated values (YAML 1.1 words)."""
    lowered = text.lower()
    if lowered in ("y", "yes", "true", "on"):
        return True
    if lowered in ("n", "no", "false", "off"):
        return False
    raise GoError(f"invalid boolean: {text}")
