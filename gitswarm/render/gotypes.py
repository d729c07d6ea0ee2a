"""A tiny model of Go types, so render/ can load, merge and print compose values the way
the Docker CLI does (pure).

``docker stack config`` does not merge YAML trees: it decodes each file into Go structs
(``mapstructure`` with the compose loader's transform hooks), merges the structs with
``dario.cat/mergo`` (override + append-slice + the loader's special cases) and prints
them with ``yaml.v3`` (``omitempty``). The outcome has quirks no tree merge reproduces:
``init: false`` cannot switch off a base's ``init: true``, ``healthcheck.test`` lists are
concatenated, logging options are dropped in one case, ``environment: {A: ""}`` does not
clear a base value. To be exactly the CLI, this module follows the same three steps over
type descriptors (render/composetypes.py holds the compose structs):

- ``decode(data, type)``: mapstructure, with the named type's hook applied first;
- ``merge(dst, src, type)``: mergo's ``deepMerge`` with ``WithOverride`` and
  ``WithAppendSlice``, special merges keyed by type as the loader registers them;
- ``encode(value, type)``: yaml.v3 marshalling with ``omitempty`` and ``MarshalYAML``.

Values: a struct is a dict of all its fields (zero values included), a pointer is its
target or None, slices are lists or None (nil), maps dicts or None, ``any`` is plain data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gitswarm.repo.yamlsrc import YamlTimestamp

Kind = Literal[
    "str",
    "bool",
    "int",
    "uint",
    "float",
    "duration",
    "bytes",
    "ptr",
    "slice",
    "map",
    "struct",
    "any",
]

Hook = Callable[[Any], Any]
MergeFn = Callable[[Any, Any], Any]
MarshalFn = Callable[[Any], Any]


class DecodeError(ValueError):
    """A value cannot be decoded into its Go type; ``path`` says where. ``errors``: every
    value of the document that cannot be decoded (this one first), so that one bad volume
    does not hide the next."""

    def __init__(
        self,
        path: tuple[str | int, ...],
        message: str,
        *,
        errors: Sequence[DecodeError] = (),
    ) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.errors: tuple[DecodeError, ...] = tuple(errors) or (self,)

    @classmethod
    def of(cls, errors: Sequence[DecodeError]) -> DecodeError:
        return cls(errors[0].path, errors[0].message, errors=errors)

    def within(self, prefix: tuple[str | int, ...]) -> DecodeError:
        """The same error seen from ``prefix`` up (merge() reports paths bottom-up)."""
        return DecodeError((*prefix, *self.path), self.message)


def _decode_each(items: Iterable[tuple[Any, Any, GoType, Path]]) -> dict[Any, Any]:
    """Decode (key, data, type, path) items; raise one DecodeError with every failure."""
    out: dict[Any, Any] = {}
    failed: list[DecodeError] = []
    for key, data, t, path in items:
        try:
            out[key] = decode(data, t, path)
        except DecodeError as exc:
            failed.extend(exc.errors)
    if failed:
        raise DecodeError.of(failed)
    return out


@dataclass(eq=False)
class GoType:
    kind: Kind
    name: str = ""
    elem: GoType | None = None
    fields: tuple[GoField, ...] = ()
    hook: Hook | None = None  # mapstructure decode hook for this exact type
    merge: MergeFn | None = None  # mergo transformer for this exact type
    marshal: MarshalFn | None = None  # MarshalYAML


@dataclass(eq=False)
class GoField:
    key: str
    type: GoType
    omitempty: bool = True
    inline: bool = False  # `yaml:",inline"` Extras: x-* keys


STR = GoType("str")
BOOL = GoType("bool")
INT = GoType("int")
UINT = GoType("uint")
FLOAT = GoType("float")
ANY = GoType("any")


def ptr(elem: GoType, **kw: Any) -> GoType:
    return GoType("ptr", elem=elem, **kw)


def slice_of(elem: GoType, **kw: Any) -> GoType:
    return GoType("slice", elem=elem, **kw)


def map_of(elem: GoType, **kw: Any) -> GoType:
    return GoType("map", elem=elem, **kw)


def struct(name: str, *fields: GoField, **kw: Any) -> GoType:
    return GoType("struct", name=name, fields=tuple(fields), **kw)


def f(key: str, type_: GoType, *, omitempty: bool = True) -> GoField:
    return GoField(key, type_, omitempty=omitempty)


def extras() -> GoField:
    return GoField("__extras__", map_of(ANY), inline=True)


# --- zero values and emptiness ----------------------------------------------------------------


def zero(t: GoType) -> Any:
    if t.kind == "str":
        return ""
    if t.kind == "bool":
        return False
    if t.kind in ("int", "uint", "duration", "bytes"):
        return 0
    if t.kind == "float":
        return 0.0
    if t.kind == "struct":
        return {fl.key: zero(fl.type) for fl in t.fields}
    return None


def _elem(t: GoType) -> GoType:
    if t.elem is None:  # pragma: no cover - a descriptor bug
        raise TypeError(f"{t.kind} type {t.name!r} has no element type")
    return t.elem


def is_empty(value: Any, t: GoType) -> bool:
    """mergo's isEmptyValue (dereferencing pointers): structs are never empty."""
    if t.kind == "any":
        if value is None:
            return True
        if isinstance(value, str | list | dict):
            return len(value) == 0
        if isinstance(value, bool):
            return not value
        if isinstance(value, int | float):
            return value == 0
        return False
    if t.kind == "struct":
        return False
    if t.kind == "ptr":
        return value is None or is_empty(value, _elem(t))
    if t.kind in ("slice", "map"):
        return value is None or len(value) == 0
    if t.kind == "bool":
        return not value
    if t.kind == "str":
        return bool(value == "")
    return bool(value == 0)


def is_zero(value: Any, t: GoType) -> bool:
    """yaml.v3's isZero for ``omitempty``: a struct is zero if all its fields are."""
    if t.kind == "struct":
        return all(is_zero(value[fl.key], fl.type) for fl in t.fields)
    if t.kind in ("ptr", "any"):
        return value is None
    if t.kind in ("slice", "map"):
        return value is None or len(value) == 0
    if t.kind == "bool":
        return not value
    if t.kind == "str":
        return bool(value == "")
    return bool(value == 0)


# --- decode: mapstructure -----------------------------------------------------------------------

Path = tuple[str | int, ...]


def _type_word(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "<nil>"


def decode(data: Any, t: GoType, path: Path = ()) -> Any:
    if t.hook is not None and data is not None:
        try:
            data = t.hook(data)
        except DecodeError:
            raise
        except ValueError as exc:
            raise DecodeError(path, str(exc)) from None
    if data is None:
        return zero(t)
    kind = t.kind
    if kind == "any":
        return data
    if kind == "ptr":
        return decode(data, _elem(t), path)
    if kind == "struct":
        if not isinstance(data, dict):
            raise DecodeError(path, f"expected a mapping, got {_type_word(data)}")
        out = zero(t)
        out.update(
            _decode_each(
                (fl.key, data[fl.key], fl.type, (*path, fl.key))
                for fl in t.fields
                if not fl.inline and fl.key in data
            )
        )
        return out
    if kind == "slice":
        if not isinstance(data, list):
            raise DecodeError(path, f"expected a list, got {_type_word(data)}")
        items = _decode_each((i, item, _elem(t), (*path, i)) for i, item in enumerate(data))
        return [items[i] for i in range(len(data))]
    if kind == "map":
        if not isinstance(data, dict):
            raise DecodeError(path, f"expected a mapping, got {_type_word(data)}")
        return _decode_each((str(k), v, _elem(t), (*path, str(k))) for k, v in data.items())
    if kind == "str":
        if isinstance(data, YamlTimestamp):
            raise DecodeError(path, "expected type 'string', got unconvertible type 'time.Time'")
        if not isinstance(data, str):
            raise DecodeError(
                path, f"expected type 'string', got unconvertible type '{_type_word(data)}'"
            )
        return data
    if kind == "bool":
        if not isinstance(data, bool):
            raise DecodeError(
                path, f"expected type 'bool', got unconvertible type '{_type_word(data)}'"
            )
        return data
    if kind in ("int", "uint", "duration", "bytes"):
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise DecodeError(
                path, f"expected type 'int', got unconvertible type '{_type_word(data)}'"
            )
        number = int(data)
        if kind == "uint" and number < 0:
            raise DecodeError(path, f"cannot parse '{number}', {number} overflows uint")
        return number
    if kind == "float":
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise DecodeError(
                path, f"expected type 'float', got unconvertible type '{_type_word(data)}'"
            )
        return float(data)
    raise AssertionError(kind)  # pragma: no cover


# --- merge: mergo.Merge(dst, src, WithOverride, WithAppendSlice, WithTransformers) -------


def merge(dst: Any, src: Any, t: GoType) -> Any:
    """The merged value; ``dst`` and ``src`` are not modified."""
    if t.merge is not None and (t.kind not in ("ptr", "slice", "map") or dst is not None):
        return t.merge(dst, src)
    kind = t.kind
    if kind == "struct":
        out = {}
        for fl in t.fields:
            try:
                out[fl.key] = merge(dst[fl.key], src[fl.key], fl.type)
            except DecodeError as exc:
                raise exc.within(() if fl.inline else (fl.key,)) from None
        return out
    if kind == "map":
        return _merge_map(dst, src, t)
    if kind == "slice":
        if dst is None and not src:
            return dst
        return list(dst or []) + list(src or [])
    if kind == "ptr":
        if src is None:
            return dst
        if dst is None:
            return src
        return merge(dst, src, _elem(t))
    if kind == "any":  # only reached inside maps, handled there
        return src
    # scalars: src wins unless it is empty
    return dst if is_empty(src, t) else src


def _dynamic(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    return "scalar"


def _merge_map(dst: Any, src: Any, t: GoType) -> Any:
    if src is None:
        return dst
    out: dict[str, Any] = {} if dst is None else dict(dst)
    et = _elem(t)
    for key, s in src.items():
        exists = key in out
        d = out.get(key)
        if et.kind == "any":
            if s is None:  # a nil interface overwrites
                out[key] = None
                continue
            dyn = _dynamic(s)
            if dyn == "map":
                if exists and isinstance(d, dict):
                    try:
                        out[key] = _merge_map(d, s, map_of(ANY))
                    except DecodeError as exc:
                        raise exc.within((key,)) from None
            elif dyn == "slice":
                if exists and d is not None and not isinstance(d, list):
                    raise DecodeError(
                        (key,),
                        "cannot append two slices with different type: a list cannot be "
                        "merged over a value that is not a list",
                    )
                out[key] = list(d or []) + list(s)
            keep = dyn == "slice" or (dyn == "map" and isinstance(d, dict))
            if exists and not is_empty(d, ANY) and keep:
                continue
            out[key] = s  # an interface value is not a pointer: override
            continue
        if et.kind in ("map", "slice") and s is None:
            out[key] = None  # a nil map/slice overwrites
            continue
        if et.kind in ("ptr", "map"):
            # deepMerge through a pointer or a map changes the target in place, and
            # the emptiness check below sees the merged value
            if exists and d is not None:
                try:
                    out[key] = merge(d, s, et)
                except DecodeError as exc:
                    raise exc.within((key,)) from None
            check = out.get(key)
        elif et.kind == "slice":
            out[key] = list(d or []) + list(s)
            check = d
        else:  # strings and structs: merged into a copy, which has no effect
            check = d
        if exists and not is_empty(check, et) and et.kind in ("slice", "map"):
            continue
        # a pointer value replaces only a missing or empty entry; anything else overrides
        if et.kind != "ptr" or not exists or is_empty(check, et):
            out[key] = s
    return out


# --- encode: yaml.v3 Marshal ------------------------------------------------------------


def encode_any(value: Any) -> Any:
    """Plain data as yaml.v3 marshals it: a Go time.Time comes out in RFC 3339."""
    if isinstance(value, dict):
        return {k: encode_any(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode_any(v) for v in value]
    if isinstance(value, YamlTimestamp):
        return value.go_rfc3339()
    return value


def encode(value: Any, t: GoType) -> Any:
    if t.kind == "any":
        return encode_any(value)
    if t.marshal is not None:
        return t.marshal(value)
    kind = t.kind
    if kind == "struct":
        out: dict[str, Any] = {}
        inline: dict[str, Any] = {}
        for fl in t.fields:
            v = value[fl.key]
            if fl.inline:
                inline = v or {}
                continue
            if fl.omitempty and is_zero(v, fl.type):
                continue
            out[fl.key] = encode(v, fl.type)
        for key in sorted(inline):
            out[key] = encode_any(inline[key])
        return out
    if kind == "ptr":
        return None if value is None else encode(value, _elem(t))
    if kind == "slice":
        return [encode(v, _elem(t)) for v in value or []]
    if kind == "map":
        return {k: encode(value[k], _elem(t)) for k in sorted(value or {})}
    return value
