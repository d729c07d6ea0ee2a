"""``gitswarm dora``: the DORA metrics of an environment from the state store (edge).

Reads the store only (no repository, no Docker): every fact it needs, down to the
commits each deployment brought, was recorded when it happened. The figures and their
definitions come from gitswarm/dora/ (docs/dora.md).
"""

from __future__ import annotations

from typing import Any

import click

from gitswarm.cli.output import emit_json, guarded
from gitswarm.errors import UsageError


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = round(value)
    if value < 120:
        return f"{value}s"
    minutes = value // 60
    if minutes < 120:
        return f"{minutes}m{value % 60:02d}s"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def _met(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[value]


def report_lines(report: dict[str, Any]) -> list[str]:
    f = report["deployment_frequency"]
    lead = report["lead_time"]
    cfr = report["change_failure_rate"]
    ttr = report["time_to_restore"]
    drift = report["drift"]
    trace = report["traceability"]
    rate = "-" if cfr["rate"] is None else f"{cfr['rate'] * 100:.1f}%"
    share = "-" if trace["share"] is None else f"{trace['share'] * 100:.1f}%"
    rows = [
        (
            "deployment frequency",
            f"{f['per_day']:.2f}/day, {f['per_week']:.1f}/week ({f['deployments']}; "
            f"Four Keys: {f['bucket']})",
            f["target"],
            _met(f["met"]),
            f["level"],
        ),
        (
            "lead time for changes",
            f"median {_seconds(lead['median_seconds'])}, p90 {_seconds(lead['p90_seconds'])} "
            f"({lead['commits']} commits)",
            lead["target"],
            _met(lead["met"]),
            lead["level"] or "-",
        ),
        (
            "change failure rate",
            f"{rate} ({cfr['failed']} of {cfr['deployments']})",
            cfr["target"],
            _met(cfr["met"]),
            cfr["level"] or "-",
        ),
        (
            "time to restore",
            f"median {_seconds(ttr['median_seconds'])}, mean {_seconds(ttr['mean_seconds'])} "
            f"({ttr['restored']} restored, {ttr['open']} open)",
            ttr["target"],
            _met(ttr["met"]),
            ttr["level"] or "-",
        ),
        (
            "drift incidents",
            f"{drift['incidents']} longer than {_seconds(drift['threshold_seconds'])} "
            f"({drift['episodes']} drifts, {drift['open']} open)",
            drift["target"],
            _met(drift["met"]),
            "",
        ),
        (
            "traceability",
            f"{share} ({trace['traceable']} of {trace['changes']} changes)",
            trace["target"],
            _met(trace["met"]),
            "",
        ),
    ]
    scope = f"{report['app']} in {report['env']}" if report["app"] else report["env"]
    lines = [
        f"DORA metrics of {scope}, {report['since'][:19]} .. {report['until'][:19]} UTC "
        f"({report['days']:g} days)",
        "",
    ]
    headers = ("METRIC", "VALUE", "TARGET (seed)", "MET", "DORA LEVEL")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(5)]
    for row in [headers, *rows]:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    lines.append("")
    for failure in cfr["failures"]:
        lines.append(
            f"failed: operation {failure['operation_id']} {failure['app']} @ "
            f"{(failure['revision'] or '-')[:12]}: {failure['cause']}"
        )
    if trace["untraceable"]:
        ids = ", ".join(str(i) for i in trace["untraceable"])
        lines.append(f"untraceable: operation(s) {ids}")
    lines.append(
        f"Levels: {report['levels_source']}; definitions: docs/dora.md. Change failures "
        f"include rollbacks and fix-forwards within {_seconds(cfr['window_seconds'])}."
    )
    return lines


@click.command()
@click.option("--env", "env", required=True, help="The environment.")
@click.option("--app", "app", default=None, help="Only this application (default: all).")
@click.option(
    "--since", default="30d", show_default=True, help="The window: 30d, 12h, 2w, or an ISO date."
)
@click.option(
    "--until",
    default=None,
    help="The window's end, as --since (default: now): a past window's report stays the same.",
)
@click.option(
    "--failure-window",
    default="1h",
    show_default=True,
    help="A rollback or fix-forward this soon after a deployment makes it a failure.",
)
@click.option(
    "--drift-threshold",
    default="60s",
    show_default=True,
    help="Drift lasting longer than this is an incident.",
)
@click.option("--state", default=None, envvar="GITSWARM_STATE", help="The state store.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dora(
    env: str,
    app: str | None,
    since: str,
    until: str | None,
    failure_window: str,
    drift_threshold: str,
    state: str | None,
    as_json: bool,
) -> None:
    """DORA metrics of ENV: deployment frequency, lead time, change failure, time to restore.

    Each figure beside the seed's target and its DORA level; exact definitions in
    docs/dora.md."""

    def run() -> None:
        from datetime import UTC, datetime

        from gitswarm.dora import DoraSettings
        from gitswarm.dora.window import parse_duration, parse_since, parse_until
        from gitswarm.store import quick

        now = datetime.now(UTC)
        try:
            start = parse_since(since, now)
            end = now if until is None else parse_until(until, now, start)
            window = parse_duration(failure_window, "--failure-window")
            threshold = parse_duration(drift_threshold, "--drift-threshold")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        settings = DoraSettings(start, end, failure_window=window, drift_threshold=threshold)
        # A current store is read without SQLAlchemy (its import is a third of the
        # command's time); anything else opens a Store, which migrates or refuses it.
        found = quick.dora(state, env, app, settings)
        if found is None:
            from gitswarm.store import Store

            with Store(state) as store:
                found = store.dora(
                    env, app, since=start, until=end, failure_window=window,
                    drift_threshold=threshold,
                )  # fmt: skip
        report = found.as_dict()
        if as_json:
            emit_json({"ok": True, "dora": report})
            return
        for line in report_lines(report):
            click.echo(line)

    guarded(as_json, run)
