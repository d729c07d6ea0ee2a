"""A soak (``source_healthy_for``) is a duration: it is measured on the monotonic clock,
so a step of the wall clock (NTP, a VM resumed, an operator's ``date -s``) neither skips
it nor makes it last for ever. The deploy that starts the soak records the monotonic
reading and the boot it belongs to beside its wall time (store/operations.py); a later
check on the same boot takes the monotonic difference, one on another boot (a reboot,
another host) falls back to wall time, never negative. The agent's automatic promotion
uses the same figure (promote/automation.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gitswarm.model.instant import Instant, elapsed
from tests.unit.promotion_rig import Rig, make_rig

SOAK = {"gates": {"source_healthy_for": "10m"}}


@pytest.fixture()
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    made = make_rig(tmp_path)
    made.settings(SOAK)
    made.sync("dev")  # the soak starts here
    made.sync("prod")
    return made


def soak_gate(rig: Rig) -> tuple[str, str]:
    outcome = rig.promote()
    (gate,) = [g for g in outcome.gates if g.name == "source-healthy"]
    return ("pass" if gate.passed else "fail"), gate.summary


def test_a_forward_step_of_the_wall_clock_does_not_skip_the_soak(rig: Rig) -> None:
    rig.mono.at += 60  # one minute later ...
    rig.now.at += dt.timedelta(hours=2)  # ... the wall clock steps two hours ahead
    verdict, detail = soak_gate(rig)
    assert verdict == "fail", detail
    assert "healthy at" in detail and "for 1m00s, less than the 10m soak" in detail
    rig.mono.at += 9 * 60  # ten minutes in all
    assert soak_gate(rig)[0] == "pass"


def test_a_backward_step_of_the_wall_clock_does_not_stretch_the_soak(rig: Rig) -> None:
    rig.now.at -= dt.timedelta(hours=2)  # before the deploy, as the wall clock says
    rig.mono.at += 10 * 60
    verdict, detail = soak_gate(rig)
    assert verdict == "pass", detail
    assert "for 10m00s" in detail


def test_after_a_reboot_the_soak_falls_back_to_wall_time_never_negative(rig: Rig) -> None:
    rig.boot[0] = "another-boot"
    rig.mono.at = 5.0  # the monotonic clock starts again at boot
    rig.now.at -= dt.timedelta(hours=1)  # a wall clock behind the deploy's: no less than 0
    verdict, detail = soak_gate(rig)
    assert verdict == "fail" and "for 0m00s" in detail, detail
    rig.now.at += dt.timedelta(hours=1, minutes=11)
    assert soak_gate(rig)[0] == "pass"


def test_automatic_promotion_waits_out_the_soak_by_the_monotonic_clock(rig: Rig) -> None:
    """The agent's automation checks the soak before it promotes: a wall clock two hours
    ahead makes it promote no sooner."""
    from gitswarm.promote.automation import Automation

    rig.settings({**SOAK, "auto": True})
    automation = Automation(rig.promoter())
    rig.mono.at += 60
    rig.now.at += dt.timedelta(hours=2)
    assert [a.kind for a in automation.tick()] == []  # soaking quietly
    assert rig.tag_in("prod") == "1.0.0"
    rig.mono.at += 10 * 60
    kinds = [a.kind for a in automation.tick()]
    assert kinds == ["committed"], kinds
    assert rig.tag_in("prod") == "1.1.0"


@pytest.mark.parametrize(
    ("since", "now", "seconds"),
    [
        (Instant(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "b", 100.0),
         Instant(dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "b", 160.0), 60),  # same boot
        (Instant(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "b", 100.0),
         Instant(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "b", 160.0), 60),
        (Instant(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "b", 100.0),
         Instant(dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC), "c", 1.0), 300),  # rebooted
        (Instant(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), None, None),
         Instant(dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC), "c", 1.0), 300),  # old row
        (Instant(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "b", 100.0),
         Instant(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "c", 1.0), 0),  # never negative
    ],
)  # fmt: skip
def test_elapsed(since: Instant, now: Instant, seconds: float) -> None:
    assert elapsed(since, now) == dt.timedelta(seconds=seconds)


def test_a_failed_automatic_promotion_is_retried_by_the_monotonic_clock(
    rig: Rig, tmp_path: Path
) -> None:
    """Retried 10 minutes after it failed: a wall clock stepped back 2 h does not hold
    it back for 2 h more (nor does one stepped forward retry it at once)."""
    import sys

    from gitswarm.promote.automation import Automation
    from gitswarm.promote.gates import GateCommand

    flag = tmp_path / "fail"
    flag.write_text("x")
    rig.commands["check"] = GateCommand(
        "check",
        (sys.executable, "-c", f"import os, sys; sys.exit(os.path.exists({str(flag)!r}))"),
    )
    rig.settings({"auto": True, "gates": {"command": ["check"]}})
    automation = Automation(rig.promoter(commands=rig.commands))
    assert [a.kind for a in automation.tick()] == ["failed"]
    flag.unlink()
    rig.now.at += dt.timedelta(hours=2)
    rig.mono.at += 60
    assert [a.kind for a in automation.tick()] == []  # not yet: 1 minute
    rig.now.at -= dt.timedelta(hours=4)
    rig.mono.at += 10 * 60
    assert [a.kind for a in automation.tick()] == ["committed"]
