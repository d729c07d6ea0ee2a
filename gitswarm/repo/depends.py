"""``depends_on`` between applications, checked when the settings load (pure). Called
by repo/config.py's ``load_config`` once every application is read: each problem is
located at the ``depends_on`` entry that causes it, so ``gitswarm validate`` names
file:line, and a RepoConfig that loads can always be ordered (model/order.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from gitswarm.errors import Problem
from gitswarm.model.config import Application
from gitswarm.model.order import find_cycles

RULE_DEPENDS_ON = "depends-on"


def _at(app: Application, path: tuple[Any, ...], message: str) -> Problem:
    """A problem at ``path`` of ``app``'s declaration (or at the declaration itself)."""
    line, column = app.positions.get(path, app.positions.get((), (None, None)))
    return Problem(message, file=app.source, line=line, column=column, rule=RULE_DEPENDS_ON)


def dependency_problems(applications: Sequence[Application]) -> list[Problem]:
    """What is wrong with the ``depends_on`` of ``applications``: a dependency that is
    not declared, or not deployed to an environment of its dependent (the dependent
    would wait there for ever), and every cycle (nothing in it could ever go first),
    each at the line of a ``depends_on`` entry. With none, model/order.py can order
    every environment."""
    problems: list[Problem] = []
    by_name = {a.name: a for a in applications}
    for app in applications:
        for index, dep in enumerate(app.depends_on):
            where = ("depends_on", index)
            other = by_name.get(dep)
            if dep == app.name:
                continue  # a cycle of one: reported with the cycles below
            if other is None:
                known = ", ".join(n for n in by_name if n != app.name) or "none"
                problems.append(
                    _at(
                        app,
                        where,
                        f"application {app.name!r} depends on {dep!r}, which is not declared "
                        f"(other applications: {known}); name an application of gitswarm.yml "
                        "or applications/, or remove the entry",
                    )
                )
                continue
            for env in app.environments:
                if env in other.environments:
                    continue
                problems.append(
                    _at(
                        app,
                        where,
                        f"application {app.name!r} depends on {dep!r}, which is not deployed "
                        f"to environment {env!r} (it is deployed to: "
                        f"{', '.join(other.environments) or 'none'}), so {app.name!r} would "
                        f"wait there for ever; add {env!r} to the environments of {dep!r}, "
                        f"or remove {env!r} from those of {app.name!r}",
                    )
                )
    graph = {a.name: a.depends_on for a in applications}
    for cycle in find_cycles(list(by_name), graph):
        first = by_name[cycle[0]]
        if len(cycle) == 2:
            index = first.depends_on.index(first.name)
            problems.append(
                _at(
                    first,
                    ("depends_on", index),
                    f"application {first.name!r} depends on itself; remove the entry",
                )
            )
            continue
        steps = [cycle[0]]
        for one, then in itertools.pairwise(cycle):
            step = by_name[one]
            line = step.positions.get(("depends_on", step.depends_on.index(then)), (None,))[0]
            steps.append(f"{then} ({step.source}:{line})" if line else f"{then} ({step.source})")
        problems.append(
            _at(
                first,
                ("depends_on", first.depends_on.index(cycle[1])),
                f"the applications {', '.join(repr(n) for n in cycle[:-1])} depend on each "
                f"other in a cycle, so none of them could be applied first: "
                f"{' -> '.join(steps)}; remove one of these depends_on entries",
            )
        )
    return problems
