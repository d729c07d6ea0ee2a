"""The policy gate (pure): built-in rules, Rego policies and deployment windows.

Step "validate" of the loop (SPEC.md section 2, policies in section 5): after render/
has produced a DesiredStack and before plan/ or swarm/ touch anything. The agent asks
:func:`window_state` when to apply a change that a closed deployment window holds.

    settings.py  the `policies:` block of gitswarm.yml -> PolicySettings (ConfigError)
    windows.py   allow/deny windows, time zones, cron; pure time arithmetic on `now`
    gate.py      window_state()

Nothing here reads files, the clock or the network: ``now`` is passed in.
"""

from gitswarm.policy.gate import window_state
from gitswarm.policy.settings import (
    RULES,
    PolicySettings,
    default_settings,
    parse_settings,
    settings_for,
)

__all__ = [
    "RULES",
    "PolicySettings",
    "default_settings",
    "parse_settings",
    "settings_for",
    "window_state",
]
