"""``gitswarm serve``: the agent — the loop, webhooks, the HTTP API, /metrics (edge).
Why one file (over 450 lines): the agent config's whole schema, read and checked in one
place, and the wiring of the parts that config feeds.

Settings, first match wins: command-line flags, environment variables, the config file
(``--config``, YAML), the defaults below. Every setting has a default except the
repository.

    repo: https://git.example.com/medianest-gitops.git   # GITSWARM_REPO (or a local path)
    branch: main                  # GITSWARM_BRANCH; default: the remote's default branch
    state: /var/lib/gitswarm/state.db   # GITSWARM_STATE; or postgresql://...
    listen: 127.0.0.1:8080        # GITSWARM_LISTEN
    poll_interval: 30             # GITSWARM_POLL_INTERVAL (seconds; jittered +/-20%)
    drift_interval: 120           # periodic drift check; Docker events catch most sooner
    lease_ttl: 15                 # one active agent per store; a standby waits
    heal_limit: 3                 # the same drift healed 3 times ...
    heal_window: 600              # ... within 10 minutes: stop healing and alert
    environments: []              # only these environments (default: all)
    log_format: text              # GITSWARM_LOG_FORMAT: text | json
    log_level: info
    notifications:                # Apprise URLs per event kind; "*" gets every kind
      sync_failed: ["mailto://..."]
      "*": ["json://127.0.0.1:9000/hook"]
    api:                          # tokens, webhook secrets: see gitswarm/api/settings.py
      webhooks: {github: {env: GITHUB_WEBHOOK_SECRET}}
    verify:                       # pin signed-commit checks per environment (see below)
      production: {mode: ssh, allowed_signers: /etc/gitswarm/allowed_signers}
    policies:                     # the policy floor per environment (see below)
      production: {no_privileged_containers: enforce}
    identities:                   # age identities per environment (see below)
      production: /etc/gitswarm/keys/production.key
    project: medianest            # GITSWARM_PROJECT: whose keys dir is read (see below)
    targets:                      # where each target is, its credentials, its pins
      production: {url: "tcp://10.0.0.5:2376", tls: {ca: ..., cert: ..., key: ...},
                   environments: [production]}           # (swarm/targets.py)
    providers:                    # external secret commands (source/providers.py)
      vault: {argv: [vault, kv, get, "-field=value", "secret/{env}/{key}"],
              environments: [production], pass_env: [VAULT_ADDR, VAULT_TOKEN]}
    retention:                    # history that lasts (0, the default: keep everything)
      operations_days: 365        # prune operations older than this (changes, commits too)
      audit_days: 0               # the audit trail is kept unless this is set
    promotion:                    # the operator's side of promotion: promote/operator.py
      commands: {perf-test: {argv: [/opt/ci/perf-test.sh, "{to}"], timeout: 10m}}
      registries: {ghcr.io: {username: ci, password_env: GHCR_TOKEN}}
      interval: 30                # image automation, auto-promotion, holds, expiry

``verify:`` has the shape of an environment's ``verify:`` in gitswarm.yml (mode gpg or
ssh; ``keys``: public key files; ``allowed_signers``: an ssh-keygen allowed signers file;
relative paths from $GITSWARM_KEYS_DIR). A pinned environment's commits must always be
signed by those keys, whatever gitswarm.yml says — including the very first commit the
agent deploys, which Git alone cannot vouch for. The files must exist when the agent
starts.

``policies:`` has the shape of an environment's ``policies:`` in gitswarm.yml, but only
the rules it lists are pinned (``default`` is ``off`` unless given), and ``rego:`` takes
``dir:``, a folder of .rego files on this host (relative paths from $GITSWARM_KEYS_DIR;
read when the agent starts) evaluated for every commit. Each listed rule applies with
its mode, parameters and exemptions whatever gitswarm.yml says; gitswarm.yml may tighten
it, never loosen it, and its exemptions do not exempt from it (policy/floor.py).
``gitswarm sync --config`` reads the same floor. A mistake stops the agent at start,
naming this file's line.

``identities:`` maps environment names to age key files on this host (relative paths
from $GITSWARM_KEYS_DIR); each file must hold one valid identity when the agent starts.
An environment without one is looked up in GITSWARM_AGE_KEY_<ENV> /
GITSWARM_AGE_KEY_FILE_<ENV> (which win over this file, as every environment variable
does) and then in $GITSWARM_KEYS_DIR/<project>/<env>.key (source/keys.py). ``project:``
names that <project>: without it, the project of the revision deployed last (or, before
any, of the first commit rendered). A commit renaming its project never moves the agent
to another project's keys.

``targets:`` and ``providers:`` are the operator's and never the repository's: a commit
only names a target or a provider. The CLI's commands read the same two settings from
the same file (``--config`` or ``$GITSWARM_CONFIG``, cli/operator.py), and
``gitswarm serve`` reads ``$GITSWARM_CONFIG`` when ``--config`` is not given.

``retention:`` prunes every six hours; it never removes the operation an app's status
points at, nor per app × environment the newest successful deploy of each of the last
two revisions (what `rollback --previous` needs).

``promotion:`` is the operator's: the argv of every ``command`` gate gitswarm.yml may
name (a pusher never chooses what runs on this host), registry credentials and
endpoints for image automation, and how often its round runs.

Event kinds: sync_succeeded, sync_failed, drift_detected, drift_healed, rollback,
signature_rejected, policy_violation, promotion_pending, promotion_committed,
promotion_rejected, promotion_expired, promotion_failed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import click
import structlog

from gitswarm.api import ApiSettings, create_app, serve_in_thread, settings_from_mapping
from gitswarm.cli.operator import config_path as config_path_of
from gitswarm.cli.output import guarded
from gitswarm.errors import ConfigError, SecretError, UsageError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import VerifySettings
from gitswarm.model.events import EVENT_KINDS
from gitswarm.notify import Notifier
from gitswarm.policy.floor import PolicyLayer
from gitswarm.promote.operator import OperatorSettings, operator_settings
from gitswarm.promote.service import PromotionService
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.allocator import Allocator
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.retention import RetentionSettings, start_retention
from gitswarm.reconcile.sync import Reconciler
from gitswarm.repo.config import check_name, verify_rule_problems
from gitswarm.source.agentconfig import AgentConfig, policy_floors, read_agent_config
from gitswarm.source.keys import keys_dir, read_identity_file
from gitswarm.source.providers import ProviderSet, parse_providers
from gitswarm.source.repo import RepoSource
from gitswarm.source.verify import Verifier
from gitswarm.store import Store
from gitswarm.swarm.client import clean_deploy_leftovers
from gitswarm.swarm.pool import SwarmPool
from gitswarm.swarm.targets import TargetTable, parse_targets

ENV_VARS = {
    "repo": "GITSWARM_REPO",
    "branch": "GITSWARM_BRANCH",
    "state": "GITSWARM_STATE",
    "listen": "GITSWARM_LISTEN",
    "poll_interval": "GITSWARM_POLL_INTERVAL",
    "log_format": "GITSWARM_LOG_FORMAT",
    "project": "GITSWARM_PROJECT",
}


@dataclass(frozen=True)
class ServeConfig:
    repo: str = ""
    branch: str | None = None
    state: str | None = None
    listen: str = "127.0.0.1:8080"
    log_format: str = "text"
    log_level: str = "info"
    notifications: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    api: Mapping[str, Any] = field(default_factory=dict)
    agent: AgentSettings = field(default_factory=AgentSettings)
    verify: Mapping[str, VerifySettings] = field(default_factory=dict)
    policies: Mapping[str, PolicyLayer] = field(default_factory=dict)
    identities: Mapping[str, Path] = field(default_factory=dict)
    project: str | None = None
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    promotion: OperatorSettings = field(default_factory=OperatorSettings)
    targets: TargetTable = field(default_factory=TargetTable)
    providers: ProviderSet = field(default_factory=ProviderSet)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        try:
            return host or "127.0.0.1", int(port)
        except ValueError:
            raise ConfigError(f"listen must be HOST:PORT, not {self.listen!r}") from None


_AGENT_FIELDS = {f.name: f.type for f in fields(AgentSettings)}


def load_serve_config(
    path: Path | None, flags: Mapping[str, Any], environ: Mapping[str, str]
) -> ServeConfig:
    data: dict[str, Any] = {}
    # Where each setting came from, for errors: "agent.yml:12", "GITSWARM_STATE", "--repo".
    origin: dict[str, str] = {}
    config_file = AgentConfig() if path is None else read_agent_config(path)
    for key, value in config_file.data.items():
        data[key] = value
        origin[key] = f"{path}:{config_file.line((key,))}"
    for key, var in ENV_VARS.items():
        if environ.get(var):
            data[key] = environ[var]
            origin[key] = f"${var}"
    for key, value in flags.items():
        if value is not None:
            data[key] = value
            origin[key] = f"--{key.replace('_', '-')}"
    agent_kwargs: dict[str, Any] = {}
    config_kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = origin[key]
        if key in _AGENT_FIELDS:
            agent_kwargs[key] = _coerce(key, value, getattr(AgentSettings(), key), where)
        elif key in ("repo", "branch", "state", "listen", "log_format", "log_level"):
            config_kwargs[key] = None if value is None else str(value)
        elif key == "notifications":
            config_kwargs[key] = _notifications(value, where)
        elif key == "api":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: api must be a mapping")
            config_kwargs[key] = value
        elif key == "verify":
            file_lines = config_file.lines_under((key,))
            config_kwargs[key] = _pinned_verify(value, where, environ, path, file_lines)
        elif key == "policies":
            config_kwargs[key] = policy_floors(value, where, config_file, environ)
        elif key == "identities":
            file_lines = config_file.lines_under((key,))
            config_kwargs[key] = _identities(value, where, environ, path, file_lines)
        elif key == "targets":
            file_lines = config_file.lines_under((key,))
            config_kwargs[key] = parse_targets(
                value, where, keys_dir=keys_dir(environ), lines=file_lines, path=path
            )
        elif key == "providers":
            file_lines = config_file.lines_under((key,))
            config_kwargs[key] = parse_providers(
                value, where, environ=environ, lines=file_lines, path=path
            )
        elif key == "retention":
            file_lines = config_file.lines_under((key,))
            config_kwargs[key] = _retention(value, where, path, file_lines)
        elif key == "promotion":
            config_kwargs[key] = operator_settings(
                value, environ, config_file.where((key,)), str(path)
            )
        elif key == "project":
            message = check_name("project", str(value)) if isinstance(value, str) else None
            if not isinstance(value, str) or message:
                raise ConfigError(f"{where}: {message or 'project must be a project name'}")
            config_kwargs[key] = value
        else:
            known = sorted([*_AGENT_FIELDS, *_CONFIG_FIELDS])
            raise ConfigError(
                f"{where}: unknown setting {key!r}; the agent's settings are {', '.join(known)}"
            )
    config = ServeConfig(**config_kwargs, agent=AgentSettings(**agent_kwargs))
    if not config.repo:
        raise UsageError("no repository: give --repo, GITSWARM_REPO or `repo:` in --config")
    if config.log_format not in ("text", "json"):
        where = origin.get("log_format", "settings")
        raise ConfigError(f"{where}: log_format must be text or json")
    return config


_CONFIG_FIELDS = (
    "repo", "branch", "state", "listen", "log_format", "log_level", "notifications", "api",
    "verify", "policies", "identities", "project", "retention", "promotion", "targets", "providers",
)  # fmt: skip


def _coerce(key: str, value: Any, default: Any, where: str) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items if str(v).strip())
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be like {default!r}, not {value!r}") from None
    return value


def _notifications(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: notifications must map event kinds to Apprise URLs")
    routes: dict[str, tuple[str, ...]] = {}
    for kind, urls in value.items():
        if kind != "*" and kind not in EVENT_KINDS:
            raise ConfigError(
                f"{where}: unknown event kind {kind!r} in notifications "
                f"(known: {', '.join(EVENT_KINDS)}, or *)"
            )
        routes[str(kind)] = tuple([urls] if isinstance(urls, str) else [str(u) for u in urls])
    return routes


_VERIFY_KEYS = ("mode", "keys", "allowed_signers")


def _pinned_verify(
    value: Any,
    where: str,
    environ: Mapping[str, str],
    path: Path | None = None,
    lines: Mapping[str, int] | None = None,
) -> dict[str, VerifySettings]:
    """``verify:``: environment name -> signed-commit settings the repository cannot change."""
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: verify must map environment names to {{mode: gpg|ssh, keys: [...], "
            "allowed_signers: ...}"
        )
    root = keys_dir(environ)
    pinned: dict[str, VerifySettings] = {}
    for env, spec in value.items():
        line = (lines or {}).get(str(env))
        at = f"{path}:{line}: verify.{env}" if path and line else f"{where}: verify.{env}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{at} must be a mapping with mode: gpg or ssh and the key files")
        unknown = sorted(set(spec) - set(_VERIFY_KEYS))
        if unknown:
            raise ConfigError(
                f"{at}: unknown key {unknown[0]!r} (known: {', '.join(_VERIFY_KEYS)})"
            )
        mode = spec.get("mode")
        if mode not in ("gpg", "ssh"):
            raise ConfigError(f"{at}.mode must be gpg or ssh, not {mode!r}")
        keys = spec.get("keys", [])
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise ConfigError(f"{at}.keys must be a list of public key file paths")
        signers = spec.get("allowed_signers")
        if signers is not None and (not isinstance(signers, str) or not signers):
            raise ConfigError(
                f"{at}.allowed_signers must be the path of an ssh-keygen allowed signers file"
            )
        for _field, message in verify_rule_problems(mode, keys, signers):
            raise ConfigError(f"{at}: {message}")
        for text in [*keys, *([signers] if signers else [])]:
            path = Path(text).expanduser()
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise ConfigError(
                    f"{at}: trusted key file {text!r} is not a file on this host (looked at "
                    f"{path}; relative paths are read from $GITSWARM_KEYS_DIR, {root})"
                )
        pinned[str(env)] = VerifySettings(mode=mode, keys=tuple(keys), allowed_signers=signers)
    return pinned


def _identities(
    value: Any,
    where: str,
    environ: Mapping[str, str],
    path: Path | None = None,
    lines: Mapping[str, int] | None = None,
) -> dict[str, Path]:
    """``identities:``: environment name -> the age key file the operator keeps for it.
    Each file is read (bounded) now, so a wrong path stops the agent at start."""
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: identities must map environment names to age key files, e.g. "
            "{production: /etc/gitswarm/keys/production.key}"
        )
    root = keys_dir(environ)
    out: dict[str, Path] = {}
    for env, text in value.items():
        line = (lines or {}).get(str(env))
        at = f"{path}:{line}: identities.{env}" if path and line else f"{where}: identities.{env}"
        message = check_name("environment", str(env))
        if message:
            raise ConfigError(f"{at}: {message}")
        if not isinstance(text, str) or not text:
            raise ConfigError(f"{at} must be the path of an age key file")
        file = Path(text).expanduser()
        file = file if file.is_absolute() else root / file
        try:
            read_identity_file(file, label=f"age identity file {file}")
        except SecretError as exc:
            raise ConfigError(
                f"{at}: {exc.message} (relative paths are read from $GITSWARM_KEYS_DIR, "
                f"{root}; create a key with `gitswarm secret keygen --env {env} --identity "
                "FILE`)"
            ) from None
        out[str(env)] = file
    return out


def _retention(
    value: Any, where: str, path: Path | None = None, lines: Mapping[str, int] | None = None
) -> RetentionSettings:
    """``retention: {operations_days: N, audit_days: N}``: whole days, 0 keeps everything."""
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: retention must be a mapping like {{operations_days: 365, audit_days: 0}}"
        )
    known = ("operations_days", "audit_days")
    days: dict[str, int] = {}
    for key, number in value.items():
        line = (lines or {}).get(str(key))
        at = f"{path}:{line}: retention.{key}" if path and line else f"{where}: retention.{key}"
        if key not in known:
            raise ConfigError(f"{at}: unknown setting (known: {', '.join(known)})")
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ConfigError(f"{at} must be a whole number of days (0: keep everything)")
        days[str(key)] = number
    return RetentionSettings(**days)


def setup_logging(fmt: str, level: str) -> None:
    """Structured logs: JSON lines with ``--log-format json``, readable text otherwise.
    Records carry the app, env and revision they are about when the caller binds them.

    Tracebacks are the standard library's plain ones in both formats: never structlog's
    rich default, which prints every frame's local variables (webhook secrets, tokens,
    the process environment with its age identities) into the log."""
    processors: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        # exc_info -> "exception": the plain traceback text (format_exc_info uses the
        # traceback module: frames and source lines, no locals).
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=processors,
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def run_agent(
    config: ServeConfig,
    *,
    stop: threading.Event | None = None,
    allocator: Allocator | None = None,
) -> int:
    stop = stop or threading.Event()
    allocator = allocator or Allocator()  # serve(): the process's, arenas capped already
    log = logging.getLogger("gitswarm.serve")
    # What a kill -9 mid-deploy left behind (this agent's predecessor, or a CLI's).
    for folder in clean_deploy_leftovers():
        log.info("removed %s, the deploy folder of a process that no longer runs", folder)
    source = RepoSource.open(config.repo, branch=config.branch)
    store = Store(config.state)
    notifier = Notifier(config.notifications)
    metrics = Metrics()
    verifier = Verifier()  # the agent's keyrings, removed when it stops
    reconciler = Reconciler(
        source=source,
        store=store,
        swarm_for=SwarmPool(targets=config.targets),  # closed by agent.stop()
        providers=config.providers,
        verifier=verifier,
        notifier=notifier,
        pinned_verify=config.verify,
        pinned_policies=config.policies,
        identities=config.identities,
        project=config.project,
        # A sync of an agent that died (kill -9) holds its app's lock no longer than the
        # agent's own lease, twice over: its successor finishes the sync within seconds
        # of taking over, not after a fixed 30 s (the default lease_ttl keeps 30 s).
        sync_lease=2 * config.agent.lease_ttl,
    )
    agent = Agent(
        source=source,
        store=store,
        reconciler=reconciler,
        settings=config.agent,
        notifier=notifier,
        metrics=metrics,
        after_burst=allocator.trim,
    )
    host, port = config.host_port
    api_settings: ApiSettings = settings_from_mapping(
        config.api, audit=store.audit, deliveries=store, accounts=store
    )
    api_settings = replace(api_settings, host=host, port=port)
    promotions = promotion_side(reconciler, agent, config.promotion, stop)
    app = create_app(agent, api_settings, metrics, promotions, records=store)
    handle = serve_in_thread(app, host, port, trusted_proxies=api_settings.trusted_proxies)
    log.info(
        "gitswarm agent %s listening on %s, following %s", agent.holder, handle.url, config.repo
    )
    agent.start()
    start_retention(store, config.retention, stop)
    try:
        stop.wait()
    finally:
        log.info(
            "stopping: a running operation ends at its next wait, or within %.0fs",
            config.agent.shutdown_grace,
        )
        handle.stop()
        agent.stop()
        verifier.close()
        notifier.close()
        store.close()
        log.info("stopped")
    return 0


def leave(code: int) -> None:
    """Exit with ``code`` once run_agent has stopped everything. A thread still working
    after the shutdown grace (a command that does not end) would be joined by the
    interpreter without limit, and Swarm's SIGKILL would end the process instead: exit
    without waiting for it (its operation stays Running; the next agent marks it
    Interrupted)."""
    stuck = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if not stuck:
        sys.exit(code)
    logging.getLogger("gitswarm.serve").warning(
        "exiting with work still running after the shutdown grace: %s", ", ".join(stuck)
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def promotion_side(
    reconciler: Reconciler, agent: Agent, settings: OperatorSettings, stop: threading.Event
) -> PromotionService:
    """The promotion service the API offers, and the automation round beside the loop
    (started at once; it does nothing while another agent holds its store lock). A
    commit it makes is deployed by a trigger, without waiting for the next poll."""
    from gitswarm.promote.automation import Automation, deploy_requests, start_automation
    from gitswarm.promote.pipeline import Promoter
    from gitswarm.promote.registry import RegistryClient

    promoter = Promoter(reconciler, commands=settings.commands, http_allow=settings.http_allow)
    service = PromotionService(promoter, committed=lambda outcome: look_at_git(agent, outcome))
    if settings.automation:
        automation = Automation(
            promoter, RegistryClient(settings.registries), holder=agent.holder, lock=service.lock
        )

        def deploy(actions: list[Any]) -> None:
            for request in deploy_requests(actions):  # each names the commit it deploys
                agent.trigger(request)

        start_automation(automation, stop, every=settings.interval, on_actions=deploy)
    return service


def look_at_git(agent: Agent, outcome: Any) -> None:
    """A promotion the API committed: the agent asks Git for its head now (the git task,
    as a webhook would), so the pages show the new head and an automated target deploys
    it at once, not at the next poll."""
    commit = str(outcome.commit or "")[:12]
    reason = f"promotion {outcome.promotion_id} committed {commit} to {outcome.target}"
    agent.trigger(TriggerRequest(trigger="agent", reason=reason))


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The agent's YAML config file (default: $GITSWARM_CONFIG).",
)
@click.option("--repo", default=None, help="The GitOps repository (URL or path).")
@click.option("--branch", default=None)
@click.option("--state", default=None, help="SQLite path or PostgreSQL URL.")
@click.option("--listen", default=None, help="HOST:PORT of the HTTP API (default 127.0.0.1:8080).")
@click.option("--poll-interval", "poll_interval", type=float, default=None)
@click.option("--log-format", "log_format", type=click.Choice(["text", "json"]), default=None)
def serve(
    config_file: Path | None,
    repo: str | None,
    branch: str | None,
    state: str | None,
    listen: str | None,
    poll_interval: float | None,
    log_format: str | None,
) -> None:
    """Run the agent: poll and webhooks, sync, drift and self-heal, API, /metrics."""
    # Before any thread: each thread that allocates would get a glibc arena of its own,
    # and keep what it freed (reconcile/allocator.py).
    allocator = Allocator.of_process()
    allocator.cap_arenas()

    def run() -> None:
        flags = {
            "repo": repo,
            "branch": branch,
            "state": state,
            "listen": listen,
            "poll_interval": poll_interval,
            "log_format": log_format,
        }
        config = load_serve_config(config_path_of(config_file, os.environ), flags, os.environ)
        setup_logging(config.log_format, config.log_level)
        stop = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        leave(run_agent(config, stop=stop, allocator=allocator))

    guarded(False, run)
