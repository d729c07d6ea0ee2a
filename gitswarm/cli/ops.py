"""``gitswarm sync``, ``status``, ``diff``, ``history`` (and ``history export``),
``rollback`` and ``bootstrap`` (edge).

They deploy committed revisions only: HEAD of the followed branch of ``--repo`` (a
local clone or a URL), or ``--revision``. State lives in the store (``--state``, or
``$GITSWARM_STATE``, or the default location; see gitswarm/store/__init__.py).

Why one file (over 450 lines): the commands of one store-and-swarm session, each short;
what other command modules share lives in cli/output.py and cli/worktree.py.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitswarm.cli.operator import config_option
from gitswarm.cli.output import emit_json, guarded
from gitswarm.errors import GitswarmError, UsageError
from gitswarm.model.reads import StatusReads

if TYPE_CHECKING:  # the modules behind these load when a command runs (cli/main.py)
    from gitswarm.model.config import RepoConfig
    from gitswarm.model.promotion import Hold
    from gitswarm.plan import Plan
    from gitswarm.reconcile.recorded import Recorded, StatusRow
    from gitswarm.reconcile.sync import Reconciler, SyncOutcome
    from gitswarm.source.repo import RepoSource
    from gitswarm.store import Store

REPO_HELP = "The GitOps repository: a local clone (default: the current folder) or a Git URL."
S = TypeVar("S", bound=StatusReads)
STATE_HELP = "The state store: a SQLite path or a PostgreSQL URL (default: $GITSWARM_STATE)."


def repo_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--repo", default=".", show_default=True, help=REPO_HELP)(fn)


def state_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--state", default=None, envvar="GITSWARM_STATE", help=STATE_HELP)(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)


class Progress:
    """Stages and convergence on a terminal (rich); silent when not a terminal (then
    rich is not even imported: it is a tenth of ``status --live --json``)."""

    def __init__(self, enabled: bool) -> None:
        self.console: Any = None
        self.enabled = enabled and sys.stderr.isatty()
        if self.enabled:
            from rich.console import Console

            self.console = Console(stderr=True)
            self.enabled = self.console.is_terminal
        self._status: Any = None

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        if self._status is None:
            self._status = self.console.status(message)
            self._status.start()
        else:
            self._status.update(message)
        self.console.log(message, highlight=False)

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


@dataclass
class Session:
    source: RepoSource
    store: Store
    reconciler: Reconciler
    progress: Progress

    def config(self) -> RepoConfig:
        """The settings at the head, read once: the syncs and renders after this reuse
        them (Reconciler.config_at; reading gitswarm.yml and applications/*.yml was a
        fifth of ``gitswarm status``, done twice)."""
        return self.reconciler.config_at(self.source.head())

    def apps(self, env: str, app: str | None) -> list[str]:
        config = self.config()
        config.environment(env)
        if app:
            config.application(app)
            return [app]
        names = [a.name for a in config.apps_for(env)]
        if not names:
            raise UsageError(f"no application is deployed to environment {env!r}")
        return names


@contextlib.contextmanager
def pipeline(
    repo: str, open_store: Callable[[], S], *, as_json: bool, reads_only: bool = False
) -> Iterator[tuple[RepoSource, Reconciler[S], Progress]]:
    """The repository (fetched when it is a URL), a Reconciler over the store
    ``open_store`` opens (after the repository opened), and the progress display.
    ``reads_only``: the command reads the swarm and never writes to it (``status``)."""
    from gitswarm.sandbox.rego import RegoSandbox
    from gitswarm.swarm.engine import reads_client

    with RegoSandbox() as rego:  # this command's own, like the pool and the verifier
        if "://" not in repo and any(Path(repo, "policies").glob("*.rego")):
            rego.prestart()  # the child's start-up overlaps the imports below (2+ cores)
        from gitswarm.cli.operator import operator
        from gitswarm.reconcile.sync import Reconciler
        from gitswarm.source.repo import RepoSource
        from gitswarm.source.verify import Verifier
        from gitswarm.swarm.pool import SwarmPool

        # status only reads the swarm: over a unix socket with the standard library
        # (swarm/engine.py), without importing docker-py and requests
        factory: dict[str, Any] = {"factory": reads_client} if reads_only else {}
        settings = operator()  # the agent config's targets:, providers:, policies: (--config)
        source = RepoSource.open(repo)
        if source.remote is not None:
            source.fetch()
        store = open_store()
        progress = Progress(enabled=not as_json)
        pool, verifier = SwarmPool(**factory, targets=settings.targets), Verifier()
        reconciler = Reconciler(
            source=source,
            store=store,
            swarm_for=pool,
            progress=progress,
            verifier=verifier,
            rego=rego,
            providers=settings.providers,
            pinned_policies=settings.policies,
        )
        try:
            yield source, reconciler, progress
        finally:
            progress.stop()
            pool.close()
            verifier.close()
            store.close()


@contextlib.contextmanager
def session(repo: str, state: str | None, *, as_json: bool) -> Iterator[Session]:
    """A command that may record: a Reconciler over a ``Store`` (SQLAlchemy)."""

    def open_store() -> Store:
        from gitswarm.store import Store

        return Store(state)

    with pipeline(repo, open_store, as_json=as_json) as (source, reconciler, progress):
        yield Session(source, reconciler.store, reconciler, progress)
        reconciler.journal.settle()  # no exit 0 while a record of it is unwritten


def status_reads(state: str | None) -> StatusReads:
    """What ``status`` reads: a current local SQLite store through store/quick.py
    (sqlite3, no SQLAlchemy), anything else (PostgreSQL, a store to create or migrate)
    through a ``Store``. Both are ``StatusReads`` (model/reads.py)."""
    from gitswarm.store import quick

    reads = quick.reads(state)
    if reads is not None:
        return reads
    from gitswarm.store import Store

    return Store(state)


def _actor() -> str:
    """Who runs the CLI, for the audit trail."""
    return os.environ.get("GITSWARM_ACTOR") or getpass.getuser()


def _config_keyerror(exc: KeyError) -> UsageError:
    return UsageError(str(exc.args[0]) if exc.args else str(exc))


# --- printing -------------------------------------------------------------------------


def plan_lines(plan: Plan) -> list[str]:
    from gitswarm.plan.plan import friendly

    marks = {"create": "+", "update": "~", "remove": "-", "orphan": "?", "unchanged": "="}
    lines = []
    for change in plan.services:
        if change.action == "unchanged" and not change.drift:
            continue
        note = f"  ({change.note})" if change.note else ""
        lines.append(f"  {marks[change.action]} {change.service}: {change.action}{note}")
        if change.action != "create":  # a new service: every field is new, say it once
            lines.extend(f"      {f}" for f in change.fields)
        lines.extend(
            f"      drift {friendly(f.path)}: {f.before!r} -> {f.after!r}" for f in change.drift
        )
    for obj in plan.create_objects:
        lines.append(f"  + {obj.kind} {obj.name}")
    return lines or ["  (no changes)"]


def print_outcome(outcome: SyncOutcome) -> None:
    rev = (outcome.revision or "?")[:12]
    head = f"{outcome.app}/{outcome.env} @ {rev}: {outcome.result}"
    if outcome.reason and outcome.result != "Succeeded":
        head += f" [{outcome.reason}]"
    click.echo(head)
    if outcome.plan is not None:
        for line in plan_lines(outcome.plan):
            click.echo(line)
    if outcome.policy is not None:
        for warning in outcome.policy.warnings:
            click.echo(f"  warning: {warning.message}")
    if outcome.message:
        click.echo(f"  {outcome.message}")
    for problem in outcome.problems:
        if str(problem) not in outcome.message:  # errors list their problems in the message
            click.echo(f"  {problem}")


def exit_code(outcomes: list[SyncOutcome]) -> int:
    codes = [o.exit_code or (0 if o.ok else 1) for o in outcomes]
    if 2 in codes:
        return 2
    return 1 if any(codes) else 0


# --- commands -------------------------------------------------------------------------


@click.command()
@click.option("--env", "env", required=True, help="The environment to sync.")
@click.option("--app", "app", default=None, help="Only this application (default: all).")
@click.option("--revision", default=None, help="A commit, tag or branch (default: HEAD).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for health (always for an application others of this sync depend on).",
)
@click.option(
    "--lock-wait", default=0.0, show_default=True, help="Seconds to wait for a running sync."
)
@click.option(
    "--override-window",
    "override_window",
    is_flag=True,
    help="Deploy although the deployment window is closed (needs --reason; audited).",
)
@click.option("--reason", default=None, help="Why the window is overridden (recorded).")
@repo_option
@state_option
@config_option
@json_option
def sync(
    env: str,
    app: str | None,
    revision: str | None,
    dry_run: bool,
    wait: bool,
    lock_wait: float,
    override_window: bool,
    reason: str | None,
    repo: str,
    state: str | None,
    as_json: bool,
) -> None:
    """Deploy a committed revision of ENV now and wait until it is healthy."""

    def run() -> None:
        if override_window and not (reason and reason.strip()):
            raise UsageError('--override-window needs --reason "why this cannot wait"')
        from gitswarm.reconcile.ordered import sync_in_order
        from gitswarm.reconcile.sync import SyncRequest

        with session(repo, state, as_json=as_json) as s:
            try:
                apps = s.apps(env, app)
            except KeyError as exc:
                raise _config_keyerror(exc) from None
            config = s.config()
            if revision:  # the order of the revision synced: its gitswarm.yml says it
                with contextlib.suppress(GitswarmError):  # each sync reports (and records) it
                    config = s.reconciler.config_at(s.source.resolve(revision))
            # What other applications of this run wait for is waited for, --no-wait or not.
            needed = {d for name in apps for d in config.dependencies(name, env)}
            outcomes = sync_in_order(
                config,
                env,
                apps,
                lambda name: s.reconciler.sync(
                    SyncRequest(
                        name,
                        env,
                        revision=revision,
                        dry_run=dry_run,
                        wait=wait or name in needed,
                        lock_wait=lock_wait,
                        actor=_actor(),
                        override_window=reason if override_window else None,
                    )
                ),
                revision=revision,
                converged=lambda o: o.result == "Succeeded" or (dry_run and o.ok),
            )
            s.progress.stop()
        if as_json:
            emit_json({"ok": exit_code(outcomes) == 0, "results": [o.as_dict() for o in outcomes]})
        else:
            for outcome in outcomes:
                print_outcome(outcome)
        sys.exit(exit_code(outcomes))

    guarded(as_json, run)


@click.command()
@click.option("--env", "env", default=None, help="Only this environment.")
@click.option("--app", "app", default=None, help="Only this application.")
@click.option(
    "--live",
    is_flag=True,
    help="Render Git's head and read the swarm now, instead of what the agent recorded.",
)
@repo_option
@state_option
@config_option
@json_option
def status(
    env: str | None, app: str | None, live: bool, repo: str, state: str | None, as_json: bool
) -> None:
    """Applications × environments: revision, sync, health, last operation, drift."""

    def run() -> None:
        from gitswarm.reconcile.recorded import recorded

        reads = status_reads(state)
        try:
            found = "--live" if live else recorded(reads, env, app)
        except BaseException:
            reads.close()
            raise
        if not isinstance(found, str) and found.rows:
            reads.close()
            _print_recorded(found, as_json)
            return
        if not isinstance(found, str):  # the agent watches none of these: ask Git
            found = "the agent watches no application matching --env/--app"
        _live_status(reads, env, app, repo, found, as_json)

    guarded(as_json, run)


def _print_recorded(found: Recorded, as_json: bool) -> None:
    at = found.observed_at.isoformat(timespec="seconds")
    if as_json:
        emit_json(
            {
                "ok": True,
                "source": "agent",
                "agent": found.holder,
                "observed_at": found.observed_at.isoformat(),
                "head": found.head,
                "polled_at": found.polled_at.isoformat() if found.polled_at else None,
                "git_error": found.error,
                "statuses": [
                    {**r.as_dict(), "holds": [h.as_dict() for h in found.holds[(r.app, r.env)]]}
                    for r in found.rows
                ],
            }
        )
        return
    _print_rows(found.rows, found.holds)
    line = f"as recorded by agent {found.holder} at {at}"
    if found.error is not None:
        polled = found.polled_at.isoformat(timespec="seconds") if found.polled_at else "never"
        line += f" (its last poll of Git failed: {found.error}; head as of {polled})"
    click.echo(line)


def _live_status(
    reads: StatusReads, env: str | None, app: str | None, repo: str, why: str, as_json: bool
) -> None:
    from gitswarm.reconcile.status import live_status

    with pipeline(repo, lambda: reads, as_json=as_json, reads_only=True) as (
        source,
        reconciler,
        _,
    ):
        config = reconciler.config_at(source.head())
        pairs = [
            (a.name, e.name)
            for e in config.environments
            if env in (None, e.name)
            for a in config.apps_for(e.name)
            if app in (None, a.name)
        ]
        if not pairs:
            raise UsageError("no application matches --env/--app")
        results = [live_status(reconciler, a, e) for a, e in pairs]
        holds = {(a, e): reconciler.store.holds(a, e) for a, e in pairs}
        now = reconciler.clock.now()
    if as_json:
        rows = [
            {**r.as_dict(), "holds": [h.as_dict() for h in holds[(r.app, r.env)]]} for r in results
        ]
        emit_json(
            {
                "ok": True,
                "source": "live",
                "live_because": why,
                "observed_at": now.isoformat(),
                "statuses": rows,
            }
        )
        return
    _print_rows(results, holds)
    click.echo(f"live: Git's head rendered and the swarm read now ({why})")


def _print_rows(rows: Sequence[StatusRow], holds: Mapping[tuple[str, str], Sequence[Hold]]) -> None:
    """The table, then a line per drifted service, hold and orphan."""
    click.echo(
        _table(
            ("APP", "ENV", "SYNC", "HEALTH", "HEAD", "DEPLOYED", "LAST", "MESSAGE"),
            [
                (
                    r.app,
                    r.env,
                    r.sync,
                    r.health,
                    (r.head or "-")[:12],
                    (r.deployed or "-")[:12],
                    r.last_result or "-",
                    (f"[{r.reason}] " if r.reason else "") + r.message,
                )
                for r in rows
            ],
        )
    )
    for r in rows:
        for d in r.drift:
            fields = ", ".join(
                f"{x['field']}: {x['before']!r} -> {x['after']!r}" for x in d.get("drift", ())
            )
            click.echo(f"drift {r.app}/{r.env} {d['service']}: {fields or d.get('note', '')}")
        for held in holds.get((r.app, r.env), ()):
            images = ", ".join(f"{k}:{v}" for k, v in sorted(held.images.items()))
            click.echo(
                f"hold {held.id} {r.app}/{r.env}: automation keeps "
                f"{images or 'its revision'} rolled back (gitswarm hold release "
                f"{held.id} --reason ...)"
            )
        for orphan in r.orphans:
            click.echo(
                f"orphan {r.app}/{r.env} {orphan}: deployed by gitswarm, "
                "gone from Git (prune is off)"
            )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart (the last one unpadded):
    plain text, as fast for a thousand rows as for one."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in [header, *rows]
    )


@click.command()
@click.option("--env", "env", required=True)
@click.option("--app", "app", default=None)
@repo_option
@state_option
@config_option
@json_option
def diff(env: str, app: str | None, repo: str, state: str | None, as_json: bool) -> None:
    """What a sync of ENV would change, per service, and what drifted."""

    def run() -> None:
        from gitswarm.reconcile.status import live_status

        with session(repo, state, as_json=as_json) as s:
            try:
                apps = s.apps(env, app)
            except KeyError as exc:
                raise _config_keyerror(exc) from None
            results = [live_status(s.reconciler, name, env) for name in apps]
        errors = [r.error for r in results if r.error is not None]
        if errors:
            raise errors[0]
        if as_json:
            emit_json({"ok": True, "diffs": [r.plan.as_dict() for r in results if r.plan]})
            return
        for r in results:
            click.echo(f"{r.app}/{r.env} (stack {r.stack}) @ {(r.head or '?')[:12]}: {r.sync}")
            if r.plan is not None:
                for line in plan_lines(r.plan):
                    click.echo(line)

    guarded(as_json, run)


class _HistoryGroup(click.Group):
    """``history --env E`` is the listing itself (the group's own callback, so it stays
    exactly as it was); ``history export`` is its one subcommand."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[OPTIONS]"]  # `history export` has its own usage line


@click.group(cls=_HistoryGroup, invoke_without_command=True)
@click.option("--env", "env", default=None, help="[required] The environment.")
@click.option("--app", "app", default=None)
@click.option("--limit", default=20, show_default=True)
@state_option
@json_option
@click.pass_context
def history(
    ctx: click.Context, env: str | None, app: str | None, limit: int, state: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Past operations in ENV, newest first.

    `gitswarm history export` writes the whole audit trail as JSON lines."""
    if ctx.invoked_subcommand is not None:
        if env or app or as_json or limit != 20:
            raise click.UsageError(
                f"give the options of `history {ctx.invoked_subcommand}` after it", ctx
            )
        return
    if env is None:
        raise click.MissingParameter(ctx=ctx, param=_param(ctx, "env"))

    def run() -> None:
        from gitswarm.store import quick

        # A local store is read with sqlite3 alone; anything else opens a Store.
        ops = quick.history(state, app=app, env=env, limit=limit)
        if ops is None:
            from gitswarm.store import Store

            with Store(state) as store:
                ops = store.history(app=app, env=env, limit=limit)
        if as_json:
            emit_json(
                {
                    "ok": True,
                    "operations": [o.as_dict() for o in ops],
                }
            )
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("ID", "WHEN", "KIND", "APP", "REVISION", "RESULT", "TRIGGER", "MESSAGE"):
            table.add_column(column)
        for o in ops:
            result = o.result + (f" [{o.reason}]" if o.reason and o.result != "Succeeded" else "")
            table.add_row(
                str(o.id),
                o.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                o.kind + (" (dry run)" if o.dry_run else ""),
                o.app,
                (o.revision or "-")[:12],
                result,
                o.trigger,
                o.message,
            )
        Console(width=200).print(table)

    guarded(as_json, run)


def _param(ctx: click.Context, name: str) -> click.Parameter:
    return next(p for p in ctx.command.params if p.name == name)


@click.command(name="export")
@click.option(
    "--since",
    default=None,
    help="Only what happened since then: 30d, 12h, 2w, or an ISO date (default: everything).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl"]),
    default="jsonl",
    show_default=True,
    help="One JSON object per line.",
)
@click.option(
    "--env",
    "env",
    default=None,
    help="Only this environment's operations (the audit events are then left out).",
)
@state_option
def export(since: str | None, fmt: str, env: str | None, state: str | None) -> None:
    """The audit trail as JSON lines: every operation, oldest first, then every audit event.

    Each line has "record": "operation" (with its service changes and deployed commits)
    or "audit". Streams from the store in batches: any size of history, constant memory."""

    def run() -> None:
        from datetime import UTC, datetime

        from gitswarm.dora.window import parse_since
        from gitswarm.store import Store

        start: datetime | None = None
        if since is not None:
            try:
                start = parse_since(since, datetime.now(UTC))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        out = sys.stdout
        with Store(state) as store:
            for op in store.export_operations(since=start, env=env):
                line = {"record": "operation", **op.as_dict()}
                out.write(json.dumps(line, sort_keys=True) + "\n")
            if env is None:
                for event in store.export_audit(since=start):
                    record = {"record": "audit", **event.as_dict()}
                    out.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        out.flush()

    guarded(False, run)


history.add_command(export)


@click.command(name="rollback")
@click.option("--env", "env", required=True)
@click.option("--app", "app", default=None, help="Needed when ENV has several applications.")
@click.option("--previous", is_flag=True, help="Return to the last revision that deployed healthy.")
@click.option("--to", "to", default=None, help="Return to this revision.")
@click.option(
    "--push/--no-push",
    default=True,
    show_default=True,
    help="--no-push: deploy the old revision without a Git commit (offline emergency).",
)
@click.option("--reason", default="", help="Why; goes into the commit message and history.")
@repo_option
@state_option
@config_option
@json_option
def rollback_cmd(
    env: str,
    app: str | None,
    previous: bool,
    to: str | None,
    push: bool,
    reason: str,
    repo: str,
    state: str | None,
    as_json: bool,
) -> None:
    """Return ENV to a past revision with a Git commit, push it and sync it."""

    def run() -> None:
        if previous == bool(to):
            raise UsageError("give exactly one of --previous and --to REVISION")
        from gitswarm.reconcile.rollback import RollbackRequest, rollback

        with session(repo, state, as_json=as_json) as s:
            try:
                apps = s.apps(env, app)
            except KeyError as exc:
                raise _config_keyerror(exc) from None
            if len(apps) > 1:
                raise UsageError(f"{env} has several applications ({', '.join(apps)}): give --app")
            outcome = rollback(
                s.reconciler,
                RollbackRequest(apps[0], env, to=to, previous=previous, push=push, reason=reason),
            )
        if as_json:
            emit_json({"ok": outcome.ok, "result": outcome.as_dict()})
        else:
            print_outcome(outcome)
        sys.exit(exit_code([outcome]))

    guarded(as_json, run)


@click.command()
@click.option("--env", "env", required=True, help="The environment to rebuild.")
@click.option("--revision", default=None, help="A commit, tag or branch (default: HEAD).")
@repo_option
@state_option
@json_option
def bootstrap(env: str, revision: str | None, repo: str, state: str | None, as_json: bool) -> None:
    """Rebuild every application of ENV on an empty swarm from Git alone, then verify.

    One revision for every application; first a preflight (the target is a swarm
    manager, every application renders and passes its policies, every external network,
    volume, secret and config exists: what is missing is listed with the command that
    creates it, and nothing is deployed); then each application in order, waiting until
    it is healthy; then a summary of each one's sync and health (reconcile/bootstrap.py).
    Exit 0: all Synced and Healthy; 1: a failure or something missing; 2: bad input."""

    def run() -> None:
        from gitswarm.reconcile.bootstrap import BootstrapRequest
        from gitswarm.reconcile.bootstrap import bootstrap as run_bootstrap

        with session(repo, state, as_json=as_json) as s:
            report = run_bootstrap(
                s.reconciler,
                BootstrapRequest(env, revision=revision, actor=_actor(), progress=s.progress),
            )
            s.progress.stop()
        if as_json:
            emit_json(report.as_dict())
        else:
            _print_bootstrap(report)
        sys.exit(report.exit_code)

    guarded(as_json, run)


def _print_bootstrap(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    click.echo(
        f"bootstrap {report.env} at {(report.revision or '?')[:12]}: {', '.join(report.order)}"
    )
    for problem in report.problems:
        click.echo(f"  {problem}")
    for missing in report.missing:
        click.echo(f"  {missing}")
    if report.results:
        table = Table(box=None, pad_edge=False)
        for column in ("APP", "RESULT", "SYNC", "HEALTH", "REVISION", "MESSAGE"):
            table.add_column(column)
        for r in report.results:
            o = r.outcome
            result = o.result + (f" [{o.reason}]" if o.reason and o.result != "Succeeded" else "")
            table.add_row(
                r.app,
                result,
                r.status.sync if r.status else "-",
                r.status.health if r.status else "-",
                (o.revision or "-")[:12],
                r.note or o.message,
            )
        Console(width=200).print(table)
    click.echo(report.message)


def register(group: click.Group) -> None:
    for command in (sync, status, diff, history, rollback_cmd, bootstrap):
        group.add_command(command)


__all__ = ["register"]
