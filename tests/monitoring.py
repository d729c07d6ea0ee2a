"""The shipped monitoring (deploy/prometheus, deploy/grafana) for tests: every PromQL
expression of the alert rules and the dashboard, the metric names they read, and the
names a /metrics page exposes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "gitswarm-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "gitswarm-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gitswarm.json"

_METRIC = re.compile(r"\bgitswarm_[a-z0-9_]+")
_SUFFIXES = ("_bucket", "_sum", "_count")


def promtool() -> str:
    """The promtool binary (Debian's prometheus package); a clear failure without it."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: apt-get install prometheus (scripts/bootstrap does)")
    return found


def rule_exprs() -> dict[str, str]:
    data = YAML(typ="safe").load(RULES.read_text())
    return {r["alert"]: r["expr"] for g in data["groups"] for r in g["rules"]}


def dashboard_exprs() -> dict[str, str]:
    data = json.loads(DASHBOARD.read_text())
    return {f"{p['title']} [{t['refId']}]": t["expr"] for p in data["panels"] for t in p["targets"]}


def used_metrics(exprs: dict[str, str]) -> dict[str, set[str]]:
    """Metric name -> where it is used (alert or panel)."""
    used: dict[str, set[str]] = {}
    for where, expr in exprs.items():
        for name in _METRIC.findall(expr):
            for suffix in _SUFFIXES:
                name = name.removesuffix(suffix) if name.endswith(suffix) else name
            used.setdefault(name, set()).add(where)
    return used


def exposed_metrics(page: str) -> set[str]:
    """The metric names a Prometheus text page declares (``# TYPE name kind``)."""
    return {line.split()[2] for line in page.splitlines() if line.startswith("# TYPE ")}
