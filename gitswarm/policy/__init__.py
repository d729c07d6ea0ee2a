"""The policy gate (pure): built-in rules, Rego policies and deployment windows.

Step "validate" of the loop (SPEC.md section 2, policies in section 5): after render/
has produced a DesiredStack and before plan/ or swarm/ touch anything. The CLI
(`validate`, `policy check`), the sync engine and the agent call :func:`evaluate` with
the same inputs and get a PolicyReport; :func:`raise_for_violations` stops the operation
when the report is blocked. The agent asks :func:`window_state` when to apply a change
that a closed deployment window holds.

    settings.py  the `policies:` block of gitswarm.yml -> PolicySettings (ConfigError)
    rules.py     the built-in rules, one function each (compose.py reads Compose spellings)
    windows.py   allow/deny windows, time zones; pure time arithmetic on `now`
    cron.py      cron windows: the expression read by cronsim, opened for a duration
    rego.py      policies/*.rego through regopy, over a documented input document
    gate.py      evaluate(), raise_for_violations(), window_state()

Nothing here reads files, the clock or the network: policy texts and ``now`` are passed in.
"""

from gitswarm.policy.gate import evaluate, raise_for_violations, window_state
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
    "evaluate",
    "parse_settings",
    "raise_for_violations",
    "settings_for",
    "window_state",
]
