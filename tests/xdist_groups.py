"""``--dist loadgroup`` on this pytest: tests marked ``xdist_group(NAME)`` share a worker.

Part of the suite's own plumbing (``tests/conftest.py`` registers it): the 3-node cluster
is a session fixture each worker starts for itself, so its tests must all go to one worker.

pytest-xdist (3.8) groups tests by a ``@NAME`` suffix its worker appends to their node ids
(``item._nodeid = ...``); pytest 9.2 keeps a node id in ``item._id`` (a ``NodeId``), so that
assignment is lost, no test carries a suffix and the scheduler sends every test anywhere:
every worker of the suite started a 3-node cluster of its own (12 dockerd on 2 cores).
``LoadGroupIds`` adds the suffix where pytest reads it, after xdist's hook, and leaves a
node id that already has one (an xdist that does it itself) alone.
"""

from __future__ import annotations

import pytest
from _pytest.nodeid import NodeId


def group_suffix(item: pytest.Item) -> str:
    """``@a_b`` for an item marked ``xdist_group("a")`` and ``xdist_group("b")``, else ``""``
    (the names as xdist joins them)."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "@" + "_".join(sorted(names)) if names else ""


def has_group(nodeid: str) -> bool:
    """Whether a node id already ends in a group suffix (xdist's own test: an ``@`` after
    the parameters' closing bracket)."""
    return nodeid.rfind("@") > nodeid.rfind("]")


class LoadGroupIds:
    """A pytest plugin for xdist workers run with ``--dist loadgroup``."""

    @pytest.hookimpl(trylast=True)  # after xdist's worker hook and the conftest's marks
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if not getattr(config.option, "loadgroup", False):  # set by xdist in its workers
            return
        for item in items:
            suffix = group_suffix(item)
            if suffix and not has_group(item.nodeid):
                item._id = NodeId.parse(item.nodeid + suffix)  # type: ignore[attr-defined]
