"""The one exception tree of gitswarm.

Every failure that leaves a module is one of these, with a stable ``reason`` (shown the
same in the CLI, the API, metrics, the store and notifications) and a verdict on whether
retrying can help. Edges translate foreign exceptions (docker-py, git, SQLAlchemy) into
this tree in one place each, with ``raise ... from exc``.

    GitswarmError                      reason              retry  exit
    ├── InputError  (stalling: wait for a new commit or a corrected command)     2
    │   ├── UsageError                 UsageError          no
    │   ├── ConfigError                ConfigInvalid       no
    │   ├── RenderError                RenderFailed        no
    │   │   ├── YamlError              YamlInvalid         no
    │   │   ├── InterpolationError     VariableUnset       no
    │   │   └── PathError              PathOutsideRepo     no
    │   ├── ValidationError            ValidationFailed    no
    │   ├── SecretError                SecretDecryptFailed no
    │   ├── PolicyError                PolicyViolation     no
    │   ├── SignatureError             SignatureRejected   no
    │   ├── DeployRejected             DeployRejected      no (the engine or its CLI refused
    │   │                                                      the stack: wait for a new commit)
    │   └── WindowClosed               DeploymentWindowClosed  no (wait for the window)
    └── OperationError  (the operation failed; the input may be fine)            1
        ├── SourceError                GitFailed           yes
        ├── SwarmError                 SwarmFailed         yes (engine unreachable, a conflict)
        ├── HealthError                HealthTimeout | SwarmRolledBack | TasksFailing  no
        ├── LockedError                Locked              yes
        ├── StoreError                 StoreFailed         yes
        ├── NotFoundError              NotFound            no
        ├── PromotionError             PromotionFailed | GateFailed  no
        └── SandboxError               SandboxFailed       yes  (the Rego child would not start)

Errors that come from reading the repository carry ``problems``: each names the file,
the line and column where known, the rule, and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    rule: str | None = None

    def where(self) -> str:
        if self.file is None:
            return ""
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out

    def __str__(self) -> str:
        where = self.where()
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{where}: {self.message}{rule}" if where else f"{self.message}{rule}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "message": self.message,
        }


class GitswarmError(Exception):
    """Base of every gitswarm error."""

    reason: str = "Error"
    retryable: bool = False
    exit_code: int = 1

    def __init__(
        self,
        message: str = "",
        *,
        problems: Iterable[Problem] = (),
        reason: str | None = None,
    ) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not message and self.problems:
            message = "; ".join(str(p) for p in self.problems)
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "message": self.message,
            "retryable": self.retryable,
            "problems": [p.as_dict() for p in self.problems],
        }


# --- bad input: retrying cannot help until the input changes -------------------------


class InputError(GitswarmError):
    reason = "InvalidInput"
    exit_code = 2


class UsageError(InputError):
    reason = "UsageError"


class ConfigError(InputError):
    reason = "ConfigInvalid"


class RenderError(InputError):
    reason = "RenderFailed"


class YamlError(RenderError):
    reason = "YamlInvalid"


class InterpolationError(RenderError):
    reason = "VariableUnset"


class PathError(RenderError):
    reason = "PathOutsideRepo"


class ValidationError(InputError):
    reason = "ValidationFailed"


class SecretError(InputError):
    reason = "SecretDecryptFailed"


class PolicyError(InputError):
    reason = "PolicyViolation"


class SignatureError(InputError):
    reason = "SignatureRejected"


class WindowClosed(InputError):
    reason = "DeploymentWindowClosed"


class DeployRejected(InputError):
    """``docker stack deploy`` reached the engine (or got as far as converting the file)
    and the stack itself was refused: an unknown mode, a port in use, a mode change Swarm
    does not allow. The same commit would be refused again; `validate` catches what it
    can of these before anything is applied."""

    reason = "DeployRejected"


# --- failed operations ----------------------------------------------------------------


class OperationError(GitswarmError):
    reason = "OperationFailed"
    exit_code = 1


class SourceError(OperationError):
    reason = "GitFailed"
    retryable = True


class SwarmError(OperationError):
    reason = "SwarmFailed"
    retryable = True


class HealthError(OperationError):
    """The deploy went out but did not converge. ``reason`` says how."""

    reason = "HealthTimeout"

    HEALTH_TIMEOUT = "HealthTimeout"
    SWARM_ROLLED_BACK = "SwarmRolledBack"
    TASKS_FAILING = "TasksFailing"
    UPDATE_PAUSED = "UpdatePaused"


class LockedError(OperationError):
    reason = "Locked"
    retryable = True


class StoreError(OperationError):
    reason = "StoreFailed"
    retryable = True


class NotFoundError(OperationError):
    reason = "NotFound"


class PromotionError(OperationError):
    reason = "PromotionFailed"


class SandboxError(OperationError):
    """The child process that evaluates Rego could not be started or spoken to. A policy
    that exhausts it is a PolicyError instead: the commit is at fault, not the machine."""

    reason = "SandboxFailed"
    retryable = True


def collect(problems: Sequence[Problem], error: type[InputError], message: str) -> None:
    """Raise ``error`` carrying every problem at once, if there are any."""
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise error(f"{message}:\n{lines}", problems=problems)
