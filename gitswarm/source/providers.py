"""External secret providers: a value from a command the operator defined (I/O edge).

A compose file may take a secret's value from a provider instead of an ``*.age`` file::

    secrets:
      db_password:
        x-gitswarm-provider: {name: vault, key: medianest/db}   # compose 3.7+ (x- keys)

The command is the operator's, never the repository's -- an argv chosen by whoever can
push would run anything on the agent's host. The agent config defines each provider
(``gitswarm serve --config FILE``; the CLI reads the same file, cli/operator.py)::

    providers:
      vault:
        argv: [/usr/bin/vault, kv, get, "-field=value", "secret/{env}/{key}"]
        environments: [production]     # which environments may use it (required)
        timeout: 10                    # seconds (default 10, at most 120)
        max_bytes: 65536               # the value's limit (default 64 KiB, < 500 KiB)
        pass_env: [VAULT_ADDR, VAULT_TOKEN]   # variables of the agent's environment
        env: {VAULT_FORMAT: json}      # fixed variables
        keep_newline: false            # default: one trailing newline is dropped
      onepassword: {argv: [op, read, "op://prod/{key}"], environments: [production]}

The repository chooses only the provider's name and the key. ``{key}`` and ``{env}`` are
the only placeholders, never in argv[0]; the key is checked against a narrow pattern
(model/stack.py ``provider_key_problem``: no leading ``-``, no ``..``, no spaces or shell
or URL syntax) and fills the placeholder inside a single argv element. No shell is ever
involved. The command runs with stdin closed, in ``/``, with only PATH, HOME, LANG and
the variables named by ``pass_env``/``env`` -- never the agent's whole environment,
which holds the age identities. Its stdout is the value: read into memory, bounded by
``max_bytes`` and ``timeout`` (the process group is killed past either), never written
to disk, logged or stored; its stderr (bounded, one line) goes into the error when it
fails, as the operator's command printed it.

``environments:`` keeps one environment from reading another's secrets through a shared
provider: a development stack cannot reference production's vault. reconcile/
rendering.py resolves the values a render needs, before render/ (which stays pure)
names the secret by a keyed hash of its value, so a changed value rolls out as a new
secret version.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import string
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitswarm.errors import ConfigError, Problem, Reason, SecretError
from gitswarm.model.stack import ProviderRef

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 120.0
DEFAULT_MAX_BYTES = 64 * 1024
MAX_BYTES = 500 * 1024 - 1  # Swarm's limit for a secret
STDERR_LIMIT = 4096
RULE_PROVIDER = "secret-provider"
_PLACEHOLDERS = ("key", "env")
_KEYS = ("argv", "environments", "timeout", "max_bytes", "pass_env", "env", "keep_newline")
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL")


@dataclass(frozen=True)
class Provider:
    name: str
    argv: tuple[str, ...]  # argv[0] resolved to an absolute path when loaded
    environments: tuple[str, ...]
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    pass_env: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    keep_newline: bool = False

    def command(self, env: str, key: str) -> list[str]:
        """The argv for one key: each placeholder filled inside its own element."""
        return [self.argv[0], *(a.format(key=key, env=env) for a in self.argv[1:])]

    def environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        out = {k: environ[k] for k in _BASE_ENV if k in environ}
        out.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        out.update({k: environ[k] for k in self.pass_env if k in environ})
        out.update(self.env)
        return out


def run_provider(
    provider: Provider, env: str, key: str, environ: Mapping[str, str] | None = None
) -> bytes:
    """The value ``provider`` prints for ``key`` in environment ``env``; SecretError (no
    value in it) when the command fails, hangs, or prints too much or nothing."""
    environ = os.environ if environ is None else environ
    label = f"provider {provider.name!r} (key {key!r})"
    try:
        process = subprocess.Popen(
            provider.command(env, key),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=provider.environment(environ),
            cwd="/",
            close_fds=True,
            start_new_session=True,  # its own process group: killed whole on timeout
        )
    except OSError as exc:
        raise SecretError(
            f"{label}: cannot run {provider.argv[0]}: {exc.strerror}",
            reason=Reason.SECRET_PROVIDER_FAILED,
        ) from None
    if process.stdout is None or process.stderr is None:  # pragma: no cover - PIPE given
        raise SecretError(f"{label}: no pipes", reason=Reason.SECRET_PROVIDER_FAILED)
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + provider.timeout
    failure: str | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        while selector.get_map() and failure is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failure = f"did not finish within {provider.timeout:g}s (killed)"
                break
            for handle, _ in selector.select(timeout=remaining):
                chunk = os.read(handle.fd, 65536)
                if not chunk:
                    selector.unregister(handle.fileobj)
                    continue
                buffer: bytearray = handle.data
                if buffer is err:
                    err.extend(chunk[: max(0, STDERR_LIMIT - len(err))])
                else:
                    out.extend(chunk)
                    if len(out) > provider.max_bytes:
                        failure = f"printed more than max_bytes ({provider.max_bytes}) (killed)"
                        break
    if failure is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        code = process.wait(timeout=5)
    finally:
        process.stdout.close()
        process.stderr.close()
    if failure is None and code != 0:
        said = " ".join(err.decode("utf-8", "replace").split())[-300:]
        failure = f"exited with {code}" + (f": {said}" if said else "")
    if failure is not None:
        out[:] = b"\0" * len(out)  # no copy of a partial value lingers in this buffer
        raise SecretError(f"{label} {failure}", reason=Reason.SECRET_PROVIDER_FAILED)
    value = bytes(out)
    if not provider.keep_newline:
        value = value.removesuffix(b"\n").removesuffix(b"\r")
    if not value:
        raise SecretError(
            f"{label} printed nothing; Swarm needs a value of at least one byte",
            reason=Reason.SECRET_PROVIDER_FAILED,
        )
    return value


@dataclass(frozen=True)
class ProviderSet:
    """The operator's providers, by name; ``source`` says where they were defined."""

    providers: Mapping[str, Provider] = field(default_factory=dict)
    source: str = "the agent config"

    def resolve(
        self, env: str, refs: Sequence[ProviderRef], environ: Mapping[str, str] | None = None
    ) -> dict[tuple[str, str], bytes]:
        """Every value ``refs`` need, in environment ``env``. A SecretError listing each
        reference that cannot be resolved, at its file:line."""
        values: dict[tuple[str, str], bytes] = {}
        problems: list[Problem] = []
        for ref in refs:
            if (ref.provider, ref.key) in values:
                continue
            try:
                values[(ref.provider, ref.key)] = self._one(env, ref, environ)
            except SecretError as exc:
                problems.append(
                    Problem(
                        f"secret {ref.secret}: {exc.message}",
                        file=ref.file,
                        line=ref.line,
                        column=ref.column,
                        rule=RULE_PROVIDER,
                    )
                )
        if problems:
            reason = Reason.SECRET_PROVIDER_FAILED
            if any("not defined" in p.message or "may not" in p.message for p in problems):
                reason = Reason.SECRET_PROVIDER_REFUSED
            lines = "\n".join(f"  {p}" for p in problems)
            raise SecretError(
                f"cannot resolve the provider secrets of {env}:\n{lines}",
                problems=problems,
                reason=reason,
            )
        return values

    def _one(self, env: str, ref: ProviderRef, environ: Mapping[str, str] | None) -> bytes:
        provider = self.providers.get(ref.provider)
        if provider is None:
            known = ", ".join(sorted(self.providers)) or "none"
            raise SecretError(
                f"provider {ref.provider!r} is not defined in {self.source} (defined: "
                f"{known}); providers are the operator's: add `providers: {{{ref.provider}: "
                "{argv: [...], environments: [...]}}` to the agent config (README, 'Secret "
                "providers')"
            )
        if env not in provider.environments:
            raise SecretError(
                f"environment {env!r} may not use provider {ref.provider!r} (it serves "
                f"{', '.join(provider.environments)}; providers.{ref.provider}.environments "
                f"in {self.source}): one environment never reads another's secrets"
            )
        return run_provider(provider, env, ref.key, environ)


def _template_problem(element: str) -> str | None:
    try:
        fields = list(string.Formatter().parse(element))
    except ValueError as exc:
        return f"{element!r} is not a valid template ({exc}); write {{{{ and }}}} for braces"
    for _text, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in _PLACEHOLDERS or spec or conversion:
            return (
                f"{element!r} uses {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}; the only placeholders are {{key}} and {{env}}"
            )
    return None


def _strings(value: Any, at: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{at} must be a list of {what}")
    return tuple(value)


def parse_providers(
    value: Any,
    where: str,
    *,
    environ: Mapping[str, str] | None = None,
    lines: Mapping[str, int] | None = None,
    path: Path | None = None,
) -> ProviderSet:
    """The agent config's ``providers:`` (module docstring); each command is looked up now,
    so a wrong one stops the agent at start."""
    environ = os.environ if environ is None else environ
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: providers must map names to {{argv: [...], environments: [...]}}"
        )
    providers: dict[str, Provider] = {}
    for name, spec in value.items():
        line = (lines or {}).get(str(name))
        at = f"{path}:{line}: providers.{name}" if path and line else f"{where}: providers.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{at} must be a mapping with argv: and environments:")
        unknown = sorted(set(spec) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
        if "argv" not in spec:
            raise ConfigError(f"{at}: argv: is required (the command, as a list; no shell)")
        argv = list(_strings(spec["argv"], f"{at}.argv", "strings (the command and its arguments)"))
        if _template_problem(argv[0]) is not None or "{" in argv[0]:
            raise ConfigError(f"{at}.argv[0]: the program is fixed; no placeholder in it")
        for index, element in enumerate(argv[1:], start=1):
            problem = _template_problem(element)
            if problem is not None:
                raise ConfigError(f"{at}.argv[{index}]: {problem}")
        program = argv[0]
        resolved = program if "/" in program else shutil.which(program, path=environ.get("PATH"))
        if resolved is None or not os.access(resolved, os.X_OK) or Path(resolved).is_dir():
            raise ConfigError(f"{at}.argv[0]: {program!r} is not an executable on this host")
        argv[0] = str(Path(resolved).absolute())
        if "environments" not in spec:
            raise ConfigError(
                f"{at}: environments: is required: the environments that may read this "
                "provider's secrets (one environment must never read another's)"
            )
        envs = _strings(spec["environments"], f"{at}.environments", "environment names")
        timeout = spec.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigError(f"{at}.timeout must be a number of seconds")
        if not 0 < timeout <= MAX_TIMEOUT:
            raise ConfigError(f"{at}.timeout must be more than 0 and at most {MAX_TIMEOUT:g}")
        limit = spec.get("max_bytes", DEFAULT_MAX_BYTES)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_BYTES:
            raise ConfigError(f"{at}.max_bytes must be a whole number from 1 to {MAX_BYTES}")
        pass_env = _strings(spec.get("pass_env", []), f"{at}.pass_env", "variable names")
        fixed = spec.get("env", {})
        if not isinstance(fixed, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in fixed.items()
        ):
            raise ConfigError(f"{at}.env must map variable names to values")
        for variable in [*pass_env, *fixed]:
            if variable.startswith("GITSWARM_"):
                raise ConfigError(
                    f"{at}: {variable} is gitswarm's own (age identities, tokens); a provider "
                    "never gets it"
                )
        keep = spec.get("keep_newline", False)
        if not isinstance(keep, bool):
            raise ConfigError(f"{at}.keep_newline must be true or false")
        providers[str(name)] = Provider(
            name=str(name),
            argv=tuple(argv),
            environments=envs,
            timeout=float(timeout),
            max_bytes=limit,
            pass_env=pass_env,
            env={str(k): str(v) for k, v in fixed.items()},
            keep_newline=keep,
        )
    return ProviderSet(providers, source=str(path) if path else where)


__all__ = ["Provider", "ProviderSet", "parse_providers", "run_provider"]
