"""DORA metrics from gitswarm's own history (pure: no I/O). store/dora.py feeds it the
recorded operations; cli/dora.py and api/v1.py show the report. Definitions: compute.py
and docs/dora.md; yardsticks (the seed's targets, DORA's levels): levels.py."""

from gitswarm.dora.compute import (
    DRIFT_THRESHOLD,
    FAILURE_WINDOW,
    DoraReport,
    DoraSettings,
    compute,
    frequency_bucket,
    percentile,
)

__all__ = [
    "DRIFT_THRESHOLD",
    "FAILURE_WINDOW",
    "DoraReport",
    "DoraSettings",
    "compute",
    "frequency_bucket",
    "percentile",
]
