"""Convergence and drift verdicts from observed state (pure). Called by reconcile/."""

from gitswarm.health.converge import RECENT, ServiceProgress, Verdict, app_health, assess

__all__ = ["RECENT", "ServiceProgress", "Verdict", "app_health", "assess"]
