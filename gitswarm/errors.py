"""The one exception tree of gitswarm, and every reason it reports.

Every failure that leaves a module is one of these errors, with a stable ``reason``, a
member of ``Reason`` (shown the same in the CLI, the API, metrics, the store and
notifications; the store keeps its string value). The reason carries the verdict:

    stalling        bad input: retrying cannot help; wait for a new commit (or a
                    corrected command, or the deployment window)
    transient       the same request can succeed later: the agent retries with backoff
    deploy-failure  the change reached the swarm and did not converge: health Degraded,
                    an automatic rollback where enabled, a change failure for DORA
    failed          the operation failed; not retried by itself
    report          no failure: what an operation or a status says happened

Edges translate foreign exceptions (docker-py, git, SQLAlchemy) into this tree in one
place each, with ``raise ... from exc``. The tree (tests/unit/test_reasons.py checks it
against the code: each class, its reasons, each reason's verdict, nothing missing):

    class                    reasons                                      verdict
    GitswarmError            Error                                        failed
    ├── InputError           InvalidInput                                 stalling  (exit 2)
    │   ├── UsageError       UsageError                                   stalling
    │   ├── ConfigError      ConfigInvalid | TargetNotAllowed             stalling
    │   ├── RenderError      RenderFailed                                 stalling
    │   │   ├── YamlError    YamlInvalid                                  stalling
    │   │   ├── InterpolationError  VariableUnset                         stalling
    │   │   └── PathError    PathOutsideRepo                              stalling
    │   ├── ValidationError  ValidationFailed                             stalling
    │   ├── SecretError      SecretDecryptFailed | SecretKeyMissing       stalling
    │   │                    | SecretKeyInvalid                           stalling
    │   │                    | SecretProviderRefused                      stalling
    │   │                    | SecretProviderMissing                      stalling
    │   │                    | SecretProviderFailed                       transient
    │   ├── PolicyError      PolicyViolation                              stalling
    │   ├── SignatureError   SignatureRejected | SignatureSetupFailed     stalling
    │   ├── DeployRejected   DeployRejected                               stalling
    │   └── WindowClosed     DeploymentWindowClosed                       stalling
    └── OperationError       OperationFailed                              failed    (exit 1)
        ├── SourceError      GitFailed                                    transient
        ├── SwarmError       SwarmFailed                                  transient
        ├── HealthError      HealthTimeout | SwarmRolledBack              deploy-failure
        │                    | TasksFailing | UpdatePaused                deploy-failure
        ├── LockedError      Locked                                       transient
        ├── BusyError        Busy                                         transient
        ├── StoreError       StoreFailed                                  transient
        ├── NotFoundError    NotFound                                     failed
        ├── PromotionError   PromotionFailed | GateFailed                 failed
        │   └── GateNotAllowed  GateNotAllowed                            stalling
        ├── RegistryError    RegistryFailed                               transient
        └── SandboxError     SandboxFailed                                transient

    at the HTTP edge (api/errors.py)
    Unauthorized             Unauthorized                                 stalling
    Forbidden                Forbidden                                    stalling
    MethodNotAllowed         MethodNotAllowed                             stalling
    PayloadTooLarge          PayloadTooLarge                              stalling
    InternalError            InternalError                                failed
    (other HTTP statuses)    HTTPError                                    failed

    no error: recorded on operations and statuses
    (sync skipped)           RevisionMarkedBad                            stalling
    (sync held: depends_on)  DependencyNotReady                           report
    (heal paused)            HealLoop                                     stalling
    (drift operation)        Drift                                        report
    (drift undone)           DriftResolved                                report
    (operation of a dead agent)  Interrupted                              report
    (rolled back by hand)    RolledBack                                   report
    (a sync that crashed)    Unknown                                      failed
    (promotion waits)        ApprovalRequired                             report
    (automation held back)   HoldActive                                   report
    (pending, ended)         PromotionExpired | PromotionRejected         report

Errors that come from reading the repository carry ``problems``: each names the file,
the line and column where known, the rule, and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Verdict = Literal["stalling", "transient", "deploy-failure", "failed", "report"]


class Reason(StrEnum):
    """Every reason gitswarm reports, with its verdict (the module docstring draws them).
    A StrEnum: equal to, and stored as, its string value."""

    ERROR = "Error"
    # bad input
    INVALID_INPUT = "InvalidInput"
    USAGE = "UsageError"
    CONFIG_INVALID = "ConfigInvalid"
    TARGET_NOT_ALLOWED = "TargetNotAllowed"  # a commit moved an environment's target
    RENDER_FAILED = "RenderFailed"
    YAML_INVALID = "YamlInvalid"
    VARIABLE_UNSET = "VariableUnset"
    PATH_OUTSIDE_REPO = "PathOutsideRepo"
    VALIDATION_FAILED = "ValidationFailed"
    SECRET_DECRYPT_FAILED = "SecretDecryptFailed"  # noqa: S105 - a reason, no secret
    SECRET_KEY_MISSING = "SecretKeyMissing"  # noqa: S105 - a reason, no secret
    SECRET_KEY_INVALID = "SecretKeyInvalid"  # noqa: S105 - a reason, no secret
    # the operator's secret providers (source/providers.py): a provider not defined or
    # not allowed for the environment; a value not resolved before render (internal);
    # the provider's command failed or timed out (its store may be down: retried)
    SECRET_PROVIDER_REFUSED = "SecretProviderRefused"  # noqa: S105 - a reason, no secret
    SECRET_PROVIDER_MISSING = "SecretProviderMissing"  # noqa: S105 - a reason, no secret
    SECRET_PROVIDER_FAILED = "SecretProviderFailed"  # noqa: S105 - a reason, no secret
    POLICY_VIOLATION = "PolicyViolation"
    SIGNATURE_REJECTED = "SignatureRejected"
    SIGNATURE_SETUP_FAILED = "SignatureSetupFailed"
    DEPLOY_REJECTED = "DeployRejected"
    DEPLOYMENT_WINDOW_CLOSED = "DeploymentWindowClosed"
    # failed operations
    OPERATION_FAILED = "OperationFailed"
    GIT_FAILED = "GitFailed"
    SWARM_FAILED = "SwarmFailed"
    HEALTH_TIMEOUT = "HealthTimeout"
    SWARM_ROLLED_BACK = "SwarmRolledBack"
    TASKS_FAILING = "TasksFailing"
    UPDATE_PAUSED = "UpdatePaused"
    LOCKED = "Locked"
    BUSY = "Busy"  # every slot of a bounded resource (argon2 sign-ins) stayed taken
    STORE_FAILED = "StoreFailed"
    NOT_FOUND = "NotFound"
    PROMOTION_FAILED = "PromotionFailed"
    GATE_FAILED = "GateFailed"
    # a gate the operator's config refuses: an http URL outside promotion.http_allow, a
    # command not in promotion.commands; nothing was sent or run
    GATE_NOT_ALLOWED = "GateNotAllowed"
    REGISTRY_FAILED = "RegistryFailed"
    SANDBOX_FAILED = "SandboxFailed"
    # the HTTP edge
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    INTERNAL_ERROR = "InternalError"
    HTTP_ERROR = "HTTPError"
    # no error
    REVISION_MARKED_BAD = "RevisionMarkedBad"
    DEPENDENCY_NOT_READY = "DependencyNotReady"  # depends_on: held until that converges
    HEAL_LOOP = "HealLoop"
    DRIFT = "Drift"
    DRIFT_RESOLVED = "DriftResolved"  # the drift check sees Git and the swarm agree again
    INTERRUPTED = "Interrupted"
    ROLLED_BACK = "RolledBack"
    UNKNOWN = "Unknown"
    # promotion (promote/): what became of a promotion, no error
    APPROVAL_REQUIRED = "ApprovalRequired"
    HOLD_ACTIVE = "HoldActive"
    PROMOTION_EXPIRED = "PromotionExpired"
    PROMOTION_REJECTED = "PromotionRejected"

    @property
    def verdict(self) -> Verdict:
        return _VERDICTS.get(self, "stalling")

    @property
    def stalling(self) -> bool:
        """Retrying cannot help: wait for a new commit (or a corrected command)."""
        return self.verdict == "stalling"

    @property
    def transient(self) -> bool:
        """The same request can succeed later: retry with backoff."""
        return self.verdict == "transient"

    @property
    def deploy_failure(self) -> bool:
        """The change reached the swarm and did not converge."""
        return self.verdict == "deploy-failure"

    @property
    def degrades(self) -> bool:
        """Whether a failed sync with this reason leaves the app Degraded: the deploy
        went out and failed, or the engine failed part-way through applying it."""
        return self.deploy_failure or self is Reason.SWARM_FAILED

    @classmethod
    def with_verdict(cls, verdict: Verdict) -> frozenset[Reason]:
        return frozenset(r for r in cls if r.verdict == verdict)


# Every reason not named here is stalling (bad input, or waiting for a person).
_VERDICTS: dict[Reason, Verdict] = {
    Reason.ERROR: "failed",
    Reason.OPERATION_FAILED: "failed",
    Reason.GIT_FAILED: "transient",
    Reason.SWARM_FAILED: "transient",
    Reason.SECRET_PROVIDER_FAILED: "transient",
    Reason.HEALTH_TIMEOUT: "deploy-failure",
    Reason.SWARM_ROLLED_BACK: "deploy-failure",
    Reason.TASKS_FAILING: "deploy-failure",
    Reason.UPDATE_PAUSED: "deploy-failure",
    Reason.LOCKED: "transient",
    Reason.BUSY: "transient",
    Reason.STORE_FAILED: "transient",
    Reason.NOT_FOUND: "failed",
    Reason.PROMOTION_FAILED: "failed",
    Reason.GATE_FAILED: "failed",
    Reason.REGISTRY_FAILED: "transient",
    Reason.SANDBOX_FAILED: "transient",
    Reason.INTERNAL_ERROR: "failed",
    Reason.HTTP_ERROR: "failed",
    Reason.DRIFT: "report",
    Reason.DRIFT_RESOLVED: "report",
    Reason.INTERRUPTED: "report",
    Reason.ROLLED_BACK: "report",
    Reason.DEPENDENCY_NOT_READY: "report",
    Reason.UNKNOWN: "failed",
    Reason.APPROVAL_REQUIRED: "report",
    Reason.HOLD_ACTIVE: "report",
    Reason.PROMOTION_EXPIRED: "report",
    Reason.PROMOTION_REJECTED: "report",
}


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

    reason: Reason = Reason.ERROR
    exit_code: int = 1

    def __init__(
        self,
        message: str = "",
        *,
        problems: Iterable[Problem] = (),
        reason: Reason | None = None,
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

    @property
    def retryable(self) -> bool:
        """Whether retrying can help: the reason's verdict (transient)."""
        return self.reason.transient

    def as_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "message": self.message,
            "retryable": self.retryable,
            "problems": [p.as_dict() for p in self.problems],
        }


# --- bad input: retrying cannot help until the input changes -------------------------


class InputError(GitswarmError):
    reason = Reason.INVALID_INPUT
    exit_code = 2


class UsageError(InputError):
    reason = Reason.USAGE


class ConfigError(InputError):
    reason = Reason.CONFIG_INVALID


class RenderError(InputError):
    reason = Reason.RENDER_FAILED


class YamlError(RenderError):
    reason = Reason.YAML_INVALID


class InterpolationError(RenderError):
    reason = Reason.VARIABLE_UNSET


class PathError(RenderError):
    reason = Reason.PATH_OUTSIDE_REPO


class ValidationError(InputError):
    reason = Reason.VALIDATION_FAILED


class SecretError(InputError):
    reason = Reason.SECRET_DECRYPT_FAILED


class PolicyError(InputError):
    reason = Reason.POLICY_VIOLATION


class SignatureError(InputError):
    reason = Reason.SIGNATURE_REJECTED


class WindowClosed(InputError):
    reason = Reason.DEPLOYMENT_WINDOW_CLOSED


class DeployRejected(InputError):
    """``docker stack deploy`` reached the engine (or got as far as converting the file)
    and the stack itself was refused: an unknown mode, a port in use, a mode change Swarm
    does not allow. The same commit would be refused again; `validate` catches what it
    can of these before anything is applied."""

    reason = Reason.DEPLOY_REJECTED


# --- failed operations ----------------------------------------------------------------


class OperationError(GitswarmError):
    reason = Reason.OPERATION_FAILED
    exit_code = 1


class SourceError(OperationError):
    reason = Reason.GIT_FAILED


class SwarmError(OperationError):
    reason = Reason.SWARM_FAILED


class HealthError(OperationError):
    """The deploy went out but did not converge. ``reason`` says how."""

    reason = Reason.HEALTH_TIMEOUT


class LockedError(OperationError):
    reason = Reason.LOCKED


class BusyError(OperationError):
    """Every slot of a bounded resource stayed taken (the argon2 slots of sign-ins)."""

    reason = Reason.BUSY


class StoreError(OperationError):
    reason = Reason.STORE_FAILED


class NotFoundError(OperationError):
    reason = Reason.NOT_FOUND


class PromotionError(OperationError):
    reason = Reason.PROMOTION_FAILED

    GATE_FAILED = Reason.GATE_FAILED
    GATE_NOT_ALLOWED = Reason.GATE_NOT_ALLOWED
    APPROVAL_REQUIRED = Reason.APPROVAL_REQUIRED
    HOLD_ACTIVE = Reason.HOLD_ACTIVE
    EXPIRED = Reason.PROMOTION_EXPIRED
    REJECTED = Reason.PROMOTION_REJECTED


class GateNotAllowed(PromotionError):
    """A gate the operator's config does not allow: an ``http`` gate's URL (or a redirect)
    outside ``promotion.http_allow``, or at an address never reached (promote/egress.py).
    Nothing was sent; the commit or the operator's config must change."""

    reason = Reason.GATE_NOT_ALLOWED


class RegistryError(OperationError):
    """A container registry could not list a repository's tags (down, refused, rate
    limiting): the image automation tries again on its next round."""

    reason = Reason.REGISTRY_FAILED


class SandboxError(OperationError):
    """The child process that evaluates Rego could not be started or spoken to. A policy
    that exhausts it is a PolicyError instead: the commit is at fault, not the machine."""

    reason = Reason.SANDBOX_FAILED


def collect(problems: Sequence[Problem], error: type[InputError], message: str) -> None:
    """Raise ``error`` carrying every problem at once, if there are any."""
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise error(f"{message}:\n{lines}", problems=problems)
