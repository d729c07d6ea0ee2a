"""Desired vs deployed, per service (pure). Called by reconcile/ and cli/ (diff, sync --dry-run).

Whether a service must be deployed is decided by its spec hash (a label gitswarm sets
from the rendered service), never by Swarm's version index or PreviousSpec, which change
on every redeploy. Drift is the live Spec against the baseline: what gitswarm applied
(plan/applied.py), never a state read back after waiting for health — and never taken
from the labels: anyone with Docker access can rewrite them (plan.py rewritten_drift).
"""

from gitswarm.plan.applied import applied_spec
from gitswarm.plan.diff import FieldChange, diff
from gitswarm.plan.plan import Plan, ServiceChange, deployable_compose, make_plan

__all__ = [
    "FieldChange",
    "Plan",
    "ServiceChange",
    "applied_spec",
    "deployable_compose",
    "diff",
    "make_plan",
]
