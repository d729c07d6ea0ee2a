"""The repository's settings (pure): gitswarm.yml and applications/*.yml as model values.

Public API: ``load_config(tree) -> RepoConfig``.
"""

from gitswarm.repo.config import load_config

__all__ = ["load_config"]
