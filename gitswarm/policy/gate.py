"""The policy gate: every rule over one rendered stack, before anything is applied.

Called by `gitswarm validate` / `gitswarm policy check`, by `gitswarm sync` and by the
agent, between render and plan, all with the same inputs: the DesiredStack, its
Environment (for the ``policies:`` block), the ``policies/*.rego`` texts, the clock, and
the Rego evaluator to run the texts with (a port: gitswarm/sandbox provides the bounded one).
The report says what failed, where (file:line from the stack's source map), and whether
the deploy is blocked; :func:`raise_for_violations` turns a blocked report into the
error the callers already handle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gitswarm.errors import PolicyError, UsageError, WindowClosed
from gitswarm.model.config import Environment
from gitswarm.model.policy import WINDOW_RULE, PolicyReport, PolicyResult, WindowState
from gitswarm.model.stack import DesiredStack, SourceLocation
from gitswarm.policy import rules as builtin
from gitswarm.policy.certs import certificates
from gitswarm.policy.floor import PolicyLayer, combine, loosenings, modes_in_force
from gitswarm.policy.rego import RegoEvaluator, RegoOutcome, input_document
from gitswarm.policy.settings import (
    CLOCK_RULES,
    CONFIG_FILE,
    REGO,
    RULES,
    PolicySettings,
    settings_for,
)
from gitswarm.policy.windows import WindowSettings, evaluate_windows


def window_state(settings: PolicySettings | WindowSettings, now: datetime) -> WindowState:
    """Whether deployments may happen at ``now`` and, if not, when they may next.

    With PolicySettings whose ``deployment_windows`` is off, always open. The agent holds
    a change while this is closed (and the rule is ``enforce``) and applies it at
    ``next_open``.
    """
    if isinstance(settings, PolicySettings):
        if settings.mode(WINDOW_RULE) == "off":
            if now.tzinfo is None:
                raise ValueError("now must be a timezone-aware datetime")
            return WindowState(open=True, reason="deployment windows are off")
        settings = settings.windows
    return evaluate_windows(settings, now)


def evaluate(
    desired: DesiredStack,
    env: Environment,
    *,
    rego_sources: Mapping[str, str],
    now: datetime,
    context: Mapping[str, Any] | None = None,
    override_window: str | None = None,
    rego: RegoEvaluator | None = None,
    secret_created: Mapping[str, datetime] | None = None,
    layers: Sequence[PolicyLayer] = (),
) -> PolicyReport:
    """Run every enabled rule. Raises ConfigError for a bad ``policies:`` block, UsageError
    for an override without a reason; policy failures are results in the report.

    ``rego`` evaluates ``rego_sources``: gitswarm/sandbox's RegoSandbox (a bounded child
    process) for real use, policy.rego.evaluate_rego (this process) in tests. There is no
    default, so no caller runs a commit's policies unbounded by accident.

    ``secret_created``: when each secret version (by Swarm name) first appeared on the
    target -- its value is content-addressed, so that is when the value last changed. The
    agent reads it from the swarm; without it (``policy check``) ``secret_max_age`` has
    nothing to judge and is skipped.

    ``layers``: settings the commit cannot loosen (floor.py: the agent config's floor,
    the revision deployed last); every finding gets the strictest verdict of the commit's
    settings and theirs, and ``loosened`` in the report says where they differed."""
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    if override_window is not None and not override_window.strip():
        raise UsageError("overriding a deployment window needs a reason")
    settings = settings_for(env)
    results, window = _judge(
        desired, settings, rego_sources, now, context, override_window, rego, secret_created
    )
    layered: list[tuple[str, list[PolicyResult]]] = []
    loosened: list[str] = []
    for layer in layers:
        found, held = _judge(
            desired,
            layer.settings,
            layer.rego_sources or {},
            now,
            context,
            override_window,
            rego,
            secret_created,
            rules=layer.rules,
        )
        layered.append((_label(layer), found))
        if held is not None and not held.open and (window is None or window.open):
            window = held  # the closed window holds the change
        loosened.extend(loosenings(settings, layer, rego_sources))
    if layered:
        results = combine(results, layered)

    return PolicyReport(
        app=desired.app,
        env=desired.env,
        stack=desired.stack,
        revision=desired.revision,
        evaluated_at=now,
        results=tuple(results),
        modes=modes_in_force(settings, layers),
        window=window,
        override_window=override_window.strip() if override_window else None,
        loosened=tuple(loosened),
    )


def _label(layer: PolicyLayer) -> str:
    if layer.kind == "floor":
        return "pinned by the agent's config"
    return f"required as at {layer.label}"


def _judge(
    desired: DesiredStack,
    settings: PolicySettings,
    rego_sources: Mapping[str, str],
    now: datetime,
    context: Mapping[str, Any] | None,
    override_window: str | None,
    rego: RegoEvaluator | None,
    secret_created: Mapping[str, datetime] | None,
    *,
    rules: Sequence[str] = (*RULES, REGO),
) -> tuple[list[PolicyResult], WindowState | None]:
    """Every rule of ``rules`` that ``settings`` leaves on, over ``desired``."""
    results = [r for r in _builtin_results(desired, settings) if r.rule in rules]
    if "certificate_expiry" in rules:
        results += _certificate_results(desired, settings, now)
    if secret_created is not None and "secret_max_age" in rules:
        results += _secret_age_results(desired, settings, now, secret_created)

    window: WindowState | None = None
    window_mode = settings.mode(WINDOW_RULE)
    if window_mode != "off" and WINDOW_RULE in rules:
        window = evaluate_windows(settings.windows, now)
        if not window.open:
            results.append(_window_result(window, window_mode, override_window))

    if settings.mode(REGO) != "off" and rego_sources and REGO in rules:
        if rego is None:
            raise ValueError("policies/*.rego need a Rego evaluator: pass rego=")
        document = input_document(desired, now=now, window=window, context=context)
        outcome = rego(rego_sources, document, settings.rego.params)
        results.extend(_rego_results(desired, settings, outcome))
    return results, window


def _builtin_results(desired: DesiredStack, settings: PolicySettings) -> list[PolicyResult]:
    results = []
    for name in RULES:
        rule = settings.rule(name)
        if rule.mode == "off" or name in CLOCK_RULES:
            continue  # these depend on the clock, not on the stack alone: see evaluate()
        for finding in builtin.run(name, desired, settings):
            exempt = rule.exempt.get(finding.service) if finding.service else None
            results.append(_result(desired, name, rule.mode, finding, exempt))
    return results


def _certificate_results(
    desired: DesiredStack, settings: PolicySettings, now: datetime
) -> list[PolicyResult]:
    """``certificate_expiry``: a certificate in a config or secret that expires within
    ``days`` (or has expired). Its subject and date only: never the object's content."""
    rule = settings.rule("certificate_expiry")
    if rule.mode == "off":
        return []
    days = settings.certificates.days
    results = []
    for cert in certificates(desired):
        left = cert.not_after - now
        if left.total_seconds() > days * 86400:
            continue
        when = cert.not_after.strftime("%Y-%m-%d %H:%M UTC")
        state = (
            f"expired on {when}"
            if left.total_seconds() <= 0
            else f"expires on {when}, in {max(0, left.days)} days (within {days})"
        )
        where = f" (certificate {cert.index + 1} of the bundle)" if cert.index else ""
        finding = builtin.Finding(
            None,
            f"{cert.kind} {cert.key}: certificate {cert.subject!r}{where} {state}; renew it "
            "and commit the new file (or update it at its provider)",
            (f"{cert.kind}s", cert.key),
        )
        results.append(_result(desired, "certificate_expiry", rule.mode, finding, None))
    return results


def _secret_age_results(
    desired: DesiredStack,
    settings: PolicySettings,
    now: datetime,
    created: Mapping[str, datetime],
) -> list[PolicyResult]:
    """``secret_max_age``: a secret whose value has not changed for longer than
    ``max_age`` (the seed's ``rotation: 90_days``)."""
    rule = settings.rule("secret_max_age")
    if rule.mode == "off" or not settings.secret_age.max_age_days:
        return []
    limit = settings.secret_age.max_age_days
    results = []
    for material in desired.objects:
        since = created.get(material.name) if material.kind == "secret" else None
        if since is None:
            continue  # a new value: it appears with this deployment
        age = now - since
        if age.total_seconds() <= limit * 86400:
            continue
        finding = builtin.Finding(
            None,
            f"secret {material.key}: its value has not changed since "
            f"{since.strftime('%Y-%m-%d')} ({age.days} days, more than max_age {limit}d); "
            "rotate it: a new value (`gitswarm secret encrypt`, or at its provider) deploys "
            "as a new secret version",
            ("secrets", material.key),
        )
        results.append(_result(desired, "secret_max_age", rule.mode, finding, None))
    return results


def _rego_results(
    desired: DesiredStack, settings: PolicySettings, outcome: RegoOutcome
) -> list[PolicyResult]:
    rego = settings.rule(REGO)
    results = []
    for failure in outcome.failures:  # always blocking, whatever the mode
        where = f"{failure.file}: " if failure.file else ""
        location = None
        if failure.file:
            location = SourceLocation(failure.file, failure.line, failure.column)
        results.append(
            PolicyResult(
                rule=f"rego:{failure.package}" if failure.package else REGO,
                mode="enforce",
                status="error",
                detail=f"policy {where}cannot be evaluated: {failure.message}",
                location=location,
            )
        )
    for msg in outcome.messages:
        location = None
        if msg.service is not None and msg.service in desired.services:
            location = desired.source_map.locate(("services", msg.service))
        detail = msg.message
        if msg.service is not None and msg.service not in detail:
            detail = f"service {msg.service!r}: {detail}"
        exempt = rego.exempt.get(msg.service) if msg.service else None
        results.append(
            PolicyResult(
                rule=f"rego:{msg.package}",
                mode="enforce" if msg.kind == "deny" and rego.mode == "enforce" else "warn",
                status="exempt" if exempt else "fail",
                detail=detail,
                service=msg.service,
                location=location or SourceLocation(msg.files[0]),
                reason=exempt,
            )
        )
    return results


def _result(
    desired: DesiredStack,
    rule: str,
    mode: str,
    finding: builtin.Finding,
    exempt: str | None,
) -> PolicyResult:
    location = desired.source_map.locate(finding.path) if finding.path else None
    return PolicyResult(
        rule=rule,
        mode="warn" if mode == "warn" else "enforce",
        status="exempt" if exempt else "fail",
        detail=finding.detail,
        service=finding.service,
        location=location,
        reason=exempt,
    )


def _window_result(window: WindowState, mode: str, override: str | None) -> PolicyResult:
    detail = f"deployment window closed: {window.reason}"
    if window.next_open is not None:
        detail += f"; next opens {window.next_open.isoformat()}"
    else:
        detail += "; no opening within a year"
    if override:
        detail += f" -- overridden: {override.strip()}"
    return PolicyResult(
        rule=WINDOW_RULE,
        mode="warn" if mode == "warn" else "enforce",
        status="override" if override else "fail",
        detail=detail,
        location=SourceLocation(CONFIG_FILE),
        reason=override.strip() if override else None,
    )


def raise_for_violations(report: PolicyReport) -> None:
    """Raise when the report blocks the deploy, with every violation as a Problem.

    PolicyError (reason PolicyViolation) when any rule is violated: a new commit is
    needed. WindowClosed (reason DeploymentWindowClosed) when the only thing in the way
    is a closed deployment window: waiting helps, and the agent holds the change.
    """
    if not report.blocked:
        return
    problems = report.as_problems()
    lines = "\n".join(f"  {p}" for p in problems)
    where = f"{report.app} in {report.env}"
    if report.only_window_blocks:
        raise WindowClosed(f"deployment window closed for {where}:\n{lines}", problems=problems)
    count = len(problems)
    noun = "violation" if count == 1 else "violations"
    held = "".join(f"\n  {note}" for note in report.loosened)
    if held:
        held = f"\nchecked under settings this commit cannot loosen:{held}"
    raise PolicyError(f"{count} policy {noun} in {where}:\n{lines}{held}", problems=problems)
