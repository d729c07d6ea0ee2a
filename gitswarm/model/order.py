"""Ordered applications: the order ``depends_on`` gives the applications of one
environment (pure; Flux's ``dependsOn``, Argo CD's sync waves).

    applications/web.yml:   depends_on: [db]     # web is applied after db has converged

Used by repo/config.py (a cycle is a validation error, so every loaded RepoConfig has
an order), ``RepoConfig.apps_for`` (every caller sees the applications of an environment
in this order: ``sync --env``, ``bootstrap``, ``render``, ``status``) and the agent's
queue (a dependent's sync waits while one of its dependencies is syncing or has not
converged).

The order is a topological sort that is stable: among the applications whose
dependencies are all placed, the one declared first goes first. Without any
``depends_on`` it is the declaration order.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def apply_order(names: Sequence[str], depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """``names`` (in declaration order) so that each comes after every name it depends on.

    Dependencies outside ``names`` are ignored (the caller restricts the graph to one
    environment). Raises ValueError on a cycle: repo/config.py refuses those first, with
    the file and line of each edge."""
    position = {n: i for i, n in enumerate(names)}
    waiting = {n: 0 for n in names}
    dependents: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        for dep in dict.fromkeys(depends_on.get(name, ())):
            if dep in position:
                waiting[name] += 1
                dependents[dep].append(name)
    ready = [position[n] for n in names if waiting[n] == 0]
    heapq.heapify(ready)
    placed: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        placed.append(name)
        for later in dependents[name]:
            waiting[later] -= 1
            if waiting[later] == 0:
                heapq.heappush(ready, position[later])
    if len(placed) < len(names):
        left = ", ".join(n for n in names if waiting[n])
        raise ValueError(f"dependency cycle among {left}")
    return placed


def find_cycles(names: Sequence[str], depends_on: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of ``names`` that has one, each as the
    path ``[a, b, ..., a]`` (``a`` depends on ``b`` ...), starting at the group's
    first-declared name and following each name's dependencies in the order written.
    Dependencies outside ``names`` are ignored (repo/config.py reports those apart)."""
    known = set(names)
    edges = {n: [d for d in depends_on.get(n, ()) if d in known] for n in names}
    cycles: list[list[str]] = []
    for group in _groups(names, edges):
        first = min(group, key=names.index)
        if len(group) == 1 and first not in edges[first]:
            continue
        cycles.append(_path_back(first, group, edges))
    return sorted(cycles, key=lambda c: names.index(c[0]))


def _groups(names: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[set[str]]:
    """Strongly connected components (Tarjan's algorithm, iterative: no recursion limit
    however long a chain of dependencies is)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    counter = 0
    for root in names:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, at = work.pop()
            if at == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges[node]
            if at < len(successors):
                work.append((node, at + 1))
                nxt = successors[at]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def _path_back(start: str, group: set[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``group`` (breadth first,
    each name's dependencies in the order written)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in edges[node]:
                if nxt not in group:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected group but on no cycle")
