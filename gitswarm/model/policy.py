"""What the policy gate decides: one result per finding, a report per stack, window state.

policy/ produces these; the CLI (`gitswarm policy check`, `validate`), the sync engine and
the agent read them. A report ``blocked`` means nothing may be applied; ``warn`` results
are shown and recorded but do not block.

Statuses of a result:

- ``fail``      the rule is violated (blocks if the rule is ``enforce``, else a warning)
- ``error``     a policy could not be evaluated (Rego syntax/runtime error); always blocks
- ``exempt``    the rule would fail but the service is exempt, with the recorded reason
- ``override``  a closed deployment window was overridden, with the recorded reason
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gitswarm.errors import Problem
from gitswarm.model.stack import SourceLocation

Mode = Literal["enforce", "warn", "off"]
Status = Literal["fail", "error", "exempt", "override"]

WINDOW_RULE = "deployment_windows"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class WindowState:
    """Whether deployments may happen now. ``next_open`` is set while closed (None when no
    opening was found within a year); ``closes_at`` while open and a window will close."""

    open: bool
    reason: str
    next_open: datetime | None = None
    closes_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "reason": self.reason,
            "next_open": _iso(self.next_open),
            "closes_at": _iso(self.closes_at),
        }


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One finding. ``detail`` is the sentence about the service (without the rule name);
    ``message`` names both, for logs and terminals."""

    rule: str  # a built-in rule name, or "rego:<package>" / "rego" for Rego policies
    mode: Literal["enforce", "warn"]
    status: Status
    detail: str
    service: str | None = None
    location: SourceLocation | None = None
    reason: str | None = None  # why a service is exempt / why a window was overridden

    @property
    def message(self) -> str:
        return f"{self.rule}: {self.detail}"

    @property
    def blocking(self) -> bool:
        return self.status == "error" or (self.status == "fail" and self.mode == "enforce")

    def problem(self) -> Problem:
        loc = self.location
        return Problem(
            message=self.detail if self.blocking else f"warning: {self.detail}",
            file=loc.file if loc else None,
            line=loc.line if loc else None,
            column=loc.column if loc else None,
            rule=self.rule,
        )

    def __str__(self) -> str:
        where = ""
        if self.location is not None:
            where = self.location.file
            if self.location.line is not None:
                where += f":{self.location.line}"
            where += ": "
        label = {"fail": self.mode, "error": "error"}.get(self.status, self.status)
        return f"{where}{label}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        loc = self.location
        return {
            "rule": self.rule,
            "mode": self.mode,
            "status": self.status,
            "blocking": self.blocking,
            "service": self.service,
            "message": self.message,
            "detail": self.detail,
            "reason": self.reason,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
        }


@dataclass(frozen=True)
class PolicyReport:
    """Every policy result for one application in one environment at one revision."""

    app: str
    env: str
    stack: str
    revision: str | None
    evaluated_at: datetime
    results: tuple[PolicyResult, ...] = ()
    modes: Mapping[str, Mode] = field(default_factory=dict)  # effective mode of every rule
    window: WindowState | None = None  # None when deployment_windows is off
    override_window: str | None = None  # the reason given for overriding a closed window
    # Where the commit's own policies are looser than settings it cannot loosen (the
    # agent config's floor, the revision deployed last) and what applied instead.
    loosened: tuple[str, ...] = ()

    @property
    def violations(self) -> tuple[PolicyResult, ...]:
        """Enforced failures and evaluation errors: each one blocks the deploy."""
        return tuple(r for r in self.results if r.blocking)

    @property
    def warnings(self) -> tuple[PolicyResult, ...]:
        return tuple(r for r in self.results if r.status == "fail" and r.mode == "warn")

    @property
    def exemptions(self) -> tuple[PolicyResult, ...]:
        return tuple(r for r in self.results if r.status in ("exempt", "override"))

    @property
    def blocked(self) -> bool:
        return any(r.blocking for r in self.results)

    @property
    def only_window_blocks(self) -> bool:
        """Blocked by a closed deployment window and nothing else: waiting helps, unlike
        for any other violation, which needs a new commit."""
        found = self.violations
        return bool(found) and all(r.rule == WINDOW_RULE for r in found)

    def as_problems(self, *, include_warnings: bool = False) -> list[Problem]:
        warnings = self.warnings if include_warnings else ()
        return [r.problem() for r in self.results if r.blocking or r in warnings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "env": self.env,
            "stack": self.stack,
            "revision": self.revision,
            "evaluated_at": self.evaluated_at.isoformat(),
            "blocked": self.blocked,
            "violations": len(self.violations),
            "warnings": len(self.warnings),
            "modes": dict(self.modes),
            "window": self.window.to_dict() if self.window is not None else None,
            "override_window": self.override_window,
            "loosened": list(self.loosened),
            "results": [r.to_dict() for r in self.results],
        }
