"""What a sync asks of the operator's targets before it renders (reconcile/sync.py).

``check_target``: a commit names an environment's target; the agent config pins which
environments a target takes (swarm/targets.py). A commit that moves an environment to
another swarm is refused at the line of ``target:`` before anything else happens.
``secret_created``: when each secret version of a render first appeared on its target,
for the ``secret_max_age`` policy (names are content-addressed, so that is when the
value last changed); the swarm is asked only when that rule is on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from gitswarm.errors import ConfigError, Problem
from gitswarm.model.config import Environment, Target
from gitswarm.model.stack import DesiredStack
from gitswarm.policy import settings_for
from gitswarm.swarm.port import Swarm
from gitswarm.swarm.targets import RULE_TARGET, TARGET_REFUSED, TargetTable


def target_table(targets: TargetTable | None, swarm_for: object) -> TargetTable:
    """The operator's targets: those given, else those of the pool (``swarm_for``)."""
    table = targets or getattr(swarm_for, "targets", None)
    return table if isinstance(table, TargetTable) else TargetTable()


def check_target(table: TargetTable, env: Environment) -> None:
    """A ConfigError (TargetNotAllowed) at the line of ``target:`` when the operator's
    pins do not allow ``env`` its target."""
    refused = table.check(env.name, env.target.name)
    if refused is None:
        return
    line, column = env.positions.get(("target",), env.positions.get((), (None, None)))
    problem = Problem(refused, file=env.source, line=line, column=column, rule=RULE_TARGET)
    raise ConfigError(f"{problem}", problems=[problem], reason=TARGET_REFUSED)


def secret_created(
    swarm_for: Callable[[Target], Swarm], env: Environment, desired: DesiredStack
) -> Mapping[str, dt.datetime] | None:
    """Secret version name -> when it was created on ``env``'s target; None when there
    is nothing to judge (no secret, or ``secret_max_age`` off)."""
    if not any(o.kind == "secret" for o in desired.objects):
        return None
    if settings_for(env).mode("secret_max_age") == "off":
        return None
    observed = swarm_for(env.target).objects(desired.stack)
    return {o.name: o.created_at for o in observed if o.kind == "secret" and o.created_at}


__all__ = ["check_target", "secret_created", "target_table"]
