"""Running a promotion's gates (edge): HTTP checks, the operator's commands, and the
verdicts the pipeline computed (soak, policy, window). Called by promote/pipeline.py,
once when a promotion is requested and again just before its commit.

Each gate gives a ``GateResult`` (core/message.py) with a one-line summary (goes into the
commit) and its output (shown and stored on failure, never committed).

- ``http``: one GET, only where the operator's ``promotion.http_allow`` lets it go
  (egress.py: the URL and each redirect, up to 5, checked after DNS resolution, and the
  connection made to the checked address), no credentials, no proxy from the
  environment, each attempt bounded by its timeout in all, retried ``retries`` times
  ``interval`` seconds apart; a refused URL fails the gate at once (GateNotAllowed),
  nothing sent. What is recorded is the status line, never the body: the URL comes from
  gitswarm.yml, and whoever can push must not be able to read what the agent's network
  answers.
- ``command``: an operator-defined command (``promotion.commands`` of the agent's or the
  CLI's config, never gitswarm.yml): its argv run without a shell, placeholders
  ``{app} {from} {to} {revision} {images}`` filled in as separate arguments, an
  environment of only PATH, HOME, LANG and ``GITSWARM_PROMOTION_*``, its own process
  group killed at the timeout; exit 0 passes. The last 4 KiB of its output are kept.
  Its program is an absolute path or a bare name on PATH, and it runs in an empty folder
  of its own: nothing of a checkout of the GitOps repository (where `gitswarm promote`
  may be run) is what runs or where it runs. A gate naming a command the operator did
  not define runs nothing and fails as GateNotAllowed, and so does one whose images are
  not plain references (a repository that starts with '-' would pass for an option).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from gitswarm.errors import ConfigError, GateNotAllowed
from gitswarm.promote.core.message import GateResult, one_line
from gitswarm.promote.core.settings import HttpGate, parse_duration
from gitswarm.promote.core.tags import REPOSITORY, TAG
from gitswarm.promote.egress import (
    Egress,
    HttpAllow,
    PinnedBackend,
    PinnedTransport,
    Resolver,
    system_resolve,
)
from gitswarm.source.agentconfig import Where

OUTPUT_LIMIT = 4096
MAX_COMMAND_TIMEOUT = 3600.0
PLACEHOLDERS = ("app", "from", "to", "revision", "images")


@dataclass(frozen=True, slots=True)
class GateCommand:
    """An operator's command a ``command:`` gate may name."""

    name: str
    argv: tuple[str, ...]
    timeout: float = 300.0
    env: Mapping[str, str] = field(default_factory=dict)


def commands_from_mapping(
    data: Any, where: Where | str = "promotion.commands"
) -> dict[str, GateCommand]:
    """``promotion.commands`` of the operator's config::

    commands:
      perf-test: {argv: [/opt/ci/perf-test.sh, "{to}"], timeout: 10m}
      security-scan: {argv: [/usr/local/bin/scan, "{images}"], timeout: 300,
                      env: {SCAN_LEVEL: high}}
    """
    where = Where.of(where)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must map command names to {{argv: [...], timeout: ...}}")
    out: dict[str, GateCommand] = {}
    for name, spec in data.items():
        at = where / str(name)
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{at} must be a mapping with argv: [...]")
        unknown = sorted(set(spec) - {"argv", "timeout", "env"})
        if unknown:
            raise ConfigError(
                f"{at / unknown[0]}: unknown key {unknown[0]!r} (known: argv, env, timeout)"
            )
        argv = spec.get("argv")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and "\x00" not in a for a in argv)
        ):
            raise ConfigError(f"{at / 'argv'} must be a non-empty list of strings (no shell)")
        if "/" in argv[0] and not argv[0].startswith("/"):
            raise ConfigError(
                f"{at / 'argv'}: {argv[0]!r} is a relative path; give the program's absolute path "
                "or a bare name looked up on PATH (commands run in an empty folder of their "
                "own, never in a checkout of the GitOps repository)"
            )
        if "{" in argv[0]:
            raise ConfigError(f"{at / 'argv'}: the program {argv[0]!r} cannot hold a placeholder")
        try:
            timeout = parse_duration(spec.get("timeout", 300)).total_seconds()
        except ValueError as exc:
            raise ConfigError(f"{at / 'timeout'}: {exc}") from None
        if not 0 < timeout <= MAX_COMMAND_TIMEOUT:
            raise ConfigError(f"{at / 'timeout'} must be more than 0 and at most 1h")
        env = spec.get("env") or {}
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ConfigError(f"{at / 'env'} must map names to strings")
        out[str(name)] = GateCommand(str(name), tuple(argv), timeout, dict(env))
    return out


@dataclass(frozen=True)
class GateFacts:
    """What the commands' placeholders and variables say."""

    app: str
    source: str
    target: str
    revision: str | None
    images: Mapping[str, str]  # repository -> new tag

    def values(self) -> dict[str, str]:
        return {
            "app": self.app,
            "from": self.source,
            "to": self.target,
            "revision": self.revision or "",
            "images": " ".join(f"{r}:{t}" for r, t in sorted(self.images.items())),
        }


def run_command(command: GateCommand, facts: GateFacts) -> GateResult:
    name = f"command-{command.name}"
    for repository, tag in sorted(facts.images.items()):
        # They come from the commit: a plain reference only, so that none can pass for
        # an option of the operator's program ("--output=/etc/x").
        if not REPOSITORY.match(repository) or not TAG.match(tag):
            return GateResult(
                name,
                False,
                f"refused: {one_line(repository, 80)}:{one_line(tag, 80)} is not a plain "
                "image reference; nothing run",
                refused=True,
            )
    values = facts.values()
    argv: list[str] = []
    for arg in command.argv:
        if arg == "{images}":
            argv += [f"{r}:{t}" for r, t in sorted(facts.images.items())]
            continue
        for key in PLACEHOLDERS:
            arg = arg.replace("{" + key + "}", values[key])
        argv.append(arg)
    env = {k: v for k in ("PATH", "HOME", "LANG") if (v := os.environ.get(k)) is not None}
    env |= dict(command.env)
    env |= {f"GITSWARM_PROMOTION_{k.upper()}": v for k, v in values.items()}
    started = time.monotonic()
    # An empty folder of its own as the working directory: `gitswarm promote` may run in
    # a clone of the GitOps repository, whose files (a Makefile, a script a relative
    # argument names) are the pusher's, not the operator's.
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryDirectory(prefix="gitswarm-gate-") as cwd,
    ):
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group: killed whole at the timeout
            )
        except OSError as exc:
            return GateResult(
                name, False, f"could not run {argv[0]}: {exc.strerror}", str(exc), 0.0
            )
        try:
            code = proc.wait(timeout=command.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        out.seek(0, os.SEEK_END)
        size = out.tell()
        out.seek(max(0, size - OUTPUT_LIMIT))
        output = out.read().decode("utf-8", errors="replace")
        if size > OUTPUT_LIMIT:
            output = "…" + output
    seconds = time.monotonic() - started
    if code is None:
        return GateResult(name, False, f"timed out after {command.timeout:g}s", output, seconds)
    if code != 0:
        return GateResult(name, False, f"exit {code}", output, seconds)
    return GateResult(name, True, f"exit 0 in {seconds:.1f}s", output, seconds)


HttpClient = Callable[[float, Egress], httpx.Client]
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5


def default_client(timeout: float, egress: Egress) -> httpx.Client:
    """A client that connects only where ``egress`` checked, within its deadline."""
    return httpx.Client(
        transport=PinnedTransport(PinnedBackend(egress)),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def run_http(
    gate: HttpGate,
    allow: HttpAllow,
    client: HttpClient = default_client,
    sleep: Callable[[float], None] = time.sleep,
    resolve: Resolver = system_resolve,
) -> GateResult:
    """``gate``'s GET, its URL and every redirect checked against the operator's
    ``allow`` (egress.py) before anything is sent; a refusal is not retried."""
    started = time.monotonic()
    tries: list[str] = []
    egress = Egress(allow, resolve)
    follow = gate.status not in REDIRECTS
    with client(gate.timeout, egress) as http:
        for attempt in range(gate.retries + 1):
            if attempt:
                sleep(gate.interval)
            egress.deadline = time.monotonic() + gate.timeout
            url = httpx.URL(gate.url)
            hops: list[str] = []
            try:
                for _hop in range(MAX_REDIRECTS + 1):
                    egress.check(url)
                    with http.stream("GET", url) as response:
                        status = response.status_code
                        said = f"{status} {response.reason_phrase}".strip()
                        location = response.headers.get("location")
                    if not (follow and status in REDIRECTS and location):
                        break
                    url = url.join(location)
                    hops.append(f"{said} -> {one_line(str(url), 160)}")
            except GateNotAllowed as exc:
                where = f"{gate.where}: " if gate.where else ""
                how = f" (redirected: {'; '.join(hops)})" if hops else ""
                why = f"{where}gate {gate.name}{how}: {exc}"
                return GateResult(
                    gate.name,
                    False,
                    f"GET {gate.url}: refused, nothing sent to {one_line(str(url), 120)}",
                    "\n".join([*tries, why]),
                    time.monotonic() - started,
                    refused=True,
                )
            except httpx.HTTPError as exc:
                tries.append(f"try {attempt + 1}: {type(exc).__name__}: {one_line(str(exc), 160)}")
                continue
            if hops:
                said += f" after {len(hops)} redirect{'s' if len(hops) > 1 else ''}"
            if status == gate.status:
                seconds = time.monotonic() - started
                return GateResult(
                    gate.name,
                    True,
                    f"GET {gate.url}: {said}" + (f" after {attempt + 1} tries" if attempt else ""),
                    "\n".join([*tries, *hops, f"try {attempt + 1}: {said}"]),
                    seconds,
                )
            tries.append(f"try {attempt + 1}: {said} (expected {gate.status})")
    seconds = time.monotonic() - started
    last = tries[-1].split(": ", 1)[1] if tries else "no answer"
    return GateResult(
        gate.name,
        False,
        f"GET {gate.url}: {last}; {len(tries)} tr{'y' if len(tries) == 1 else 'ies'}",
        "\n".join(tries),
        seconds,
    )


def missing_commands(names: Sequence[str], commands: Mapping[str, GateCommand]) -> list[str]:
    return [n for n in names if n not in commands]


__all__ = [
    "GateCommand",
    "GateFacts",
    "commands_from_mapping",
    "missing_commands",
    "run_command",
    "run_http",
]
