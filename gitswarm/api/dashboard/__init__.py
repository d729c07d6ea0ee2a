"""The web dashboard: server-rendered pages under /ui (routes.py), fed by the agent's
port and the store, live over server-sent events (live.py), signed in with sessions
(../sessions.py) and authorized by the same ``access`` decision as the JSON API."""

from gitswarm.api.dashboard.routes import Records, mount_dashboard

__all__ = ["Records", "mount_dashboard"]
