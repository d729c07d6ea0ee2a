"""Figures and how they are printed: medians, ratios, targets, the machine they came from.

Every benchmark returns a ``Section``: rows of named figures (seconds, counts, bytes)
plus the targets of SPEC.md section 7 it checks. ``__main__`` prints the sections as
they finish and a summary of the targets at the end, and can write all of it as JSON.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else float("nan")


@dataclass(frozen=True)
class Sample:
    """Repeated measurements of one quantity (seconds unless ``unit`` says otherwise)."""

    values: tuple[float, ...]
    unit: str = "s"

    @staticmethod
    def of(values: Iterable[float], unit: str = "s") -> Sample:
        return Sample(tuple(values), unit)

    @property
    def median(self) -> float:
        return median(self.values)

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float("nan")

    def text(self, spread: bool = True) -> str:
        if not self.values:
            return "-"
        mid = fmt(self.median, self.unit)
        if not spread or len(self.values) < 2:
            return mid
        return f"{mid} [{fmt(self.low, self.unit)}..{fmt(self.high, self.unit)}]"


def signed(value: float, unit: str = "s") -> str:
    """A difference: ``+0.21 s``, ``-30 ms``."""
    return ("-" if value < 0 else "+") + fmt(abs(value), unit)


def fmt(value: float, unit: str = "s") -> str:
    if value != value:  # NaN
        return "-"
    if unit == "s":
        if abs(value) < 0.01:
            return f"{value * 1000:.1f} ms"
        if abs(value) < 0.1:
            return f"{value * 1000:.0f} ms"
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "us":
        return f"{value:.0f} µs"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g}{(' ' + unit) if unit else ''}"


@dataclass(frozen=True)
class Target:
    """One target of SPEC.md section 7 and whether this run met it."""

    name: str
    goal: str
    measured: str
    met: bool | None  # None: could not be measured in this run
    note: str = ""

    def line(self) -> str:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[self.met]
        note = f"  ({self.note})" if self.note else ""
        return f"  [{mark}] {self.name}: {self.measured} (target {self.goal}){note}"


@dataclass
class Section:
    title: str
    what: str
    header: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def render(self) -> str:
        out = [f"== {self.title} ==", *wrap(self.what, 92), ""]
        if self.header:
            out += table(self.header, self.rows)
        for title, header, rows in self.tables:
            out += ["", *wrap(title, 92), *table(header, rows)]
        if self.notes:
            out.append("")
            for note in self.notes:
                first, *rest = wrap(note, 90)
                out.append(f"- {first}")
                out += [f"  {line}" for line in rest]
        if self.targets:
            out.append("")
            out += [t.line() for t in self.targets]
        out.append(f"({self.seconds:.0f} s)")
        return "\n".join(out)


def wrap(text: str, width: int) -> list[str]:
    words = text.split()
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines or [""]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def ratio(value: float, floor: float) -> str:
    if floor != floor or value != value or floor <= 0:
        return "-"
    return f"{value / floor:.2f}x"


# --- the machine -----------------------------------------------------------------------


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def _first(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _engine_version(docker_host: str | None) -> str:
    if not docker_host:
        return "-"
    proc = subprocess.run(
        ["docker", "-H", docker_host, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.stdout.strip() or "?"


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory: str
    kernel: str
    python: str
    docker: str
    load_start: tuple[float, float, float]

    @staticmethod
    def describe(docker_host: str | None) -> Machine:
        return Machine(
            cpus=os.cpu_count() or 0,
            cpu_model=_first("/proc/cpuinfo", "model name"),
            memory=_first("/proc/meminfo", "MemTotal"),
            kernel=platform.release(),
            python=platform.python_version(),
            docker=_engine_version(docker_host),
            load_start=loadavg(),
        )

    def text(self) -> str:
        one, five, fifteen = self.load_start
        return (
            f"machine: {self.cpus} CPUs ({self.cpu_model}), {self.memory} RAM, "
            f"Linux {self.kernel}, Python {self.python}, dockerd {self.docker}; "
            f"load average at start {one:.2f} {five:.2f} {fifteen:.2f}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
