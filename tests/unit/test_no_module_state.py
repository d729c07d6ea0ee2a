"""No mutable module globals in gitswarm/ (STYLE.md: pass dependencies in): two agents,
or two tests, in one process never share state through a module.

Module-level constants (dicts and sets of fixed names) are fine and common; what is
refused is what exists to be changed: counters, caches, registries filled at run time,
locks and thread-locals at module level, and ``global`` statements."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "gitswarm"

# Calls whose result is state by nature, when made at module level.
STATEFUL_CALLS = {
    "count",  # itertools.count
    "defaultdict",
    "deque",
    "Counter",
    "local",  # threading.local
    "Lock",
    "RLock",
    "Event",
    "Condition",
    "Queue",
    "WeakValueDictionary",
    "WeakKeyDictionary",
}
MUTATORS = {"append", "add", "update", "setdefault", "pop", "clear", "extend", "discard"}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def offences(source: str, path: str) -> list[str]:
    tree = ast.parse(source)
    found: list[str] = []
    module_names: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name):
                module_names.add(target.id)
                if isinstance(value, ast.Call) and _name(value.func) in STATEFUL_CALLS:
                    found.append(f"{path}:{node.lineno}: {target.id} is module-level state")
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"{path}:{node.lineno}: global {', '.join(node.names)}")
        # NAME.append(...) / NAME[key] = ... inside a function, NAME a module global
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            local = {a.arg for a in node.args.args + node.args.kwonlyargs}
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr in MUTATORS
                    and isinstance(inner.func.value, ast.Name)
                    and inner.func.value.id in module_names - local
                ):
                    found.append(f"{path}:{inner.lineno}: {inner.func.value.id} is changed")
                if isinstance(inner, ast.Assign):
                    for target in inner.targets:
                        if (
                            isinstance(target, ast.Subscript)
                            and isinstance(target.value, ast.Name)
                            and target.value.id in module_names - local
                        ):
                            found.append(f"{path}:{inner.lineno}: {target.value.id} is changed")
    return found


def test_no_module_in_gitswarm_keeps_mutable_state() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        found += offences(path.read_text(), str(path.relative_to(ROOT.parent)))
    assert found == []


def test_the_check_sees_a_module_counter_and_a_filled_registry() -> None:
    """What the fake swarm did before (one id counter for every swarm in the process),
    and a registry filled at run time, are both caught."""
    source = (
        "import itertools\n"
        "_ids = itertools.count(1)\n"
        "SEEN = {}\n"
        "def remember(key, value):\n"
        "    SEEN[key] = value\n"
    )
    assert offences(source, "x.py") == [
        "x.py:2: _ids is module-level state",
        "x.py:5: SEEN is changed",
    ]
