"""Field-level differences between two JSON-like documents (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    before: Any = None
    after: Any = None

    def __str__(self) -> str:
        return f"{self.path}: {_short(self.before)} -> {_short(self.after)}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


def _short(value: Any, limit: int = 80) -> str:
    text = "(unset)" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


def diff(before: Any, after: Any, prefix: str = "") -> Iterator[FieldChange]:
    """Every leaf that differs. Mappings are walked key by key; lists of equal length
    item by item, lists of different length are one change."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            yield from diff(before.get(key, _MISSING), after.get(key, _MISSING), _join(prefix, key))
        return
    if (
        isinstance(before, list)
        and isinstance(after, list)
        and len(before) == len(after)
        and before != after
    ):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from diff(b, a, _join(prefix, i))
        return
    if before is _MISSING and after is _MISSING:
        return
    if before != after:
        yield FieldChange(
            prefix or ".",
            None if before is _MISSING else before,
            None if after is _MISSING else after,
        )
