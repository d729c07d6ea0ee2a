"""DORA charts as inline SVG, drawn on the server from the report GET /api/v1/dora
answers (DoraReport.as_dict): no chart library, no script. Each chart is an ``<svg
role="img">`` with a text alternative, and its figures are in a table beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 180, 28


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def daily_bars(daily: Sequence[Mapping[str, Any]], label: str) -> Markup:
    """Deployments per day, failed ones stacked on top in another colour and pattern."""
    days = list(daily)[-60:]
    peak = max((_num(d.get("deployments")) + _num(d.get("failed")) for d in days), default=0)
    total = sum(_num(d.get("deployments")) for d in days)
    failed = sum(_num(d.get("failed")) for d in days)
    alt = f"{label}: {total:.0f} deployments and {failed:.0f} failed over {len(days)} days"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(alt)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(alt)}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 4}" y2="{HEIGHT - PAD}" class="axis"/>',
    ]
    if days and peak > 0:
        step = (WIDTH - PAD - 4) / len(days)
        bar = max(1.0, step * 0.7)
        scale = (HEIGHT - 2 * PAD) / peak
        for i, day in enumerate(days):
            x = PAD + i * step + (step - bar) / 2
            ok = _num(day.get("deployments")) * scale
            bad = _num(day.get("failed")) * scale
            y = HEIGHT - PAD - ok
            tip = (
                f"{day.get('date')}: {day.get('deployments')} deployed, {day.get('failed')} failed"
            )
            parts.append(
                f"<g><title>{escape(tip)}</title>"
                f'<rect class="ok" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{ok:.1f}"/>'
                f'<rect class="bad" x="{x:.1f}" y="{y - bad:.1f}" width="{bar:.1f}" '
                f'height="{bad:.1f}"/></g>'
            )
        parts.append(
            f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" class="tick">{peak:.0f}</text>'
        )
        parts.append(
            f'<text x="{PAD}" y="{HEIGHT - 8}" class="tick">{escape(days[0].get("date"))}</text>'
        )
        parts.append(
            f'<text x="{WIDTH - 4}" y="{HEIGHT - 8}" text-anchor="end" class="tick">'
            f"{escape(days[-1].get('date'))}</text>"
        )
    else:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="tick">'
            "no deployments in this window</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above went through escape()


def against_target(
    value: float | None, target: float, label: str, unit: str, lower_is_better: bool = True
) -> Markup:
    """One key's figure as a bar beside its target line."""
    height = 34
    shown = "no data" if value is None else f"{_fmt(value, unit)}"
    alt = f"{label}: {shown}, target {_fmt(target, unit)}"
    top = max(target * 2, value or 0) or 1
    width = WIDTH - 2 * PAD
    bar = 0 if value is None else width * min(value, top) / top
    line = PAD + width * target / top
    met = value is not None and ((value < target) if lower_is_better else (value >= target))
    return Markup(  # noqa: S704 - numbers and escape()d text only
        f'<svg class="chart key" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(alt)}"><title>{escape(alt)}</title>'
        f'<rect class="track" x="{PAD}" y="8" width="{width}" height="16"/>'
        f'<rect class="{"ok" if met else "bad"}" x="{PAD}" y="8" width="{bar:.1f}" height="16"/>'
        f'<line class="target" x1="{line:.1f}" y1="2" x2="{line:.1f}" y2="{height - 2}"/>'
        "</svg>"
    )


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value < 120:
            return f"{value:.0f} s"
        if value < 7200:
            return f"{value / 60:.0f} min"
        return f"{value / 3600:.1f} h"
    if unit == "%":
        return f"{value * 100:.1f} %"
    return f"{value:.2f}{unit}"


def fmt(value: Any, unit: str) -> str:
    return "—" if not isinstance(value, int | float) else _fmt(float(value), unit)


def key_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The DORA page's rows: each key, its value, its target, whether met, its chart."""
    lead = report.get("lead_time", {})
    cfr = report.get("change_failure_rate", {})
    ttr = report.get("time_to_restore", {})
    drift = report.get("drift", {})
    freq = report.get("deployment_frequency", {})
    rows = [
        ("Deployment frequency (per day)", freq.get("per_day"), 2.0, "", False, freq.get("met")),
        (
            "Lead time (median)",
            lead.get("median_seconds"),
            lead.get("target_seconds") or 14400,
            "s",
            True,
            lead.get("met"),
        ),
        (
            "Change failure rate",
            cfr.get("rate"),
            cfr.get("target_rate") or 0.03,
            "%",
            True,
            cfr.get("met"),
        ),
        (
            "Time to restore (mean)",
            ttr.get("mean_seconds"),
            ttr.get("target_seconds") or 900,
            "s",
            True,
            ttr.get("met"),
        ),
    ]
    out = []
    for name, value, target, unit, lower, met in rows:
        value_f = float(value) if isinstance(value, int | float) else None
        out.append(
            {
                "name": name,
                "value": fmt(value, unit),
                "target": ("< " if lower else "≥ ") + fmt(target, unit),
                "met": met,
                "chart": against_target(value_f, float(target), name, unit, lower),
            }
        )
    out.append(
        {
            "name": "Drift incidents",
            "value": str(drift.get("incidents", 0)),
            "target": "0",
            "met": drift.get("met"),
            "chart": "",
        }
    )
    return out
