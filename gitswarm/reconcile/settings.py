"""The repository settings of a revision without reading them again for nothing.

``Reconciler.config_at`` (sync.py) keeps the settings per revision; a new revision whose
``gitswarm.yml`` and ``applications/*.yml`` are those of one loaded before — what loading
read, answered by Git object ids (render/inputs.py) — has the same settings: a commit
to one app's compose file in a repository of 1,000 apps does not read 1,000 files
(issue 18).
"""

from __future__ import annotations

from gitswarm.model.config import RepoConfig
from gitswarm.render.inputs import Inputs, RecordingTree
from gitswarm.repo import load_config
from gitswarm.source.tree import GitTree

Loaded = tuple[Inputs, str, RepoConfig]  # settings, what loading them read, its digest
KEEP = 4  # settings remembered with their inputs


def settings_at(tree: GitTree, loaded: list[Loaded]) -> RepoConfig:
    """The settings at ``tree``: one of ``loaded`` whose inputs ``tree`` answers the
    same, else read (a bad commit raises, and nothing is kept) and added to ``loaded``."""
    memo: dict[tuple[str, str], str] = {}  # the answers of this tree
    for inputs, digest, config in reversed(loaded):
        if inputs.digest(tree, memo) == digest:
            return config
    recording = RecordingTree(tree)
    config = load_config(recording)
    inputs = recording.inputs()
    loaded[:] = [*loaded[-(KEEP - 1) :], (inputs, inputs.digest(tree), config)]
    return config


__all__ = ["Loaded", "settings_at"]
