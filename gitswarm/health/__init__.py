"""Convergence and drift verdicts from observed state (pure). Called by reconcile/."""

from gitswarm.health.converge import ServiceProgress, Verdict, assess

__all__ = ["ServiceProgress", "Verdict", "assess"]
