"""From a Tree at a revision to the exact stack that will be deployed (pure).

Compose merge and interpolation with the semantics of ``docker stack config``,
content-addressed config/secret names, in-memory secret decryption, validation.

Public API (called by the CLI, reconcile/, policy/ and plan/):

- ``render_stack(tree, config, app_name, env_name, identity) -> DesiredStack``
- ``to_yaml(desired) -> str``: the deployable YAML (``$`` escaped as ``$$``)
"""

from gitswarm.render.output import to_yaml
from gitswarm.render.stack import render_stack

__all__ = ["render_stack", "to_yaml"]
