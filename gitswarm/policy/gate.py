"""The policy gate: every rule over one rendered stack, before anything is applied.

Called by `gitswarm validate` / `gitswarm policy check`, by `gitswarm sync` and by the
agent, between render and plan. So far: :func:`window_state`, which the agent asks
when a change may be applied.
"""

from __future__ import annotations

from datetime import datetime

from gitswarm.model.policy import WINDOW_RULE, WindowState
from gitswarm.policy.settings import PolicySettings
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
