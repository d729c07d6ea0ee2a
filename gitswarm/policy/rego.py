"""Custom policies: ``policies/*.rego`` evaluated by a real Rego engine (regopy, rego-cpp).

gate.py calls :func:`evaluate_rego` with the policy texts (path -> source; the caller reads
the files, nothing here does I/O) and the input document of :func:`input_document`.

The input document (``input`` in Rego)::

    {
      "app": "medianest", "env": "production", "stack": "medianest-production",
      "revision": "<commit sha>" | null,       # null: an uncommitted working tree
      "files": ["base/docker-compose.yml", "environments/production/docker-compose.yml"],
      "compose": {...},                        # the rendered stack: merged, interpolated
      "services": {...},                       # = compose.services
      "now": "2025-06-02T08:00:00+00:00",      # the evaluation's clock, UTC
      "window": {"open": true, "reason": "...", "next_open": null, "closes_at": "..."} | null,
      "commit": {"sha", "author", "email", "message", "time", ...} | null,
      "context": {...}                         # everything the caller passed as context
    }

``data.gitswarm.params`` holds the environment's ``policies.rego.params`` from
gitswarm.yml, so one policy can serve every environment with different values. Policies
that care about time should read ``input.now`` (the gate's clock), not ``time.now_ns()``.

Each package's ``deny`` and ``warn`` rules are read: sets of messages, written either way
(``deny contains msg if {...}`` or the older ``deny[msg] {...}``). A message is a string,
or an object ``{"msg": "...", "service": "web"}`` whose service gives the result its
file:line in the compose files and lets a per-service exemption apply.

Errors never pass silently: a syntax error names the file, line and column; a runtime
error (conflicting values, a built-in failing -- built-in errors are strict here, not
"undefined") names the package's files; either blocks the deploy, whatever the mode.

Beware, unlike OPA: rego-cpp 1.5 does not reject an unsafe variable (``msg := typo``);
the rule is simply never true. Test new policies against a stack that must fail.

regopy quirks handled here, found by trying them: compile errors also get printed to
stdout unless the log level is NONE (which would corrupt ``--json`` output); some errors
come back as an output that is not JSON; rego-cpp speaks Rego v1, where ``deny[msg] {}``
defines an object ``{msg: true}`` rather than a set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from regopy import Input, Interpreter, LogLevel, RegoError

from gitswarm.model.policy import WindowState
from gitswarm.model.stack import DesiredStack

PARAMS_NAMESPACE = "gitswarm"  # data.gitswarm.params


@dataclass(frozen=True, slots=True)
class RegoMessage:
    package: str
    files: tuple[str, ...]
    kind: str  # "deny" | "warn"
    message: str
    service: str | None = None


@dataclass(frozen=True, slots=True)
class RegoFailure:
    file: str | None
    message: str
    package: str | None = None
    line: int | None = None
    column: int | None = None


@dataclass
class RegoOutcome:
    messages: list[RegoMessage] = field(default_factory=list)
    failures: list[RegoFailure] = field(default_factory=list)


def input_document(
    stack: DesiredStack,
    *,
    now: datetime,
    window: WindowState | None,
    context: Mapping[str, Any] | None,
) -> dict[str, Any]:
    compose = plain(stack.compose)
    ctx = plain(context or {})
    return {
        "app": stack.app,
        "env": stack.env,
        "stack": stack.stack,
        "revision": stack.revision,
        "files": list(stack.files),
        "compose": compose,
        "services": compose.get("services") or {},
        "now": now.astimezone(UTC).isoformat(),
        "window": window.to_dict() if window is not None else None,
        "commit": ctx.get("commit"),
        "context": ctx,
    }


def plain(value: Any) -> Any:
    """JSON-shaped data: string keys, lists, scalars; dates as ISO text."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return [plain(v) for v in sorted(value, key=str)]
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"  # never a value that could be a secret
    return str(value)


def evaluate_rego(
    sources: Mapping[str, str], document: Mapping[str, Any], params: Mapping[str, Any]
) -> RegoOutcome:
    outcome = RegoOutcome()
    if not sources:
        return outcome
    rego = Interpreter()
    rego.log_level = LogLevel.NONE
    rego.strict_built_in_errors = True
    packages: dict[str, list[str]] = {}
    for path in sorted(sources):
        text = sources[path]
        try:
            rego.add_module(path, text)
        except RegoError as exc:
            outcome.failures.extend(_compile_failures(str(exc), path, sources))
            continue
        package = _package(text)
        if package is None:  # rego-cpp would have refused it; stay safe anyway
            outcome.failures.append(RegoFailure(path, "has no package declaration"))
            continue
        packages.setdefault(package, []).append(path)
    if not packages:
        return outcome
    try:
        rego.add_data({PARAMS_NAMESPACE: {"params": plain(params)}})
        rego.set_input(Input(plain(document)))
    except (RegoError, ValueError) as exc:
        files = sorted(f for fs in packages.values() for f in fs)
        for path in files:
            outcome.failures.append(RegoFailure(path, f"cannot load the input: {exc}"))
        return outcome
    for package, files in sorted(packages.items()):
        for kind in ("deny", "warn"):
            query = f"data.{package}.{kind}"
            value, errors = _query(rego, query)
            if errors:
                for error in errors:
                    for path in files:
                        outcome.failures.append(
                            RegoFailure(path, f"{query}: {error}", package=package)
                        )
                continue
            try:
                found = _messages(value)
            except TypeError as exc:
                for path in files:
                    outcome.failures.append(RegoFailure(path, f"{query}: {exc}", package=package))
                continue
            outcome.messages.extend(
                RegoMessage(package, tuple(files), kind, message, service)
                for message, service in found
            )
    return outcome


_PACKAGE = re.compile(r"^\s*package\s+([^\s#]+)", re.MULTILINE)


def _package(text: str) -> str | None:
    match = _PACKAGE.search(text)
    return match.group(1) if match else None


def _query(rego: Any, query: str) -> tuple[Any, list[str]]:
    """The value of ``query`` (None if undefined), or the engine's error messages."""
    try:
        out = rego.query(query)
    except RegoError as exc:
        return None, _error_messages(str(exc)) or [str(exc)]
    except ValueError as exc:
        # regopy parses its output as JSON; an error node is not JSON. The text is kept
        # on the JSONDecodeError.
        text = str(getattr(exc, "doc", "")) or str(exc)
        return None, _error_messages(text) or [text.strip()]
    if not out.ok():
        node = out.node()
        errors: list[str] = []
        for index in range(len(node)):
            errors.extend(_error_messages(node.at(index).json()))
        return None, errors or ["evaluation failed without a message"]
    if not out.results or not out.results[0].expressions:
        return None, []
    return out.results[0].expressions[0], []


def _messages(value: Any) -> list[tuple[str, str | None]]:
    """The (message, service) pairs of a ``deny``/``warn`` value."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        # rego-cpp reads the v0 `deny[msg] { ... }` as an object {msg: true}.
        return [
            (str(k) if v is True else f"{k}: {_text(v)}", None) for k, v in sorted(value.items())
        ]
    if not isinstance(value, list):
        raise TypeError(f"must be a set of messages, not {type(value).__name__} {value!r}")
    found: list[tuple[str, str | None]] = []
    for item in value:
        if isinstance(item, Mapping) and isinstance(item.get("msg"), str):
            service = item.get("service")
            found.append((item["msg"], service if isinstance(service, str) else None))
        else:
            found.append((_text(item), None))
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# rego-cpp error texts are S-expressions with length-prefixed strings:
#   (error 8:bad.rego|48|2 (errormsg 27:Invalid assignment operator) ...)
# where |48|2 is the byte offset and length in the file.
_ERROR = re.compile(rb"\(error(?:\s+(\d+):)?")
_ERRMSG = re.compile(rb"\(errormsg (\d+):")


@dataclass(frozen=True, slots=True)
class _Parsed:
    message: str
    file: str | None
    offset: int | None


def _parse_errors(text: str) -> list[_Parsed]:
    data = text.encode()
    found: list[_Parsed] = []
    for match in _ERROR.finditer(data):
        file = offset = None
        pos = match.end()
        if match.group(1) is not None:
            size = int(match.group(1))
            file = data[pos : pos + size].decode(errors="replace")
            rest = re.match(rb"\|(\d+)\|(\d+)", data[pos + size :])
            if rest:
                offset = int(rest.group(1))
        msg = _ERRMSG.search(data, pos)
        if msg is None:
            continue
        size = int(msg.group(1))
        message = data[msg.end() : msg.end() + size].decode(errors="replace")
        found.append(_Parsed(message=message, file=file, offset=offset))
    return found


def _error_messages(text: str) -> list[str]:
    return [p.message for p in _parse_errors(text)]


def _compile_failures(text: str, path: str, sources: Mapping[str, str]) -> list[RegoFailure]:
    parsed = _parse_errors(text)
    if not parsed:
        return [RegoFailure(path, text.strip() or "cannot compile")]
    failures = []
    for p in parsed:
        file = p.file if p.file is not None and p.file in sources else path
        line = column = None
        if p.offset is not None:
            line, column = _position(sources[file], p.offset)
        failures.append(RegoFailure(file, p.message, line=line, column=column))
    return failures


def _position(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    data = source.encode()
    offset = min(offset, len(data))
    start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode(errors="replace")) + 1
    return line, column
