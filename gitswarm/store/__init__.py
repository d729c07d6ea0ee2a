"""The state store: history, audit trail, locks, statuses, baselines, approvals, webhook
deliveries. I/O edge.

SQLAlchemy over SQLite (the default: one file, nothing to run) or PostgreSQL (for teams,
or several agents). reconcile/, api/ and cli/ use it through ``Store``
and get frozen records of ``gitswarm.model.operation`` back, never ORM objects. Every
database error leaves as ``gitswarm.errors.StoreError``.

Where it lives (``default_location``):

1. ``$GITSWARM_STATE`` if set: a file path (SQLite) or a URL such as
   ``postgresql://user:pass@host/gitswarm`` (``postgres://`` and ``postgresql://`` use
   psycopg 3; ``sqlite:////abs/path.db`` also works). The CLI's ``--state`` overrides it.
2. Otherwise the one line of the file ``$GITSWARM_STATE_FILE`` names: a Docker secret
   holding the PostgreSQL URL, so its password is in no environment or stack file.
3. Otherwise ``$XDG_DATA_HOME/gitswarm/state.db``, and without ``XDG_DATA_HOME``
   ``~/.local/share/gitswarm/state.db``. The folder is created (mode 0700) if missing.

Opening a store migrates it to the current schema (Alembic, shipped in ``migrations/``),
safely when several processes open it at once. Give PostgreSQL a database of its own.

No secret values are ever stored: callers pass names and references (a secret's
content-addressed name, never its data), and messages must not quote secret material.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gitswarm.store.location import AGENT_LOCK, ENV_VAR, default_location

if TYPE_CHECKING:
    from gitswarm.store.db import resolve_url
    from gitswarm.store.locks import Lease, new_holder_id, sync_lock
    from gitswarm.store.status import KEEP, Keep
    from gitswarm.store.store import Store

# Loaded on first use: these import SQLAlchemy, which a command that reads a local store
# through quick.py never needs (``import gitswarm.store.quick`` runs this file first).
_LAZY = {
    "resolve_url": "gitswarm.store.db",
    "Lease": "gitswarm.store.locks",
    "new_holder_id": "gitswarm.store.locks",
    "sync_lock": "gitswarm.store.locks",
    "KEEP": "gitswarm.store.status",
    "Keep": "gitswarm.store.status",
    "Store": "gitswarm.store.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gitswarm.store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AGENT_LOCK",
    "ENV_VAR",
    "KEEP",
    "Keep",
    "Lease",
    "Store",
    "default_location",
    "new_holder_id",
    "resolve_url",
    "sync_lock",
]
