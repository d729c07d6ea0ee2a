"""YAML as the Docker CLI reads it, with the line and column of every node (pure).

Called by repo/ (gitswarm.yml, applications/*.yml) and render/ (compose files). The
Docker CLI parses compose files with Go's ``gopkg.in/yaml.v3`` into plain maps; this
module reproduces the parts of its behaviour that change values, so that gitswarm reads
exactly what ``docker stack config`` reads:

- plain scalars resolve like yaml.v3: ``true/True/TRUE`` are booleans but ``yes``/``on``
  are strings; ``0400`` is octal (256), ``0o17``, ``0x1F``, ``0b11`` and ``1_000`` are
  integers; ``~``/``null``/empty are null; an unquoted timestamp is a Go time.Time
  (``YamlTimestamp`` here: a string that prints like Go's time);
- merge keys (``<<: *anchor`` or ``<<: [*a, *b]``): keys written in the mapping win, and
  of the merged mappings the later one wins (yaml.v3's order);
- a key written twice in one mapping is an error, as in yaml.v3.

Bounded, so that no file can exhaust the agent (SPEC 6, trust model): mappings and
lists nest at most ``MAX_DEPTH`` levels — checked while composing, before any recursion
could run out of stack, and again once aliases and merge keys are expanded — and a
document expands to at most ``MAX_NODES`` nodes (the "billion laughs").

ruamel.yaml does the scanning and parsing (its events carry positions); the composer
and the scalar resolution are ours. Errors are ``YamlError`` with file, line and column.
Besides the data, ``Document.positions`` maps each path (``("services", "web",
"image")``) to where it was written: the key for a mapping entry, the item for a list.

Why one file (over 450 lines): the composer, the scalar resolution and the bounds work
on one walk over the same nodes.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import Scanner, ScannerError

from gitswarm.errors import Problem, YamlError
from gitswarm.model.position import Path, Position, nearest, problem_at

# A document whose aliases expand beyond this many nodes is refused ("billion laughs").
MAX_NODES = 200_000
# Mappings and lists inside each other, at most (a compose file needs about ten).
MAX_DEPTH = 100
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
_TOO_BIG = (
    f"the document expands to more than {MAX_NODES} nodes (each alias *name repeats its "
    "anchor's value); use fewer aliases or split the file"
)

_TAG_PREFIX = "tag:yaml.org,2002:"


@dataclass
class Document:
    """Parsed YAML: plain data (dict/list/str/int/float/bool/None) and positions."""

    file: str
    data: Any
    positions: dict[Path, Position] = field(default_factory=dict)

    def locate(self, path: Path) -> Position | None:
        """Where ``path`` was written, or its nearest ancestor."""
        return nearest(self.positions, path)

    def problem(self, path: Path, message: str, rule: str) -> Problem:
        return problem_at(self.file, self.positions, path, message, rule)


class _BoundedScanner(Scanner):
    """ruamel's scanner, refusing flow collections (``[[[...`` or ``{a: {a: ...``)
    nested deeper than MAX_DEPTH: it looks ahead along a line at a cost that grows with
    the nesting, so 2,000 ``[`` took seconds before the composer saw an event. The
    open block collections (its indentation stack) count too, so that this check and
    the composer's name the same bracket."""

    def fetch_flow_collection_start(self, token_class: Any, to_push: str) -> None:
        if len(self.indents) + len(self.flow_context) >= MAX_DEPTH:
            mark = self.reader.get_mark()
            raise ScannerError(None, None, f"{_TOO_DEEP}; flatten this part of the file", mark)
        super().fetch_flow_collection_start(token_class, to_push)


# --- the node tree ----------------------------------------------------------------------


@dataclass(eq=False)
class _Node:
    kind: str  # "scalar" | "seq" | "map"
    line: int
    column: int
    tag: str | None = None
    value: str = ""
    style: str | None = None
    items: list[Any] = field(default_factory=list)  # seq: nodes; map: (key, value) pairs
    size: int = 1  # nodes once its aliases are expanded


def _mark(event: Event) -> tuple[int, int]:
    return event.start_mark.line + 1, event.start_mark.column + 1


class _Composer:
    def __init__(self, events: Iterator[Event], file: str) -> None:
        self.events = events
        self.file = file
        self.anchors: dict[str, _Node] = {}

    def error(self, line: int, column: int, message: str) -> YamlError:
        return YamlError(
            problems=[Problem(message, file=self.file, line=line, column=column, rule="yaml")]
        )

    def documents(self) -> list[_Node | None]:
        docs: list[_Node | None] = []
        for event in self.events:
            if isinstance(event, StreamStartEvent | StreamEndEvent):
                continue
            if isinstance(event, DocumentStartEvent):
                self.anchors = {}
                first = next(self.events)
                if isinstance(first, DocumentEndEvent):
                    docs.append(None)
                    continue
                docs.append(self.node(first, 0))
                end = next(self.events)
                if not isinstance(end, DocumentEndEvent):  # pragma: no cover - parser guarantees
                    raise self.error(*_mark(end), "expected the end of the document")
        return docs

    def node(self, event: Event, depth: int) -> _Node:
        """The node starting with ``event``, inside ``depth`` collections."""
        if isinstance(event, AliasEvent):
            target = self.anchors.get(str(event.anchor))
            if target is None:
                raise self.error(*_mark(event), f"unknown anchor {event.anchor!r}")
            return target
        line, column = _mark(event)
        tag = _tag(getattr(event, "tag", None))
        if isinstance(event, ScalarEvent):
            node = _Node("scalar", line, column, tag=tag, value=event.value, style=event.style)
        elif isinstance(event, SequenceStartEvent | MappingStartEvent):
            if depth >= MAX_DEPTH:
                raise self.error(line, column, f"{_TOO_DEEP}; flatten this part of the file")
            return self.collection(event, depth + 1)
        else:  # pragma: no cover - the parser emits nothing else here
            raise self.error(line, column, f"unexpected YAML event {type(event).__name__}")
        self._anchor(event, node)
        return node

    def collection(self, event: Event, depth: int) -> _Node:
        line, column = _mark(event)
        tag = _tag(getattr(event, "tag", None))
        if isinstance(event, SequenceStartEvent):
            node = _Node("seq", line, column, tag=tag)
            self._anchor(event, node)
            for child in self.events:
                if isinstance(child, SequenceEndEvent):
                    break
                item = self.node(child, depth)
                node.items.append(item)
                node.size += item.size
        else:
            node = _Node("map", line, column, tag=tag)
            self._anchor(event, node)
            for child in self.events:
                if isinstance(child, MappingEndEvent):
                    break
                key = self.node(child, depth)
                value = self.node(next(self.events), depth)
                node.items.append((key, value))
                node.size += key.size + value.size
        if node.size > MAX_NODES:
            # refused here, before anything is expanded: an alias bomb costs milliseconds
            raise self.error(line, column, _TOO_BIG)
        return node

    def _anchor(self, event: Event, node: _Node) -> None:
        anchor = getattr(event, "anchor", None)
        if anchor:
            self.anchors[str(anchor)] = node


def _tag(tag: object) -> str | None:
    if tag is None:
        return None
    text = str(tag)
    if text == "!":
        return None
    if text.startswith(_TAG_PREFIX):
        return "!!" + text[len(_TAG_PREFIX) :]
    return text


# --- scalar resolution, as gopkg.in/yaml.v3 does it ---------------------------------------

_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_TIMESTAMP_START = re.compile(r"^[0-9]{4}-")
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))"
    r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(\.\d{1,9})?))?$"
)


class YamlTimestamp(str):
    """An unquoted YAML timestamp, which yaml.v3 decodes into a Go ``time.Time``: it is a
    string to the schema, prints like Go's ``Time.String()`` when a string is needed
    (``fmt.Sprint``), and is written back as RFC 3339 (``go_rfc3339``)."""

    __slots__ = ("parts",)
    parts: tuple[int, int, int, int, int, int, str, int | None]  # y m d H M S frac offset

    def go_string(self) -> str:
        year, month, day, hour, minute, second, frac, offset = self.parts
        text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
        text += frac.rstrip("0").rstrip(".") if frac else ""
        if offset is None or offset == 0:
            return text + " +0000 UTC"
        sign = "-" if offset < 0 else "+"
        zone = f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        return f"{text} {zone} {zone}"

    def go_rfc3339(self) -> YamlTimestamp:
        year, month, day, hour, minute, second, frac, offset = self.parts
        text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        text += frac.rstrip("0").rstrip(".") if frac else ""
        if offset is None or offset == 0:
            text += "Z"
        else:
            sign = "-" if offset < 0 else "+"
            text += f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
        out = YamlTimestamp(text)
        out.parts = self.parts
        return out


def _timestamp(text: str) -> YamlTimestamp | None:
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    g = match.groups()
    year, month, day = int(g[0]), int(g[1]), int(g[2])
    clock = g[3:6] if g[3] is not None else g[8:11]
    frac = (g[6] if g[3] is not None else g[11]) or ""
    zone = g[7] if g[3] is not None else None
    hour, minute, second = (int(c) for c in clock) if clock[0] is not None else (0, 0, 0)
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    offset: int | None = None
    if zone and zone != "Z":
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * (-1 if zone[0] == "-" else 1)
    out = YamlTimestamp(text)
    out.parts = (year, month, day, hour, minute, second, frac, offset)
    return out


class YamlBigInteger(float):
    """An integer written beyond 64 bits (``replicas: 99999999999999999999999``): yaml.v3
    decodes it into a float64 and so does :func:`resolve_plain`, but messages show it as
    ``written``, not as ``1e+23``."""

    __slots__ = ("written",)
    written: str

    def __new__(cls, value: float, written: str) -> YamlBigInteger:
        out = super().__new__(cls, value)
        out.written = written
        return out

    def __reduce__(self) -> tuple[type[YamlBigInteger], tuple[float, str]]:
        return (YamlBigInteger, (float(self), self.written))


_SURROGATE = re.compile("[\ud800-\udfff]")
_DECIMAL = re.compile(r"^[-+]?[0-9]+$")
_SPECIALS: dict[str, Any] = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
    "": None,
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
}
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
INTEGER_RANGE = (_INT64_MIN, _UINT64_MAX)  # what a YAML integer can be (int64 or uint64)


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt/ParseUint with base 0: 0x, 0o, 0b prefixes and legacy 0-octal."""
    sign = 1
    body = text
    if body and body[0] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        return None
    base = 10
    lowered = body.lower()
    if lowered.startswith("0x"):
        base, body = 16, body[2:]
    elif lowered.startswith("0o"):
        base, body = 8, body[2:]
    elif lowered.startswith("0b"):
        base, body = 2, body[2:]
    elif body.startswith("0") and len(body) > 1:
        base, body = 8, body[1:]
    if not body or not all(
        c in "0123456789abcdefABCDEF"[: base if base <= 10 else 22] for c in body
    ):
        return None
    value = sign * int(body, base)
    if value < _INT64_MIN or value > _UINT64_MAX:
        return None
    return value


def resolve_plain(text: str) -> Any:
    """The value of an untagged plain scalar, as yaml.v3 decodes it into ``any``."""
    if text in _SPECIALS:
        return _SPECIALS[text]
    if text == "<<":
        return text
    first = text[:1]
    if first == ".":
        try:
            return float(text)
        except ValueError:
            return text
    if first and (first.isdigit() or first in "+-") and first.isascii():
        if _TIMESTAMP_START.match(text):
            stamp = _timestamp(text)
            if stamp is not None:
                return stamp
        plain = text.replace("_", "")
        number = _go_parse_int(plain)
        if number is not None:
            return number
        if _YAML_FLOAT.match(plain):
            try:
                real = float(plain)
            except ValueError:  # pragma: no cover - the regex admits only floats
                return text
            if _DECIMAL.match(plain) and not _INT64_MIN <= int(plain) <= _UINT64_MAX:
                return YamlBigInteger(real, text)
            return real
    return text


def is_plain_string(text: str) -> bool:
    """True if ``text`` written as a plain scalar reads back as this very string."""
    value = resolve_plain(text)
    if isinstance(text, YamlTimestamp):
        return isinstance(value, YamlTimestamp)
    return type(value) is str and text != "<<"


# --- from nodes to data ---------------------------------------------------------------------


class _Builder:
    def __init__(self, file: str, composer: _Composer) -> None:
        self.file = file
        self.composer = composer
        self.positions: dict[Path, Position] = {}
        self.count = 0
        self.depth = 0  # collections being built, merge keys included
        self.active: set[int] = set()

    def error(self, node: _Node, message: str) -> YamlError:
        return self.composer.error(node.line, node.column, message)

    def build(self, node: _Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.error(node, _TOO_BIG)
        if node.kind == "scalar":
            return self.scalar(node)
        with self.inside(node):
            if node.kind == "seq":
                if node.tag not in (None, "!!seq"):
                    raise self.error(node, f"unsupported tag {node.tag} on a sequence")
                out: list[Any] = []
                for index, item in enumerate(node.items):
                    self.positions.setdefault((*path, index), (item.line, item.column))
                    out.append(self.build(item, (*path, index)))
                return out
            if node.tag not in (None, "!!map"):
                raise self.error(node, f"unsupported tag {node.tag} on a mapping")
            return self.mapping(node, path)

    @contextlib.contextmanager
    def inside(self, node: _Node) -> Iterator[None]:
        """Building ``node``: one level deeper, and not again inside itself."""
        if id(node) in self.active:
            raise self.error(node, "an anchor's value contains an alias to itself")
        if self.depth >= MAX_DEPTH:
            raise self.error(
                node, f"{_TOO_DEEP} once aliases and merge keys (<<) are expanded; flatten it"
            )
        self.active.add(id(node))
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.active.discard(id(node))

    def mapping(self, node: _Node, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        merges: list[_Node] = []
        for key_node, value_node in node.items:
            plain = key_node.kind == "scalar" and key_node.tag is None and key_node.style is None
            if plain and key_node.value == "<<":
                merges.append(value_node)
                continue
            key = self.key(key_node)
            if key in seen:
                raise self.error(
                    key_node, f"mapping key {key!r} already defined at line {seen[key]}"
                )
            seen[key] = key_node.line
            self.positions[(*path, key)] = (key_node.line, key_node.column)
            out[key] = self.build(value_node, (*path, key))
        depth = len(path)
        for merge in merges:
            sources = merge.items if merge.kind == "seq" else [merge]
            for source in sources:
                if source.kind != "map":
                    raise self.error(source, "map merge requires a mapping or a list of mappings")
                outer, self.positions = self.positions, {}
                try:
                    with self.inside(source):
                        merged = self.mapping(source, path)
                finally:
                    inner, self.positions = self.positions, outer
                for key, value in merged.items():
                    if key not in seen:
                        out[key] = value
                for where, pos in inner.items():
                    if where[depth] not in seen:
                        self.positions[where] = pos
        return out

    def key(self, node: _Node) -> str:
        if node.kind != "scalar":
            raise self.error(node, "a mapping key must be a string, not a list or mapping")
        value = self.scalar(node)
        if isinstance(value, YamlTimestamp):
            value = str(value)
        if not isinstance(value, str):
            raise self.error(
                node, f"mapping key {node.value!r} must be a string: quote it ('{node.value}')"
            )
        return value

    def scalar(self, node: _Node) -> Any:
        surrogate = _SURROGATE.search(node.value)
        if surrogate:
            # only a "\uD83D" escape gets here (the reader refuses the raw character);
            # yaml.v3 refuses it too, and no UTF-8 text can hold it
            raise self.error(
                node,
                f"\\u{ord(surrogate.group()):04X} is half of a UTF-16 surrogate pair, not a "
                "character; write the character itself, or \\U and its 8 hex digits",
            )
        tag = node.tag
        if tag is None:
            return resolve_plain(node.value) if node.style is None else node.value
        if tag == "!!str":
            return node.value
        if tag in ("!!int", "!!float", "!!bool", "!!null"):
            value = resolve_plain(node.value)
            if tag == "!!float" and isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            expected = {"!!int": int, "!!float": float, "!!bool": bool, "!!null": type(None)}[tag]
            if type(value) is not expected:
                raise self.error(node, f"cannot decode {node.value!r} as a {tag}")
            return value
        raise self.error(node, f"unsupported YAML tag {tag}")


def _reader_problem(exc: ReaderError, text: str, file: str) -> Problem:
    """A character YAML does not allow (NUL, other control characters), at its line and
    column -- ruamel.yaml's own message names a ``"<file>"`` placeholder and an offset."""
    position = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else 0
    what = "a NUL byte (is it a binary file?)" if code == 0 else f"the character U+{code:04X}"
    return Problem(
        f"{what} is not allowed in YAML; remove it",
        file=file,
        line=line,
        column=column,
        rule="yaml",
    )


def parse_yaml(text: bytes | str, file: str) -> Document:
    """Parse one YAML document. An empty file gives ``data`` None."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise YamlError(
                problems=[
                    Problem(
                        f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8",
                        file=file,
                        rule="yaml",
                    )
                ]
            ) from None
    yaml = YAML(typ="safe", pure=True)
    yaml.Scanner = _BoundedScanner
    composer = _Composer(iter(yaml.parse(io.StringIO(text))), file)
    try:
        documents = composer.documents()
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        message = str(exc.problem or "invalid YAML")
        if exc.context and exc.context_mark is not None:
            where = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
            message += f" ({exc.context} at {where})"
        elif exc.context:
            message += f" ({exc.context})"
        raise YamlError(
            problems=[Problem(message, file=file, line=line, column=column, rule="yaml")]
        ) from None
    except ReaderError as exc:
        raise YamlError(problems=[_reader_problem(exc, text, file)]) from None
    except YAMLError as exc:
        raise YamlError(problems=[Problem(str(exc), file=file, rule="yaml")]) from None
    if len(documents) > 1:
        raise YamlError(
            problems=[
                Problem(
                    f"holds {len(documents)} YAML documents (separated by ---); "
                    "keep one document per file",
                    file=file,
                    rule="yaml",
                )
            ]
        )
    root = documents[0] if documents else None
    builder = _Builder(file, composer)
    data = None if root is None else builder.build(root, ())
    builder.positions[()] = (root.line, root.column) if root is not None else (1, 1)
    return Document(file=file, data=data, positions=builder.positions)


def type_name(value: Any) -> str:
    """How a value's type is called in messages: mapping, list, string, number, ..."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "empty (null)"
    return "a string"
