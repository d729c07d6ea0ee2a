"""``gitswarm promote``, ``approve``, ``reject``, ``promotions`` and ``hold`` (edge).

They call promote/pipeline.py's Promoter over a Reconciler of their own, as `gitswarm
sync` does. The command gates a promotion may run come from the operator's config
(``--config``, the agent's config file: its ``promotion:`` section), never from the
repository (promote/operator.py says why). Whoever runs these commands holds the store
and the right to push: they act as ``$GITSWARM_ACTOR`` (default: the login name),
recorded in the audit trail. ``approve`` and ``reject`` act as that user of the store
(`gitswarm user add`): api/access.py's one ``authorize`` decides, as for the API and
the dashboard (the approver role in the target environment, never the requester), and
a refusal is audited and exits 2 (Forbidden). That keeps an approval from being made
by someone who simply names another user; it does not make the store a boundary:
whoever can write the store directly can add a user, so store access is admin's.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from gitswarm.cli.output import emit_json, guarded
from gitswarm.errors import Reason, UsageError

if TYPE_CHECKING:
    from gitswarm.promote.pipeline import Promoter, PromotionOutcome

Decision = Literal["approve", "reject"]
REPO_HELP = "The GitOps repository: a local clone (default: the current folder) or a Git URL."
STATE_HELP = "The state store: a SQLite path or a PostgreSQL URL (default: $GITSWARM_STATE)."
CONFIG_HELP = (
    "The agent's config file: its promotion.commands are what command gates run, its "
    "promotion.http_allow where http gates may go (default: $GITSWARM_CONFIG)."
)


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``, ``--state``, ``--repo`` and ``--config``: the commands that promote."""
    fn = _store_options(fn)
    fn = click.option("--repo", default=".", show_default=True, help=REPO_HELP)(fn)
    fn = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="GITSWARM_CONFIG",
        help=CONFIG_HELP,
    )(fn)
    return fn


def _store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--state`` and ``--json``: the commands that read or write the store alone."""
    fn = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)
    return click.option("--state", default=None, envvar="GITSWARM_STATE", help=STATE_HELP)(fn)


def _actor() -> str:
    return os.environ.get("GITSWARM_ACTOR") or getpass.getuser()


def _authorize_decision(promoter: Promoter, promotion_id: int, action: Decision) -> str:
    """The acting user, once access.authorize lets it ``action`` the promotion; else a
    UsageError (Forbidden, exit 2), audited."""
    from gitswarm.api.access import authorize, cli_caller
    from gitswarm.api.errors import Forbidden

    actor = _actor()
    store = promoter.store
    promotion = store.get_promotion(promotion_id)
    try:
        caller = cli_caller(actor, store)
        authorize(caller, action, promotion.to_env, requester=promotion.requested_by)
    except Forbidden as exc:
        details = {"via": "cli", "result": "forbidden", "promotion": promotion_id}
        store.audit(actor, action, f"{promotion.app}/{promotion.to_env}", details)
        raise UsageError(exc.message, reason=Reason.FORBIDDEN) from None
    return actor


class _Progress:
    """Each stage and gate on a terminal's stderr; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal

    def __call__(self, message: str) -> None:
        if self.enabled:
            self.console.log(message, highlight=False, markup=False)


@contextlib.contextmanager
def _promoter(
    *, repo: str, state: str | None, config_path: Path | None, as_json: bool
) -> Iterator[Promoter]:
    """The Promoter of a command with ``_options`` (its keyword arguments, as given)."""
    from gitswarm.promote.operator import load_operator_settings
    from gitswarm.promote.pipeline import Promoter
    from gitswarm.reconcile.sync import Reconciler
    from gitswarm.source.repo import RepoSource
    from gitswarm.source.verify import Verifier
    from gitswarm.store import Store
    from gitswarm.swarm.pool import SwarmPool

    operator = load_operator_settings(config_path)
    source = RepoSource.open(repo)
    if source.remote is not None:
        source.fetch()
    store = Store(state)
    progress = _Progress(enabled=not as_json)
    pool, verifier = SwarmPool(), Verifier()
    reconciler = Reconciler(
        source=source, store=store, swarm_for=pool, progress=progress, verifier=verifier
    )
    try:
        yield Promoter(
            reconciler,
            commands=operator.commands,
            http_allow=operator.http_allow,
            progress=progress,
        )
    finally:
        pool.close()
        verifier.close()
        store.close()


def _print(outcome: PromotionOutcome) -> None:
    head = f"{outcome.app}: {outcome.source} -> {outcome.target}: {outcome.result}"
    if outcome.reason and outcome.result not in ("Committed", "Unchanged"):
        head += f" [{outcome.reason}]"
    click.echo(head)
    for repo, (old, new) in sorted(outcome.changed.items()):
        click.echo(f"  image {repo}: {old or '?'} -> {new}")
    for gate in outcome.gates:
        mark = "skipped" if gate.skipped else ("pass" if gate.passed else "FAIL")
        click.echo(f"  gate {gate.name}: {mark}" + (f" ({gate.summary})" if gate.summary else ""))
        if not gate.passed and not gate.skipped and gate.output:
            for line in gate.output.rstrip().splitlines()[-40:]:
                click.echo(f"    | {line}")
    for path, diff in outcome.edits:
        click.echo(f"  edit {path}:")
        for line in diff.rstrip("\n").splitlines():
            click.echo(f"    {line}")
    if outcome.message:
        click.echo(f"  {outcome.message}")


def _finish(outcome: PromotionOutcome, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": outcome.ok, "result": outcome.as_dict()})
    else:
        _print(outcome)
    sys.exit(outcome.exit_code)


@click.command()
@click.option("--from", "source", required=True, help="The environment promoted from.")
@click.option("--to", "target", required=True, help="The environment promoted to.")
@click.option("--app", "app", default=None, help="Needed when the target has several apps.")
@click.option(
    "--image",
    "images",
    multiple=True,
    help="Only this image, NAME:TAG; it must be what the source runs (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Run the gates and show the edit; commit nothing.")
@_options
def promote(
    source: str,
    target: str,
    app: str | None,
    images: tuple[str, ...],
    dry_run: bool,
    **where: Any,
) -> None:
    """Promote the image tags deployed and healthy in one environment to the next."""
    as_json = bool(where["as_json"])

    def run() -> None:
        from gitswarm.promote.core.tags import parse_image_args
        from gitswarm.promote.pipeline import PromoteRequest

        refs = parse_image_args(images)
        with _promoter(**where) as promoter:
            _head, config = promoter.config()
            try:
                config.environment(target)
                config.environment(source)
            except KeyError as exc:
                raise UsageError(str(exc.args[0])) from None
            name = app
            if name is None:
                names = [a.name for a in config.apps_for(target)]
                if len(names) != 1:
                    raise UsageError(
                        f"{target} has {len(names)} applications ({', '.join(names) or 'none'}): "
                        "give --app"
                    )
                name = names[0]
            outcome = promoter.promote(
                PromoteRequest(name, source, target, refs, dry_run=dry_run, actor=_actor())
            )
        _finish(outcome, as_json)

    guarded(as_json, run)


def _decision(action: Decision, text: str, text_help: str, doc: str) -> click.Command:
    """``approve`` or ``reject``: the promotion, a text (``--comment``/``--reason``) and
    the promoting options; the acting user is authorized, then decides."""

    @click.command(name=action, help=doc)
    @click.argument("promotion_id", type=click.IntRange(min=1))
    @click.option(f"--{text}", "text", default="", help=text_help)
    @_options
    def command(promotion_id: int, text: str, **where: Any) -> None:
        as_json = bool(where["as_json"])

        def run() -> None:
            with _promoter(**where) as promoter:
                actor = _authorize_decision(promoter, promotion_id, action)
                if action == "approve":
                    outcome = promoter.approve(promotion_id, actor, text)
                else:
                    outcome = promoter.reject(promotion_id, actor, text)
            _finish(outcome, as_json)

        guarded(as_json, run)

    return command


approve = _decision(
    "approve",
    "comment",
    "Recorded with the approval.",
    "Approve a pending promotion; the last approval it needs commits it.",
)
reject = _decision(
    "reject",
    "reason",
    "[required] Why; recorded and notified.",
    "Reject a pending promotion: it ends, nothing is committed.",
)


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Every promotion, not only pending ones.")
@_store_options
def promotions(show_all: bool, state: str | None, as_json: bool) -> None:
    """Promotions waiting for approval, oldest first (--all: every one, newest first)."""

    def run() -> None:
        from gitswarm.promote.service import promotion_dict
        from gitswarm.store import Store

        with Store(state) as store:
            found = store.promotions() if show_all else store.pending_promotions()
            rows = [promotion_dict(p) for p in found]
        if as_json:
            emit_json({"ok": True, "promotions": rows})
            return
        if not rows:
            click.echo("no pending promotions" if not show_all else "no promotions")
        for row in rows:
            images = ", ".join(f"{r}:{t}" for r, t in sorted(row["images"].items()))
            approved = ", ".join(row["approved_by"]) or "none"
            click.echo(
                f"{row['id']}  {row['app']}: {row['from']} -> {row['to']}  {row['status']}  "
                f"{images}  requested by {row['requested_by']}  approved by {approved}"
            )

    guarded(as_json, run)


@click.group()
def hold() -> None:
    """Holds after a rollback: what keeps automation from re-applying a rolled-back tag."""


@hold.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Released holds too.")
@_store_options
def hold_list(show_all: bool, state: str | None, as_json: bool) -> None:
    """Active holds (with --all: released ones too), newest first."""

    def run() -> None:
        from gitswarm.store import Store

        with Store(state) as store:
            found = store.holds(active=None if show_all else True)
        if as_json:
            emit_json({"ok": True, "holds": [h.as_dict() for h in found]})
            return
        if not found:
            click.echo("no holds")
        for h in found:
            images = ", ".join(f"{r}:{t}" for r, t in sorted(h.images.items())) or "-"
            state_text = "active" if h.active else f"released by {h.released_by}"
            click.echo(f"{h.id}  {h.app}/{h.env}  {state_text}  {images}")
            click.echo(f"    {h.reason}")

    guarded(as_json, run)


@hold.command(name="release")
@click.argument("hold_id", type=click.IntRange(min=1))
@click.option("--reason", default="", help="[required] Why automation may go on.")
@_store_options
def hold_release(hold_id: int, reason: str, state: str | None, as_json: bool) -> None:
    """Release a hold: automation may apply newer tags to that app again."""

    def run() -> None:
        from gitswarm.store import Store

        if not reason.strip():
            raise UsageError('releasing a hold needs --reason "why": it goes into the audit trail')
        with Store(state) as store:
            done = store.release_hold(hold_id, _actor(), reason)
            held = store.get_hold(hold_id)
            if done:
                store.audit(
                    _actor(),
                    "hold-released",
                    f"{held.app}/{held.env}",
                    {"hold": hold_id, "why": reason, "via": "cli"},
                )
        if as_json:
            emit_json({"ok": True, "hold": held.as_dict(), "released_now": done})
            return
        if done:
            click.echo(f"hold {hold_id} on {held.app}/{held.env} released")
        else:
            click.echo(f"hold {hold_id} was already released by {held.released_by}")

    guarded(as_json, run)


__all__ = ["approve", "hold", "promote", "promotions", "reject"]
