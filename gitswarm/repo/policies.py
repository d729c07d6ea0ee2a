"""The custom Rego policies of a repository: ``policies/*.rego`` read through a Tree."""

from __future__ import annotations

from gitswarm.model.tree import Tree

POLICY_DIR = "policies"
MAX_POLICY_BYTES = 256 * 1024


def rego_sources(tree: Tree) -> dict[str, str]:
    """Repository path -> Rego source text, for policy.evaluate()."""
    sources: dict[str, str] = {}
    for name in tree.listdir(POLICY_DIR):
        if not name.endswith(".rego"):
            continue
        path = f"{POLICY_DIR}/{name}"
        data = tree.read(path, limit=MAX_POLICY_BYTES)
        sources[path] = data.decode("utf-8", errors="replace")
    return sources
