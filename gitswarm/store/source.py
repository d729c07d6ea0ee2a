"""What the active agent last saw of Git: its head, the apps × environments it watches
there, its last poll and that poll's error (table ``agent_source``, migration 0008).

The agent's git task (reconcile/agent/gitpoll.py) writes it after a poll that saw
something new (another head or apps, an error or its end; and the first poll after
it became leader), under the agent lease's name: a quiet poll writes nothing, so
``polled_at`` is when the head recorded was first seen, ``updated_at`` the last change.
``gitswarm status`` reads it (with the statuses the agent keeps in ``app_status``)
instead of rendering every app and asking the swarm, when the writer still holds the
lease (cli/ops.py). One row per lock name.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitswarm.model.operation import AgentSource
from gitswarm.store import queries
from gitswarm.store.db import Database
from gitswarm.store.operations import run
from gitswarm.store.schema import agent_source


class SourceMixin:
    _db: Database

    def record_source(
        self,
        name: str,
        holder: str,
        *,
        head: str | None,
        apps: Sequence[tuple[str, str, str]] | None = None,
        error: str | None = None,
    ) -> None:
        """After a poll by ``holder`` (the holder of lock ``name``): ``error`` None means
        the remote answered with ``head``, and ``apps`` (app, env, stack) are watched
        there (None: as recorded before). A failed poll keeps the head and apps recorded
        before and sets the error."""
        now = self._db.now()
        values: dict[str, object] = {"holder": holder, "error": error, "updated_at": now}
        if error is None:
            values.update(head=head, polled_at=now)
        if apps is not None:
            values["apps"] = [list(a) for a in apps]
        stmt = self._db.insert(agent_source).values(
            name=name, **{"head": head, "apps": [], "polled_at": None, **values}
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[agent_source.c.name],
            set_={key: stmt.excluded[key] for key in values},
        )
        with self._db.write(f"record the source of {name!r}") as conn:
            conn.execute(upsert)

    def agent_source(self, name: str) -> AgentSource | None:
        with self._db.read(f"read the source of {name!r}") as conn:
            found = queries.agent_sources_from(run(conn, queries.agent_source(name)))
        return found[0] if found else None
