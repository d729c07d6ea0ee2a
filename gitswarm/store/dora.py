"""The history DORA metrics are computed from, read by the ``Store`` for the agent's
``GET /api/v1/dora`` (and the dashboard): doraread.py's SQL, run on the DB-API
connection under SQLAlchemy, handed to the pure ``gitswarm.dora.compute_rows``.
`gitswarm dora` runs the very same read on a connection of its own (quick.py), so the
command and the API cannot give different answers (tests/unit/test_dora_read_paths.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gitswarm.dora import DRIFT_THRESHOLD, FAILURE_WINDOW, DoraReport, DoraSettings
from gitswarm.dora.compute import Row, compute_rows
from gitswarm.store import doraread
from gitswarm.store.db import Database
from gitswarm.store.queries import aware


class DoraMixin:
    _db: Database

    def dora_rows(self, env: str, app: str | None, start: datetime, until: datetime) -> list[Row]:
        """What DORA needs of ``env`` (``app``) read from ``start`` to ``until``, oldest
        first (doraread.read says what, and why not more)."""
        aware(start, "since")
        aware(until, "until")
        with self._db.read("read the history for DORA") as conn:
            raw = conn.connection.driver_connection
            cursor = raw.cursor()  # type: ignore[union-attr]
            try:
                dialect: doraread.Dialect = (
                    "postgresql" if self._db.dialect == "postgresql" else "sqlite"
                )
                return doraread.read(doraread.Reader(cursor, dialect), env, app, start, until)
            finally:
                cursor.close()

    def dora(
        self,
        env: str,
        app: str | None = None,
        *,
        since: datetime,
        until: datetime | None = None,
        failure_window: timedelta = FAILURE_WINDOW,
        drift_threshold: timedelta = DRIFT_THRESHOLD,
    ) -> DoraReport:
        """The DORA figures of ``env`` (``app``) for ``[since, until]`` (until: now).
        Operations up to ``failure_window`` before ``since`` are read as context."""
        settings = DoraSettings(
            since=since,
            until=until or self._db.now(),
            failure_window=failure_window,
            drift_threshold=drift_threshold,
        )
        rows = self.dora_rows(env, app, settings.since - settings.failure_window, settings.until)
        return compute_rows(rows, env, settings, app=app)
