"""Notifications through Apprise (I/O edge).

Routes map event kinds (model/events.py) to Apprise URLs, e.g.
``{"sync_failed": ["slack://..."], "*": ["json://127.0.0.1:9000/hook"]}``; ``*``
receives every kind. Sending happens on a background thread with a timeout, so a slow
or failing target never blocks or breaks a sync; failures are logged and counted.
Deduplication ("one notification per distinct failure") is the caller's, via the
store's fingerprints. Apprise URLs often hold tokens: they come from the agent's
configuration, never from Git, and are never logged.
"""

from gitswarm.notify.apprise_notifier import Notifier

__all__ = ["Notifier"]
