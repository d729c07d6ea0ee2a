"""The custom Rego policies of a repository: ``policies/*.rego`` read through a Tree."""

from __future__ import annotations

from gitswarm.errors import PathError, PolicyError
from gitswarm.model.tree import RULE_NOT_FILE, RULE_TOO_LARGE, Tree, rule_of

POLICY_DIR = "policies"
MAX_POLICY_BYTES = 256 * 1024


def rego_sources(tree: Tree) -> dict[str, str]:
    """Repository path -> Rego source text, for policy.evaluate(). A policy file that is
    too large or not a file is a PolicyError (the policy is at fault, not a path)."""
    sources: dict[str, str] = {}
    for name in tree.listdir(POLICY_DIR):
        if not name.endswith(".rego"):
            continue
        path = f"{POLICY_DIR}/{name}"
        try:
            data = tree.read(path, limit=MAX_POLICY_BYTES)
        except PathError as exc:
            if rule_of(exc) not in (RULE_TOO_LARGE, RULE_NOT_FILE):
                raise  # outside the repository: PathOutsideRepo is the right reason
            raise PolicyError(exc.message, problems=exc.problems) from None
        sources[path] = data.decode("utf-8", errors="replace")
    return sources
