"""Custom policies: ``policies/*.rego`` evaluated by a real Rego engine (regopy, rego-cpp).

gate.py calls a :class:`RegoEvaluator` with the policy texts (path -> source; the caller
reads the files, nothing here does I/O) and the input document of :func:`input_document`.
:func:`evaluate_rego` is the evaluation itself, in this process; the agent and the CLI
hand the gate gitswarm/sandbox's evaluator instead, which runs this same function in a
child process bounded in memory and time, with an empty environment (the engine reads
the process environment for ``opa.runtime()``, and a string-doubling policy can take
gigabytes). This module stays pure: the port is a callable, the sandbox is an edge.

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
gitswarm.yml, so one policy can serve every environment with different values.

Rego sees only ``input`` and ``data.gitswarm.params``: no environment, clock, network,
files or randomness. Every built-in function a policy calls must be on
:data:`ALLOWED_BUILTINS` (pure functions of their arguments); any other is refused before
anything is evaluated, with the file and line of the call. Refused, among others:
``opa.runtime`` (the process environment), ``time.now_ns`` (the clock: read ``input.now``)
and the time functions that take a time zone (``time.clock``, ``time.date``,
``time.diff``, ``time.format``, ``time.parse_ns``, ``time.weekday``: the zone database
is files), ``http.send``, ``net.*`` (network, DNS), ``rand.*``, ``uuid.*``, ``io.jwt.*``,
``crypto.x509.*`` and ``crypto.parse_private_keys``, ``providers.aws.sign_req``,
``rego.parse_module``, ``rego.metadata.*``, ``graphql.*``, ``json.match_schema`` and
``json.verify_schema``. The check reads the compiled plan (the bundle rego-cpp builds and
then runs), not the source text, so comments, strings, spacing, ``import`` aliases and
``with`` cannot hide a call. ``print()`` is allowed; its output is discarded.

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
defines an object ``{msg: true}`` rather than a set; one failing statement can come
back as the same error several times (reported once here); ``regoNodeTypeName`` needs a
buffer one byte longer than regopy gives it.

regopy (rego-cpp, ~10 MB of RSS) is imported inside the functions that run the engine:
the CLI and the agent hold only the port here and evaluate in the sandbox's child, which
loads regopy before it says it is ready (sandbox/worker.py).

Why one file (over 450 lines): it is everything that touches regopy -- compiling, the
built-in allow-list read from the compiled plan, the evaluation, and parsing rego-cpp's
error text -- so the quirks above are handled in one place, and the sandbox's child
(sandbox/worker.py) imports this one module and nothing that does I/O.
"""

from __future__ import annotations

import ctypes
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, Protocol

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


class RegoEvaluator(Protocol):
    """The port gate.py evaluates Rego through: :func:`evaluate_rego` itself (tests, and
    the sandbox's child process), or gitswarm/sandbox's bounded child process."""

    def __call__(
        self, sources: Mapping[str, str], document: Mapping[str, Any], params: Mapping[str, Any]
    ) -> RegoOutcome: ...


KINDS = ("deny", "warn")

# The built-in functions a policy may call: pure functions of their arguments, no
# environment, clock, time-zone files, network, randomness or key material. Anything
# else (including built-ins a later rego-cpp adds) is refused; see the module docstring.
ALLOWED_BUILTINS: frozenset[str] = frozenset(
    {
        # operators and the core library
        *("abs", "and", "ceil", "concat", "contains", "count", "div", "endswith", "equal"),
        *("floor", "format_int", "gt", "gte", "indexof", "indexof_n", "intersection"),
        *("is_array", "is_boolean", "is_null", "is_number", "is_object", "is_set"),
        *("is_string", "lower", "lt", "lte", "max", "min", "minus", "mul", "neq", "or"),
        *("plus", "product", "rem", "replace", "round", "sort", "split", "sprintf"),
        *("startswith", "substring", "sum", "to_number", "trim", "trim_left"),
        *("trim_prefix", "trim_right", "trim_space", "trim_suffix", "type_name", "union"),
        *("upper", "walk", "trace"),
        # `x in xs`, `$"template {x}"`, print() (its output is discarded)
        *("internal.member_2", "internal.member_3", "internal.template_string"),
        "internal.print",
        *("array.concat", "array.flatten", "array.reverse", "array.slice"),
        *("object.filter", "object.get", "object.keys", "object.remove", "object.subset"),
        *("object.union", "object.union_n"),
        *("strings.any_prefix_match", "strings.any_suffix_match", "strings.count"),
        *("strings.replace_n", "strings.reverse"),
        *("regex.find_all_string_submatch_n", "regex.find_n", "regex.globs_match"),
        *("regex.is_valid", "regex.match", "regex.replace", "regex.split"),
        "regex.template_match",
        *("glob.match", "glob.quote_meta"),
        *("bits.and", "bits.lsh", "bits.negate", "bits.or", "bits.rsh", "bits.xor"),
        *("numbers.range", "numbers.range_step", "graph.reachable", "graph.reachable_paths"),
        *("json.filter", "json.is_valid", "json.marshal", "json.marshal_with_options"),
        *("json.patch", "json.remove", "json.unmarshal"),
        *("yaml.is_valid", "yaml.marshal", "yaml.unmarshal"),
        *("base64.decode", "base64.encode", "base64.is_valid", "base64url.decode"),
        *("base64url.encode", "base64url.encode_no_pad", "hex.decode", "hex.encode"),
        *("urlquery.decode", "urlquery.decode_object", "urlquery.encode"),
        *("urlquery.encode_object", "uri.is_valid", "uri.parse"),
        *("units.parse", "units.parse_bytes", "semver.compare", "semver.is_valid"),
        *("crypto.md5", "crypto.sha1", "crypto.sha256", "crypto.hmac.equal"),
        *("crypto.hmac.md5", "crypto.hmac.sha1", "crypto.hmac.sha256", "crypto.hmac.sha512"),
        # time arithmetic on input.now and friends: no clock, no time zone
        *("time.add_date", "time.parse_duration_ns", "time.parse_rfc3339_ns"),
    }
)

# Built-ins rego-cpp 1.5 knows (or reserves) that are not allowed: named as built-ins in
# the refusal; any other unknown name is an undefined function.
REFUSED_BUILTINS: frozenset[str] = frozenset(
    {
        "opa.runtime",
        *("time.now_ns", "time.clock", "time.date", "time.diff", "time.format"),
        *("time.parse_ns", "time.weekday"),
        "http.send",
        *("net.cidr_contains", "net.cidr_contains_matches", "net.cidr_expand"),
        *("net.cidr_intersects", "net.cidr_is_valid", "net.cidr_merge", "net.cidr_overlap"),
        "net.lookup_ip_addr",
        *("rand.intn", "uuid.parse", "uuid.rfc4122"),
        *("io.jwt.decode", "io.jwt.decode_verify", "io.jwt.encode_sign"),
        "io.jwt.encode_sign_raw",
        *(f"io.jwt.verify_{alg}" for alg in ("eddsa", "es256", "es384", "es512", "hs256")),
        *(f"io.jwt.verify_{alg}" for alg in ("hs384", "hs512", "ps256", "ps384", "ps512")),
        *(f"io.jwt.verify_{alg}" for alg in ("rs256", "rs384", "rs512")),
        *("crypto.parse_private_keys", "crypto.x509.parse_and_verify_certificates"),
        "crypto.x509.parse_and_verify_certificates_with_options",
        *("crypto.x509.parse_certificate_request", "crypto.x509.parse_certificates"),
        *("crypto.x509.parse_keypair", "crypto.x509.parse_rsa_private_key"),
        "providers.aws.sign_req",
        *("rego.parse_module", "rego.metadata.chain", "rego.metadata.rule"),
        *("graphql.is_valid", "graphql.parse", "graphql.parse_and_verify"),
        *("graphql.parse_query", "graphql.parse_schema", "graphql.schema_is_valid"),
        *("json.match_schema", "json.verify_schema", "strings.render_template"),
        # deprecated: rego-cpp refuses them anyway
        *("any", "all", "re_match", "set_diff", "cast_array", "cast_boolean", "cast_null"),
        *("cast_object", "cast_set", "cast_string"),
    }
)

MAX_MESSAGE_BYTES = 256 * 1024  # per deny/warn rule

REFUSED = "is not allowed in gitswarm policies: Rego sees only input and data.gitswarm.params"


def refusal(name: str) -> str:
    """The message for a call of a function outside :data:`ALLOWED_BUILTINS`."""
    if name not in REFUSED_BUILTINS and name.split(".")[0] not in _NAMESPACES:
        return (
            f"function {name} is not defined: not a rule of these policies, nor a built-in "
            "that gitswarm policies may call"
        )
    message = f"builtin {name} {REFUSED}"
    if name.startswith("time."):
        message += " (the evaluation's clock is input.now, UTC)"
    return message


_NAMESPACES = frozenset(n.split(".")[0] for n in ALLOWED_BUILTINS | REFUSED_BUILTINS if "." in n)


def evaluate_rego(
    sources: Mapping[str, str],
    document: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    allowed: frozenset[str] = ALLOWED_BUILTINS,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    on_stage: Callable[[tuple[str, ...], str | None], None] | None = None,
) -> RegoOutcome:
    """Compile every policy, refuse built-ins outside ``allowed``, then evaluate each
    package's ``deny`` and ``warn``. ``on_stage`` hears which files (and package) are being
    worked on before each step, so a caller that loses the evaluation (killed for its memory) can
    name the file. A rule whose messages add up to more than ``max_message_bytes`` is an
    error: messages go to the terminal, the store and notifications."""
    outcome = RegoOutcome()
    if not sources:
        return outcome
    stage = on_stage or (lambda _files, _package: None)
    from regopy import Input, Interpreter, LogLevel, RegoError  # see the docstring

    rego = Interpreter()
    rego.log_level = LogLevel.NONE
    rego.strict_built_in_errors = True
    packages: dict[str, list[str]] = {}
    for path in sorted(sources):
        stage((path,), None)
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
    files = sorted(f for fs in packages.values() for f in fs)
    stage(tuple(files), None)
    try:
        rego.add_data({PARAMS_NAMESPACE: {"params": plain(params)}})
        bundle = rego.build(None, [_entrypoint(p, k) for p in sorted(packages) for k in KINDS])
    except (RegoError, ValueError) as exc:
        outcome.failures.extend(_compile_failures(str(exc), files[0], sources))
        return outcome
    if not bundle.ok():
        outcome.failures.extend(_compile_failures(bundle.node().json(), files[0], sources))
        return outcome
    refused = _refused_calls(bundle, sources, allowed, files)
    if refused:  # compile time: nothing of any package has run
        outcome.failures.extend(refused)
        return outcome
    try:
        rego.set_input(Input(plain(document)))
    except (RegoError, ValueError) as exc:
        for path in files:
            outcome.failures.append(RegoFailure(path, f"cannot load the input: {exc}"))
        return outcome
    for package, package_files in sorted(packages.items()):
        stage(tuple(package_files), package)
        for kind in KINDS:
            query = f"data.{package}.{kind}"
            entry = _entrypoint(package, kind)
            value, errors = _query(partial(rego.query_bundle_entrypoint, bundle, entry))
            if errors:
                for error in errors:
                    for path in package_files:
                        outcome.failures.append(
                            RegoFailure(path, f"{query}: {error}", package=package)
                        )
                continue
            try:
                found = _messages(value)
            except TypeError as exc:
                for path in package_files:
                    outcome.failures.append(RegoFailure(path, f"{query}: {exc}", package=package))
                continue
            size = sum(len(m.encode()) + len(s or "") for m, s in found)
            if size > max_message_bytes:
                text = (
                    f"{query}: its messages add up to {size} bytes, over the limit of "
                    f"{max_message_bytes} bytes; a message is for a person to read"
                )
                for path in package_files:
                    outcome.failures.append(RegoFailure(path, text, package=package))
                continue
            outcome.messages.extend(
                RegoMessage(package, tuple(package_files), kind, message, service)
                for message, service in found
            )
    return outcome


_PACKAGE = re.compile(r"^\s*package\s+([^\s#]+)", re.MULTILINE)


def _package(text: str) -> str | None:
    match = _PACKAGE.search(text)
    return match.group(1) if match else None


def _entrypoint(package: str, kind: str) -> str:
    """The bundle entry point of ``data.<package>.<kind>``: ``a/b/deny``."""
    return "/".join([*package.split("."), kind])


def _query(run: Callable[[], Any]) -> tuple[Any, list[str]]:
    """The value ``run()`` queries (None if undefined), or the engine's error messages,
    each once."""
    from regopy import RegoError

    try:
        out = run()
    except RegoError as exc:
        return None, _unique(_error_messages(str(exc)) or [str(exc)])
    except ValueError as exc:
        # regopy parses its output as JSON; an error node is not JSON. The text is kept
        # on the JSONDecodeError.
        text = str(getattr(exc, "doc", "")) or str(exc)
        return None, _unique(_error_messages(text) or [text.strip()])
    if not out.ok():
        node = out.node()
        errors: list[str] = []
        for index in range(len(node)):
            errors.extend(_error_messages(node.at(index).json()))
        return None, _unique(errors) or ["evaluation failed without a message"]
    if not out.results or not out.results[0].expressions:
        return None, []
    return out.results[0].expressions[0], []


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- the built-ins a compiled plan calls ---------------------------------------------
#
# rego-cpp compiles the policies into a bundle: a plan per entry point, a function per
# rule, and the table of the built-ins they use. A built-in can only run through a Call
# statement naming it (dynamic calls resolve to rules, "g0.data...", never to built-ins:
# virtual_machine.cc), so the Call statements, and the table for good measure, are every
# built-in the evaluation can reach. The walk reads the node handles through regopy's
# ctypes functions: regopy's Node does not know bundle node kinds, and its
# regoNodeTypeName buffer is one byte short.


# Node kinds that hold no statement: not walked (the walk reads the AST through ctypes, a
# call per node; a bundle is mostly operands).
_LEAVES = frozenset(
    {
        "rego-data",
        "rego-modulefileseq",
        "rego-stringseq",
        "rego-pathseq",
        "rego-irquery",
        "rego-irpath",
        "rego-parameterseq",
        "rego-operandseq",
        "rego-operand",
        "rego-localindex",
        "rego-stringindex",
        "rego-irstring",
        "rego-int32",
        "rego-boolean",
        "rego-builtin-decl",
    }
)


@dataclass(frozen=True, slots=True)
class _Call:
    builtin: str
    call: str  # the call's source text, as the compiler kept it ("" from the table)
    rule: str | None  # the source text of the rule around it


def _builtin_calls(bundle: Any) -> list[_Call]:
    """Every built-in the bundle names: its table and every Call statement."""
    from regopy import rego_shared

    lib = rego_shared.rego
    size, get, value = rego_shared.rego_node_size, rego_shared.rego_node_get, _node_text
    buffer = ctypes.create_string_buffer(128)

    def kind(node: Any) -> str:
        if lib.regoNodeTypeName(node, buffer, 128) != 0:
            return ""  # a name longer than any rego-cpp uses: walk it anyway
        return buffer.value.decode()

    calls: list[_Call] = []
    stack: list[tuple[Any, str | None]] = [(bundle.node()._impl, None)]
    while stack:
        node, rule = stack.pop()
        what = kind(node)
        if what in _LEAVES:
            continue
        count = size(node)
        if what == "rego-function":
            rule = value(node)
        elif what in ("rego-callstmt", "rego-builtinfunction") and count:
            name = value(get(node, 0))
            if not name.startswith("g0."):  # g0.data.*: a rule, not a built-in
                calls.append(_Call(name, value(node) if what == "rego-callstmt" else "", rule))
            if what == "rego-builtinfunction":
                continue
        stack.extend((get(node, i), rule) for i in range(count - 1, -1, -1))
    return calls


def _node_text(node: Any) -> str:
    from regopy import rego_shared

    return str(rego_shared.rego_node_value(node))


def _refused_calls(
    bundle: Any, sources: Mapping[str, str], allowed: frozenset[str], files: list[str]
) -> list[RegoFailure]:
    failures: dict[tuple[str, str, int | None], RegoFailure] = {}
    refused = [c for c in _builtin_calls(bundle) if c.builtin not in allowed]
    for name in dict.fromkeys(c.builtin for c in refused):
        sites = [_locate(c, sources) for c in refused if c.builtin == name and c.call]
        located: list[tuple[str, int | None, int | None]] = [s for s in sites if s is not None]
        if not located:  # only in the built-in table: name the files that spell it
            spelled = [f for f in files if name in sources[f]] or files
            located = [(f, None, None) for f in spelled]
        for file, line, column in located:
            failures.setdefault(
                (name, file, line), RegoFailure(file, refusal(name), line=line, column=column)
            )
    return sorted(failures.values(), key=lambda f: (f.file or "", f.line or 0, f.message))


def _locate(call: _Call, sources: Mapping[str, str]) -> tuple[str, int, int] | None:
    """File, line and column of a call: its rule's text found in a source, the call's
    text found in the rule (not in a comment)."""
    for path in sorted(sources):
        source = sources[path]
        start = source.find(call.rule) if call.rule else -1
        if start >= 0:
            offset = _find_code(source, call.call, start, start + len(call.rule or ""))
            if offset >= 0:
                return (path, *_text_position(source, offset))
    for path in sorted(sources):
        offset = _find_code(sources[path], call.call, 0, len(sources[path]))
        if offset >= 0:
            return (path, *_text_position(sources[path], offset))
    return None


def _find_code(source: str, text: str, start: int, end: int) -> int:
    """The first offset of ``text`` in ``source[start:end]`` outside a ``#`` comment."""
    offset = source.find(text, start, end)
    while offset >= 0 and _in_comment(source, offset):
        offset = source.find(text, offset + 1, end)
    return offset


def _in_comment(source: str, offset: int) -> bool:
    quote = None
    for char in source[source.rfind("\n", 0, offset) + 1 : offset]:
        if quote is None and char == "#":
            return True
        if char in '"`' and quote in (None, char):
            quote = None if quote else char
    return False


def _text_position(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    return source.count("\n", 0, offset) + 1, offset - (source.rfind("\n", 0, offset) + 1) + 1


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
