"""One promotion of one application from one environment to the next (SPEC 4).

    Promoter.promote(request)
      source:  what runs in E1, deployed by gitswarm AND healthy: the store's revision is
               Git's head, the live swarm plans as Synced and assesses as Healthy, every
               service runs the image of that revision (else: PromotionFailed, nothing done)
      images:  E1's tags (or --image, which must be what E1 runs)
      edits:   core/edits.py on E2's files at Git's head; nothing to change -> done
      gates:   soak, http, command, policy, window (gates.py); one fails -> GateFailed,
               its output shown and stored, nothing committed; one the operator's
               config refuses (an http URL not in http_allow, a command not defined)
               -> GateNotAllowed (exit 2), nothing sent or run
      approvals: E2 needs N -> a pending promotion (store/promotions.py), notified;
               approve() by N distinct approvers (never the requester) commits it,
               after the gates have run once more
      commit:  the edits in a private clone, core/message.py's message and trailers,
               pushed; a push that loses a race is redone on the new head (never forced)
      record:  the promotion, a "promotion" operation in E2's history, a notification

Why one file: a promotion and its approvals are one record moving through one set of
steps (gates, commit, record, notify) that approve() re-enters half-way; kept together
they read in the order they happen. The pure parts are already out (core/), and so are
the gates' I/O (gates.py); approvals are the next to split off if this grows.

Called by cli/ (promote, approve, reject), api/promotions.py and promote/automation.py.
The Reconciler (reconcile/sync.py) supplies Git, the store, the swarm, the renderer and
the clock; nothing here talks to Docker except through reconcile's live status.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from gitswarm.errors import (
    ConfigError,
    GitswarmError,
    PromotionError,
    Reason,
    SourceError,
    UsageError,
)
from gitswarm.model.config import RepoConfig
from gitswarm.model.events import Event, EventKind
from gitswarm.model.instant import Instant, dated_in_the_future, elapsed
from gitswarm.model.operation import DEPLOY_KINDS, Promotion, Trigger
from gitswarm.model.policy import WINDOW_RULE
from gitswarm.model.tree import Tree
from gitswarm.promote.core.edits import EditPlan, current_images, plan_edits
from gitswarm.promote.core.message import CommitFacts, GateResult, commit_message, one_line
from gitswarm.promote.core.settings import PromotionSettings, promotion_settings
from gitswarm.promote.core.tags import ImageRef, parse_image
from gitswarm.promote.egress import HttpAllow, Resolver, system_resolve
from gitswarm.promote.gates import (
    GateCommand,
    GateFacts,
    HttpClient,
    default_client,
    run_command,
    run_http,
)
from gitswarm.reconcile.status import live_status
from gitswarm.reconcile.sync import Reconciler, Rendered
from gitswarm.source.git import run_git
from gitswarm.source.repo import RepoSource
from gitswarm.source.tree import GitTree
from gitswarm.source.writer import push as push_local
from gitswarm.source.writer import working_copy
from gitswarm.store import Store

log = logging.getLogger("gitswarm.promote")

AUTOMATION_USER = "gitswarm-automation"
PUSH_ATTEMPTS = 4

Result = Literal[
    "Committed", "Pending", "Approved", "Failed", "Unchanged", "DryRun", "Rejected", "Expired"
]


@dataclass(frozen=True)
class PromoteRequest:
    app: str
    source: str
    target: str
    images: tuple[ImageRef, ...] = ()  # --image: only these (each must be what E1 runs)
    dry_run: bool = False
    actor: str = "unknown"
    trigger: Trigger = "cli"
    # Image automation: the tags come from the registry, not from a source environment.
    automation: Mapping[str, str] | None = None


@dataclass(frozen=True)
class PromotionOutcome:
    app: str
    source: str
    target: str
    result: Result
    message: str = ""
    reason: Reason | None = None
    promotion_id: int | None = None
    commit: str | None = None
    source_revision: str | None = None
    changed: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    gates: tuple[GateResult, ...] = ()
    edits: tuple[tuple[str, str], ...] = ()  # (path, unified diff) for a dry run
    approvals: tuple[str, ...] = ()
    needed: int = 0
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "from": self.source,
            "to": self.target,
            "result": self.result,
            "message": self.message,
            "reason": self.reason,
            "promotion_id": self.promotion_id,
            "commit": self.commit,
            "source_revision": self.source_revision,
            "images": {r: {"from": o, "to": n} for r, (o, n) in sorted(self.changed.items())},
            "gates": [g.as_dict() for g in self.gates],
            "edits": [{"file": f, "diff": d} for f, d in self.edits],
            "approvals": list(self.approvals),
            "approvals_needed": self.needed,
        }


@dataclass
class OverlayTree:
    """A revision's files with some replaced: the target as it will be after the edit."""

    inner: Tree
    files: Mapping[str, bytes]

    @property
    def revision(self) -> str | None:
        return self.inner.revision

    def read(self, path: str, *, limit: int) -> bytes:
        if path in self.files:
            return self.files[path]
        return self.inner.read(path, limit=limit)

    def exists(self, path: str) -> bool:
        return path in self.files or self.inner.exists(path)

    def is_dir(self, path: str) -> bool:
        return self.inner.is_dir(path)

    def listdir(self, path: str) -> list[str]:
        return self.inner.listdir(path)


def _reader(tree: Tree) -> Callable[[str], bytes | None]:
    def read(path: str) -> bytes | None:
        if not tree.exists(path):
            return None
        return tree.read(path, limit=1024 * 1024)

    return read


def _diff(path: str, before: bytes, after: bytes) -> str:
    import difflib

    old = before.decode("utf-8", errors="replace").splitlines(keepends=True)
    new = after.decode("utf-8", errors="replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"))


@dataclass
class Source:
    """What runs in the source environment, checked."""

    revision: str
    images: dict[str, str]
    # how long it has run these images healthy (the soak), on the monotonic clock
    # where it can be (model/instant.py); None: no successful deploy on record
    healthy_for: dt.timedelta | None


@dataclass
class Promoter:
    reconciler: Reconciler
    commands: Mapping[str, GateCommand] = field(default_factory=dict)
    # Where http gates may go (promotion.http_allow of the operator's config): nowhere
    # unless the operator says so.
    http_allow: HttpAllow = field(default_factory=HttpAllow)
    http: HttpClient = default_client
    resolve: Resolver = system_resolve
    progress: Callable[[str], None] = lambda _msg: None
    sleep: Callable[[float], None] = field(default=lambda s: __import__("time").sleep(s))
    # Tests: called after the commit, before each push (a racing commit lands here).
    before_push: Callable[[int], None] | None = None

    @property
    def store(self) -> Store:
        return self.reconciler.store

    @property
    def source(self) -> RepoSource:
        return self.reconciler.source

    def now(self) -> dt.datetime:
        return self.reconciler.clock.now()

    # --- reading -------------------------------------------------------------------------

    def config(self) -> tuple[str, RepoConfig]:
        head = self.source.head()
        return head, self.reconciler.config_at(head)

    def settings(self, config: RepoConfig, target: str) -> PromotionSettings:
        try:
            return promotion_settings(config, target)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None

    def check_source(self, app: str, env: str) -> Source:
        """The source's deployed revision and images, refusing anything not deployed by
        gitswarm and healthy right now."""
        self.progress(f"check {app} in {env}: deployed and healthy")
        rendered = self.reconciler.render(app, env, None)
        live = live_status(self.reconciler, app, env, rendered)
        where = f"{app} in {env}"
        if live.error is not None:
            raise PromotionError(
                f"cannot tell what runs of {where}: [{live.error.reason}] {live.error.message}"
            )
        problems = []
        stored = self.store.get_status(app, env)
        if stored is None or stored.revision is None:
            problems.append("gitswarm has never deployed it")
        if live.sync != "Synced":
            problems.append(f"it is {live.sync} ({live.message or 'differs from Git'})")
        if live.health != "Healthy":
            problems.append(f"it is {live.health}")
        if stored is not None and stored.health == "Degraded" and live.health == "Healthy":
            problems.append(f"its last deploy left it Degraded ({stored.reason})")
        desired = rendered.desired
        for svc in live.services:
            want = desired.services.get(svc["service"], {}).get("image")
            running = str(svc.get("image") or "")
            if isinstance(want, str) and running and running.split("@")[0] != want:
                problems.append(
                    f"service {svc['service']} runs {running.split('@')[0]}, not {want}: "
                    "it is not at the revision it claims"
                )
        if problems:
            raise PromotionError(
                f"{where} is not deployed and healthy, so there is nothing to promote: "
                + "; ".join(problems)
            )
        if stored is None or stored.revision is None:  # pragma: no cover - a problem above
            raise PromotionError(f"{where}: gitswarm has never deployed it")
        # What runs is what Git's head renders (Synced, the same images); the revision
        # gitswarm deployed it from is what was soaked, and what the commit names.
        since = self.healthy_since(app, env)
        held = None if since is None else elapsed(since, self.store.instant())
        return Source(stored.revision, current_images(desired), held)

    def healthy_since(self, app: str, env: str) -> Instant | None:
        """Since when ``app`` has run its current images in ``env`` without a failure or a
        drift in between (the soak clock): the deploy that last changed an image (or
        created or removed a service) starts it; later no-op deploys of newer commits
        do not."""
        since = None
        for op in self.store.history(app, env, limit=500, kinds=(*DEPLOY_KINDS, "drift")):
            if op.dry_run:
                continue
            if op.kind == "drift" or op.result != "Succeeded":
                break
            since = op.finished or Instant(op.started_at)
            if any(
                c.action in ("created", "removed") or any("image" in f for f in c.fields)
                for c in op.changes
            ):
                break
        return since

    # --- the pipeline ------------------------------------------------------------------

    def promote(self, req: PromoteRequest) -> PromotionOutcome:
        base = PromotionOutcome(req.app, req.source, req.target, "Failed")
        try:
            return self._promote(req, base)
        except GitswarmError as exc:
            outcome = replace(base, message=exc.message, reason=exc.reason, exit_code=exc.exit_code)
            self._record(req, outcome)
            return outcome

    def _promote(self, req: PromoteRequest, base: PromotionOutcome) -> PromotionOutcome:
        head, config = self.config()
        try:
            config.application(req.app)
            target_env = config.environment(req.target)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        settings = self.settings(config, req.target)
        if req.automation is None:
            if settings.source is None:
                raise UsageError(f"{req.target} is the first environment: nothing promotes to it")
            if req.source != settings.source:
                line = target_env.positions.get(("promotion", "from"))
                where = f" ({target_env.source}:{line[0]} promotion.from)" if line else ""
                raise UsageError(
                    f"{req.target} is promoted from {settings.source}, not {req.source}{where}"
                )
            deployed_to = {
                env for env in (req.source, req.target)
                if req.app in {a.name for a in config.apps_for(env)}
            }  # fmt: skip
            if deployed_to != {req.source, req.target}:
                raise UsageError(f"{req.app} is not deployed to both {req.source} and {req.target}")
            source = self.check_source(req.app, req.source)
            images = dict(source.images)
            if req.images:
                images = self._chosen(req, source.images)
            base = replace(base, source_revision=source.revision)
        else:
            source = Source("", dict(req.automation), None)
            images = dict(req.automation)
        target = self.reconciler.render(req.app, req.target, head)
        tree = GitTree(self.source.git_dir, head)
        edits = plan_edits(target.desired, target.env, _only_shared(images, target), _reader(tree))
        if edits.empty:
            return replace(
                base,
                result="Unchanged",
                message=f"{req.target} already runs these tags: nothing to promote",
            )
        base = replace(base, changed=dict(edits.changed))
        gates = self.run_gates(req, settings, source, target, edits, tree)
        base = replace(base, gates=tuple(gates))
        failed = [g for g in gates if not g.passed and not g.skipped]
        if req.dry_run:
            diffs = tuple((e.path, _diff(e.path, e.before, e.after)) for e in edits.edits)
            verdict = "would fail: " + ", ".join(g.name for g in failed) if failed else "gates pass"
            return replace(
                base,
                result="DryRun",
                edits=diffs,
                needed=settings.approvals if req.automation is None else 0,
                message=f"dry run: nothing committed; {verdict}",
                exit_code=_gate_exit(failed),
                reason=_gate_reason(failed) if failed else None,
            )
        if failed:
            record = self._create(req, edits, gates, status="failed")
            outcome = replace(
                base,
                promotion_id=record.id,
                reason=_gate_reason(failed),
                exit_code=_gate_exit(failed),
                message="gate failed, nothing committed: "
                + "; ".join(f"{g.name}: {g.summary}" for g in failed),
            )
            self._record(req, outcome)
            self._notify("promotion_failed", outcome)
            return outcome
        needed = settings.approvals if req.automation is None else 0
        if needed:
            record = self._create(req, edits, gates, status="pending")
            outcome = replace(
                base,
                result="Pending",
                promotion_id=record.id,
                needed=needed,
                reason=PromotionError.APPROVAL_REQUIRED,
                message=f"promotion {record.id} waits for {needed} approval"
                f"{'s' if needed > 1 else ''} (gitswarm approve {record.id}); it expires "
                f"{(record.created_at + settings.expires).isoformat(timespec='seconds')}",
            )
            self._record(req, outcome)
            self._notify("promotion_pending", outcome)
            return outcome
        record = self._create(req, edits, gates, status="approved")
        return self._commit(req, record, replace(base, promotion_id=record.id), settings)

    def _chosen(self, req: PromoteRequest, running: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for ref in req.images:
            now = running.get(ref.repository)
            if now is None:
                raise UsageError(
                    f"--image {ref}: {req.app} in {req.source} runs no image of "
                    f"{ref.repository} (it runs: {', '.join(sorted(running)) or 'none'})"
                )
            if now != ref.tag:
                raise PromotionError(
                    f"--image {ref}: {req.source} runs {ref.repository}:{now}, not {ref.tag}; "
                    f"only what is deployed and healthy in {req.source} is promoted"
                )
            out[ref.repository] = now
        return out

    def run_gates(
        self,
        req: PromoteRequest,
        settings: PromotionSettings,
        source: Source,
        target: Rendered,
        edits: EditPlan,
        tree: Tree,
    ) -> list[GateResult]:
        gates = settings.gates
        results: list[GateResult] = []

        def note(result: GateResult) -> None:
            mark = "skipped" if result.skipped else ("pass" if result.passed else "FAIL")
            self.progress(f"gate {result.name}: {mark} {result.summary}")
            results.append(result)

        if req.automation is None:
            self.progress("gate source-healthy")
            note(self._soak(req, settings, source))
        if req.automation is None:
            for http_gate in gates.http:
                self.progress(f"gate {http_gate.name}: GET {http_gate.url}")
                note(run_http(http_gate, self.http_allow, self.http, self.sleep, self.resolve))
            facts = GateFacts(req.app, req.source, req.target, source.revision, {
                r: new for r, (_old, new) in edits.changed.items()
            })  # fmt: skip
            for name in gates.commands:
                gate_name = f"command-{name}"
                command = self.commands.get(name)
                if command is None:
                    note(
                        GateResult(
                            gate_name,
                            False,
                            f"no command {name!r} is defined in the operator's config "
                            "(promotion.commands of --config / the agent's config)",
                            refused=True,
                        )
                    )
                    continue
                if req.dry_run:
                    note(GateResult(gate_name, True, "not run in a dry run", skipped=True))
                    continue
                self.progress(f"gate {gate_name}: {' '.join(command.argv)[:120]}")
                note(run_command(command, facts))
        if gates.policy or gates.window:
            after = OverlayTree(tree, {e.path: e.after for e in edits.edits})
            renderer = self.reconciler.renderer(after, target.config, target.commit)
            desired = renderer.render(req.app, target.env)
            wrong = [
                f"{svc}: {spec.get('image')}"
                for svc in edits.services
                if (spec := desired.services.get(svc, {}))
                and parse_image(str(spec.get("image"))).tag
                != edits.changed.get(parse_image(str(spec.get("image"))).repository, ("", ""))[1]
            ]
            if wrong:  # pragma: no cover - plan_edits checks its own work
                raise PromotionError("the edit did not give the new tags: " + ", ".join(wrong))
            report = renderer.evaluate(desired, target.env, now=self.now())
            if gates.policy:
                violations = [r for r in report.violations if r.rule != WINDOW_RULE]
                if violations:
                    note(
                        GateResult(
                            "policy",
                            False,
                            f"{len(violations)} enforced rule(s) fail in {req.target}",
                            "\n".join(f"{r.rule}: {r.message}" for r in violations[:50]),
                        )
                    )
                else:
                    warned = len(report.warnings)
                    note(GateResult("policy", True, f"{warned} warning(s)" if warned else ""))
            if gates.window:
                state = report.window
                mode = report.modes.get(WINDOW_RULE, "off")
                if state is None:
                    note(GateResult("window", True, "no deployment window"))
                elif state.open:
                    note(GateResult("window", True, f"open: {one_line(state.reason, 100)}"))
                elif mode == "enforce":
                    later = f"; opens {state.next_open.isoformat()}" if state.next_open else ""
                    note(
                        GateResult("window", False, f"closed: {one_line(state.reason, 120)}{later}")
                    )
                else:
                    note(GateResult("window", True, f"closed, but deployment_windows is {mode}"))
        return results

    def _soak(self, req: PromoteRequest, settings: PromotionSettings, source: Source) -> GateResult:
        want = settings.gates.source_healthy_for
        rev = source.revision[:12]
        if source.healthy_for is None:
            if want:
                return GateResult(
                    "source-healthy",
                    False,
                    f"{req.source} has no successful deploy of {rev} on record",
                )
            return GateResult("source-healthy", True, f"Synced and Healthy at {rev}")
        held = source.healthy_for
        minutes = f"{int(held.total_seconds() // 60)}m{int(held.total_seconds() % 60):02d}s"
        if want and held < want:
            return GateResult(
                "source-healthy",
                False,
                f"{req.source} has been healthy at {rev} for {minutes}, less than the "
                f"{_span(want)} soak",
            )
        return GateResult("source-healthy", True, f"Synced and Healthy at {rev} for {minutes}")

    # --- approvals -----------------------------------------------------------------------

    def approve(
        self, promotion_id: int, user: str, comment: str = "", trigger: Trigger = "cli"
    ) -> PromotionOutcome:
        """``user``'s approval (the caller has checked the approver role); commits when
        it is the Nth distinct one."""
        promotion = self._pending(promotion_id)
        if user == promotion.requested_by:
            raise UsageError(
                f"{user} requested promotion {promotion_id} and cannot approve it; it needs "
                "approvers other than the requester"
            )
        decided = self.store.decide_promotion(promotion_id, user, "approve", comment)
        self._audit(user, "approve", decided)
        _head, config = self.config()
        settings = self.settings(config, decided.to_env)
        approvers = [u for u in decided.approved_by if u != decided.requested_by]
        req = self._request_of(decided, user, trigger)
        base = self._outcome_of(
            decided, "Approved", approvals=tuple(approvers), needed=settings.approvals
        )
        self._record(req, replace(base, message=f"approved by {user}"), kind="approval")
        if len(approvers) < settings.approvals:
            return replace(
                base,
                message=f"approved by {user}: {len(approvers)} of {settings.approvals} "
                "approvals; waiting for more",
            )
        if not self.store.set_promotion_status(promotion_id, "approved", expect="pending"):
            return replace(base, message=f"approved by {user}; it is being committed already")
        return self._recheck_and_commit(decided, req, settings, tuple(approvers))

    def reject(
        self, promotion_id: int, user: str, reason: str, trigger: Trigger = "cli"
    ) -> PromotionOutcome:
        if not reason.strip():
            raise UsageError("a rejection needs a reason (--reason): it goes into the history")
        promotion = self._pending(promotion_id)
        if user == promotion.requested_by:
            raise UsageError(f"{user} requested promotion {promotion_id} and cannot decide on it")
        decided = self.store.decide_promotion(promotion_id, user, "reject", reason)
        self._audit(user, "reject", decided)
        self.store.set_promotion_status(promotion_id, "rejected", expect="pending")
        outcome = self._outcome_of(
            decided,
            "Rejected",
            message=f"rejected by {user}: {one_line(reason)}",
            reason=PromotionError.REJECTED,
        )
        self._record(self._request_of(decided, user, trigger), outcome, kind="approval")
        self._notify("promotion_rejected", outcome)
        return outcome

    def expire(self, now: dt.datetime | None = None) -> list[PromotionOutcome]:
        """Mark every pending promotion older than its target's ``expires`` as expired,
        and every one dated in the future (created before the clock stepped back, or by
        a host running ahead: it would outlive ``expires``). "Now" is the store's shared
        clock (PostgreSQL's on PostgreSQL), the one ``created_at`` was written by."""
        now = now or self.store.shared_now()
        out = []
        _head, config = self.config()
        for promotion in self.store.pending_promotions():
            try:
                expires = self.settings(config, promotion.to_env).expires
            except (ConfigError, UsageError):
                continue
            future = dated_in_the_future(promotion.created_at, now)
            if promotion.created_at + expires > now and not future:
                continue
            if self.store.set_promotion_status(promotion.id, "expired", expect="pending"):
                why = (
                    f"expired: it is dated {promotion.created_at.isoformat(timespec='seconds')}"
                    f", after now ({now.isoformat(timespec='seconds')}); a clock stepped back"
                    if future
                    else f"expired after {_span(expires)} without "
                    f"{self.settings(config, promotion.to_env).approvals} approvals"
                )
                outcome = self._outcome_of(
                    promotion,
                    "Expired",
                    reason=PromotionError.EXPIRED,
                    message=f"promotion {promotion.id} {why}",
                )
                self._record(
                    self._request_of(promotion, "gitswarm", "agent"), outcome, kind="approval"
                )
                self._notify("promotion_expired", outcome)
                out.append(outcome)
        return out

    def _pending(self, promotion_id: int) -> Promotion:
        self.expire()
        promotion: Promotion = self.store.get_promotion(promotion_id)
        if promotion.status != "pending":
            raise UsageError(f"promotion {promotion_id} is {promotion.status}, not pending")
        return promotion

    def _request_of(self, p: Promotion, actor: str, trigger: Trigger = "cli") -> PromoteRequest:
        return PromoteRequest(p.app, p.from_env, p.to_env, actor=actor, trigger=trigger)

    def _outcome_of(self, p: Promotion, result: Result, **kw: Any) -> PromotionOutcome:
        changed = {r: ("", str(tag)) for r, tag in (p.images or {}).items()}
        return PromotionOutcome(
            p.app,
            p.from_env,
            p.to_env,
            result,
            promotion_id=p.id,
            changed=changed,
            gates=tuple(GateResult.from_dict(g) for g in p.gates),
            **kw,
        )

    def _recheck_and_commit(
        self,
        promotion: Promotion,
        req: PromoteRequest,
        settings: PromotionSettings,
        approvers: tuple[str, ...],
    ) -> PromotionOutcome:
        """Gates again, on what runs now, just before the commit."""
        base = self._outcome_of(promotion, "Failed", approvals=approvers, needed=settings.approvals)
        try:
            source = self.check_source(promotion.app, promotion.from_env)
            wanted = {r: new for r, (_old, new) in base.changed.items()}
            moved = {r: t for r, t in wanted.items() if source.images.get(r) != t}
            if moved:
                raise PromotionError(
                    f"{promotion.from_env} no longer runs what was approved ("
                    + ", ".join(f"{r}:{t}" for r, t in moved.items())
                    + "); request a new promotion"
                )
            head, _config = self.config()
            target = self.reconciler.render(promotion.app, promotion.to_env, head)
            tree = GitTree(self.source.git_dir, head)
            edits = plan_edits(target.desired, target.env, wanted, _reader(tree))
            gates = self.run_gates(
                replace(req, actor=promotion.requested_by), settings, source, target, edits, tree
            )
        except GitswarmError as exc:
            self.store.set_promotion_status(promotion.id, "failed", message=exc.message)
            outcome = replace(base, message=exc.message, reason=exc.reason, exit_code=1)
            self._record(req, outcome)
            self._notify("promotion_failed", outcome)
            return outcome
        failed = [g for g in gates if not g.passed and not g.skipped]
        if failed:
            self.store.set_promotion_status(
                promotion.id, "failed", gates=[g.as_dict() for g in gates]
            )
            outcome = replace(
                base,
                gates=tuple(gates),
                reason=_gate_reason(failed),
                exit_code=_gate_exit(failed),
                message="approved, but a gate failed when checked again; nothing committed: "
                + "; ".join(f"{g.name}: {g.summary}" for g in failed),
            )
            self._record(req, outcome)
            self._notify("promotion_failed", outcome)
            return outcome
        self.store.set_promotion_status(
            promotion.id, "approved", gates=[g.as_dict() for g in gates]
        )
        record = self.store.get_promotion(promotion.id)
        return self._commit(
            replace(req, actor=promotion.requested_by),
            record,
            replace(base, gates=tuple(gates), source_revision=source.revision),
            settings,
            approvers=approvers,
            approver=req.actor,
        )

    # --- commit and push ---------------------------------------------------------------

    def _create(
        self, req: PromoteRequest, edits: EditPlan, gates: Sequence[GateResult], *, status: str
    ) -> Promotion:
        record: Promotion = self.store.create_promotion(
            req.app,
            req.source,
            req.target,
            images={r: new for r, (_old, new) in edits.changed.items()},
            requested_by=req.actor,
            gates=[g.as_dict() for g in gates],
        )
        if status != "pending":
            self.store.set_promotion_status(record.id, status)  # type: ignore[arg-type]
        self.store.audit(
            req.actor,
            "promotion-requested",
            f"{req.app}/{req.target}",
            {"promotion": record.id, "from": req.source, "via": req.trigger, "status": status},
        )
        return record

    def _commit(
        self,
        req: PromoteRequest,
        record: Promotion,
        base: PromotionOutcome,
        settings: PromotionSettings,
        *,
        approvers: tuple[str, ...] = (),
        approver: str | None = None,
    ) -> PromotionOutcome:
        wanted = {r: new for r, (_old, new) in base.changed.items()}
        facts = CommitFacts(
            app=req.app,
            source=req.source,
            target=req.target,
            source_revision=base.source_revision,
            changed=base.changed,
            gates=base.gates,
            requested_by=req.actor,
            approved_by=approvers,
            promotion_id=record.id,
            kind="image-automation" if req.automation is not None else "promotion",
        )
        try:
            sha, changed = self._write(req, wanted, facts)
        except GitswarmError as exc:
            self.store.set_promotion_status(record.id, "failed", message=exc.message)
            outcome = replace(base, message=exc.message, reason=exc.reason, exit_code=exc.exit_code)
            self._record(req, outcome)
            self._notify("promotion_failed", outcome)
            return outcome
        if sha is None:
            self.store.set_promotion_status(record.id, "committed", message="already in Git")
            return replace(base, result="Unchanged", message=f"{req.target} already has these tags")
        self.store.set_promotion_status(
            record.id,
            "committed",
            commit_sha=sha,
            message=commit_message(replace(facts, changed=changed)),
        )
        if req.automation is None and req.trigger != "agent":
            for hold in self.store.holds(req.app, req.target):
                self.store.release_hold(
                    hold.id, approver or req.actor, f"promoted by {approver or req.actor}"
                )
        images = ", ".join(f"{r}:{n}" for r, (_o, n) in sorted(changed.items()))
        outcome = replace(
            base,
            result="Committed",
            commit=sha,
            changed=changed,
            approvals=approvers,
            needed=settings.approvals if req.automation is None else 0,
            message=f"committed {sha[:12]}: {images} to {req.target}",
        )
        self._record(req, outcome)
        self._notify("promotion_committed", outcome)
        return outcome

    def _write(
        self, req: PromoteRequest, wanted: Mapping[str, str], facts: CommitFacts
    ) -> tuple[str | None, Mapping[str, tuple[str, str]]]:
        """Commit the edits in a private clone and push them; on a push that loses a race,
        fetch, redo the edits on the new head, and push again (never --force)."""
        source = self.source
        with working_copy(source) as wc:
            for attempt in range(PUSH_ATTEMPTS):
                config = self.reconciler.config_at(wc.base) if attempt == 0 else None
                tree = GitTree(wc.path, wc.base)
                config = config or _load_config(tree)
                from gitswarm.render import render_stack

                env = config.environment(req.target)
                identity, why = self.reconciler.load_identity(config, env)
                desired = render_stack(tree, config, req.app, req.target, identity, no_identity=why)
                edits = plan_edits(desired, env, wanted, _reader(tree))
                if edits.empty:
                    return None, {}
                for edit in edits.edits:
                    wc.write(edit.path, edit.after)
                message = commit_message(replace(facts, changed=edits.changed))
                if wc.commit(message) is None:
                    return None, {}
                if self.before_push is not None:
                    self.before_push(attempt)
                self.progress(f"push to {source.remote or source.spec}")
                if source.remote is None:
                    return push_local(source, wc), edits.changed
                proc = run_git(
                    ["push", "-q", "origin", f"HEAD:refs/heads/{wc.branch}"],
                    cwd=wc.path,
                    check=False,
                )
                if proc.returncode == 0:
                    sha = wc.git("rev-parse", "HEAD")
                    with contextlib.suppress(GitswarmError):
                        source.fetch()
                    return sha, edits.changed
                err = proc.stderr.decode(errors="replace").strip()
                if not any(w in err for w in ("rejected", "fetch first", "non-fast-forward")):
                    raise SourceError(f"git push to {source.remote} failed: {err}")
                self.progress("the branch moved meanwhile: redo the edit on its new head")
                run_git(["fetch", "-q", "origin", wc.branch], cwd=wc.path)
                run_git(["reset", "-q", "--hard", "FETCH_HEAD"], cwd=wc.path)
                wc.base = wc.git("rev-parse", "HEAD")
        raise SourceError(f"git push kept losing races ({PUSH_ATTEMPTS} tries); try again")

    # --- record and notify ---------------------------------------------------------------

    def _record(
        self, req: PromoteRequest, outcome: PromotionOutcome, kind: str = "promotion"
    ) -> None:
        result = {
            "Committed": "Succeeded",
            "Unchanged": "Succeeded",
            "Approved": "Succeeded",
            "Pending": "Skipped",
            "Rejected": "Failed",
            "Expired": "Failed",
            "Failed": "Failed",
        }.get(outcome.result)
        if result is None or req.dry_run:
            return
        try:
            self.store.record_operation(
                kind,  # type: ignore[arg-type]
                req.app,
                req.target,
                result,  # type: ignore[arg-type]
                trigger=req.trigger,
                actor=req.actor,
                revision=outcome.commit,
                reason=outcome.reason,
                message=(
                    f"promotion {outcome.promotion_id} from {req.source}: "
                    if outcome.promotion_id
                    else f"from {req.source}: "
                )
                + outcome.message,
            )
        except GitswarmError:
            log.exception("could not record the promotion of %s to %s", req.app, req.target)

    def _audit(self, user: str, action: str, p: Promotion) -> None:
        self.store.audit(user, f"promotion-{action}", f"{p.app}/{p.to_env}", {"promotion": p.id})

    def _notify(self, kind: EventKind, outcome: PromotionOutcome) -> None:
        notifier = self.reconciler.notifier
        if notifier is None:
            return
        notifier.send(
            Event(
                kind,
                outcome.app,
                outcome.target,
                outcome.commit,
                outcome.message,
                outcome.reason,
                {"promotion": outcome.promotion_id, "from": outcome.source},
            )
        )


def _only_shared(images: Mapping[str, str], target: Rendered) -> dict[str, str]:
    """The images of the source that the target runs too (by repository)."""
    present = set(current_images(target.desired))
    return {r: t for r, t in images.items() if r in present}


def _load_config(tree: Tree) -> RepoConfig:
    from gitswarm.repo import load_config

    return load_config(tree)


def _gate_reason(failed: Sequence[GateResult]) -> Reason:
    """GateNotAllowed when the operator's config refused a gate (nothing was sent or
    run: a commit or the config must change), else GateFailed."""
    if any(g.refused for g in failed):
        return PromotionError.GATE_NOT_ALLOWED
    return PromotionError.GATE_FAILED


def _gate_exit(failed: Sequence[GateResult]) -> int:
    """0 when nothing failed; 2 (bad input) for a refused gate; 1 for a failed one."""
    if not failed:
        return 0
    return 2 if _gate_reason(failed) is PromotionError.GATE_NOT_ALLOWED else 1


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


__all__ = ["AUTOMATION_USER", "PromoteRequest", "Promoter", "PromotionOutcome"]
