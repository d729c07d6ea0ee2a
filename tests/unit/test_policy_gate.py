"""The gate as its callers use it: report, blocking, overlays, windows and overrides."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from gitswarm.errors import ConfigError, InputError, PolicyError, UsageError, WindowClosed
from gitswarm.model.config import Environment, Target
from gitswarm.model.stack import DesiredStack, SourceLocation, SourceMap
from gitswarm.policy import evaluate, raise_for_violations

MONDAY_MORNING = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)  # 10:00 in Berlin
SATURDAY = datetime(2025, 6, 7, 10, 0, tzinfo=UTC)

BASE_FILE = "base/docker-compose.yml"
OVERLAY_FILE = "environments/production/docker-compose.yml"

BASE: dict[str, Any] = {
    "services": {
        "web": {
            "image": "127.0.0.1:5000/medianest/app:1.0.0",
            "user": "1000:1000",
            "read_only": True,
            "security_opt": ["no-new-privileges:true"],
            "healthcheck": {"test": ["CMD", "true"]},
            "deploy": {
                "resources": {"limits": {"cpus": "0.5", "memory": "64M"}},
                "update_config": {"failure_action": "rollback"},
            },
        }
    }
}

# An overlay that looks harmless next to the base but makes the service privileged-like.
OVERLAY: dict[str, Any] = {
    "services": {
        "web": {
            "cap_add": ["SYS_ADMIN"],
            "volumes": ["/var/run/docker.sock:/var/run/docker.sock"],
            "pid": "host",
            "user": "0",
            "deploy": {"update_config": {"parallelism": 1}},
        }
    }
}

STRICT = {
    "default": "enforce",
    "deployment_windows": {"mode": "enforce", "allow": ["Mon-Fri 09:00-16:00 Europe/Berlin"]},
}


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key, everything else from the overlay wins (enough of
    Compose's merge for these tests; render/ owns the real one)."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def source_map(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> SourceMap:
    """Each key's location: the overlay's where it sets the key, else the base's.
    Line numbers are made up but distinct per file."""
    found: dict[tuple[str | int, ...], SourceLocation] = {}

    def walk(node: Any, path: tuple[str | int, ...], file: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                here = (*path, key)
                found[here] = SourceLocation(file, len(found) + 1)
                walk(value, here, file)

    walk(base, (), BASE_FILE)
    walk(overlay, (), OVERLAY_FILE)
    return SourceMap(found)


def desired(compose: Mapping[str, Any], smap: SourceMap | None = None) -> DesiredStack:
    return DesiredStack(
        app="medianest",
        env="production",
        stack="medianest-production",
        revision="1" * 40,
        compose=compose,
        files=(BASE_FILE, OVERLAY_FILE),
        source_map=smap or SourceMap(),
    )


def environment(policies: Mapping[str, Any]) -> Environment:
    return Environment(
        name="production",
        order=2,
        target=Target("local"),
        path="environments/production",
        policies=policies,
    )


def test_the_clean_base_passes_the_strict_set() -> None:
    report = evaluate(desired(BASE), environment(STRICT), rego_sources={}, now=MONDAY_MORNING)
    assert report.results == ()
    assert not report.blocked
    raise_for_violations(report)  # no error
    assert report.window is not None and report.window.open


def test_an_overlay_cannot_hide_privileged_settings_in_the_merged_stack() -> None:
    merged = merge(BASE, OVERLAY)
    assert merged["services"]["web"]["deploy"]["update_config"]["failure_action"] == "rollback"
    report = evaluate(
        desired(merged, source_map(BASE, OVERLAY)),
        environment(STRICT),
        rego_sources={},
        now=MONDAY_MORNING,
    )
    assert report.blocked
    found = {(r.rule, r.location.file if r.location else None) for r in report.violations}
    assert found == {
        ("no_privileged_containers", OVERLAY_FILE),
        ("no_root_containers", OVERLAY_FILE),
    }
    messages = " | ".join(r.message for r in report.violations)
    assert "dangerous capabilities SYS_ADMIN" in messages
    assert "exposes /var/run/docker.sock" in messages
    assert "pid: host" in messages
    assert "runs as root" in messages
    with pytest.raises(PolicyError) as info:
        raise_for_violations(report)
    assert info.value.reason == "PolicyViolation"
    assert info.value.exit_code == 2
    assert len(info.value.problems) == 4
    assert all(p.file == OVERLAY_FILE for p in info.value.problems)
    assert "4 policy violations in medianest in production" in str(info.value)


def test_a_closed_window_alone_raises_window_closed_with_next_open() -> None:
    report = evaluate(desired(BASE), environment(STRICT), rego_sources={}, now=SATURDAY)
    assert report.blocked and report.only_window_blocks
    [result] = report.violations
    assert result.rule == "deployment_windows"
    assert result.location == SourceLocation("gitswarm.yml")
    assert report.window is not None
    assert report.window.next_open == datetime(2025, 6, 9, 7, 0, tzinfo=UTC)
    assert "next opens 2025-06-09T07:00:00+00:00" in result.message
    with pytest.raises(WindowClosed) as info:
        raise_for_violations(report)
    assert info.value.reason == "DeploymentWindowClosed"
    assert isinstance(info.value, InputError)


def test_a_closed_window_and_a_violation_raise_policy_error() -> None:
    merged = merge(BASE, OVERLAY)
    report = evaluate(desired(merged), environment(STRICT), rego_sources={}, now=SATURDAY)
    assert not report.only_window_blocks
    with pytest.raises(PolicyError) as info:
        raise_for_violations(report)
    assert len(info.value.problems) == 5


def test_an_override_with_a_reason_opens_the_gate_and_is_reported() -> None:
    report = evaluate(
        desired(BASE),
        environment(STRICT),
        rego_sources={},
        now=SATURDAY,
        override_window="hotfix for INC-2211, approved by on-call lead",
    )
    assert not report.blocked
    [result] = report.exemptions
    assert result.status == "override"
    assert result.reason == "hotfix for INC-2211, approved by on-call lead"
    assert "overridden: hotfix for INC-2211" in result.message
    assert report.override_window == "hotfix for INC-2211, approved by on-call lead"
    with pytest.raises(UsageError, match="needs a reason"):
        evaluate(
            desired(BASE), environment(STRICT), rego_sources={}, now=SATURDAY, override_window=" "
        )


def test_windows_in_warn_mode_do_not_block() -> None:
    policies = {"deployment_windows": {"mode": "warn", "allow": ["Mon 09:00-10:00 UTC"]}}
    report = evaluate(desired(BASE), environment(policies), rego_sources={}, now=SATURDAY)
    assert not report.blocked
    assert [r.rule for r in report.warnings] == ["deployment_windows"]


def test_the_report_as_json() -> None:
    merged = merge(BASE, OVERLAY)
    report = evaluate(
        desired(merged, source_map(BASE, OVERLAY)),
        environment(STRICT),
        rego_sources={},
        now=SATURDAY,
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["blocked"] is True
    assert data["violations"] == 5
    assert data["modes"]["no_root_containers"] == "enforce"
    assert data["window"]["open"] is False
    assert data["window"]["next_open"] == "2025-06-09T07:00:00+00:00"
    first = data["results"][0]
    assert set(first) == {
        "rule",
        "mode",
        "status",
        "blocking",
        "service",
        "message",
        "detail",
        "reason",
        "file",
        "line",
        "column",
    }


def test_default_settings_warn_about_everything_but_block_nothing() -> None:
    merged = merge(BASE, OVERLAY)
    report = evaluate(desired(merged), environment({}), rego_sources={}, now=SATURDAY)
    assert not report.blocked
    assert {r.rule for r in report.warnings} == {"no_privileged_containers", "no_root_containers"}
    assert report.window is None  # deployment_windows is off until configured


def test_bad_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown policy rule"):
        evaluate(desired(BASE), environment({"no_root": "enforce"}), rego_sources={}, now=SATURDAY)


def test_the_clock_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(desired(BASE), environment({}), rego_sources={}, now=datetime(2025, 6, 2))
