"""Apprise delivery on a worker thread (see the package docstring)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence

from gitswarm.model.events import Event

log = logging.getLogger("gitswarm.notify")


class Notifier:
    def __init__(self, routes: Mapping[str, Sequence[str]], *, queue_size: int = 1000) -> None:
        self.routes = {kind: tuple(urls) for kind, urls in routes.items() if urls}
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def urls_for(self, kind: str) -> tuple[str, ...]:
        return self.routes.get(kind, ()) + self.routes.get("*", ())

    def send(self, event: Event) -> None:
        """Queue ``event``; returns at once. Dropped (and logged) if the queue is full."""
        if not self.urls_for(event.kind):
            return
        self._ensure_worker()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.failed += 1
            log.warning(
                "notification queue full; dropped %s for %s/%s", event.kind, event.app, event.env
            )

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="gitswarm-notify", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self.deliver(event)
            finally:
                self._queue.task_done()

    def deliver(self, event: Event) -> bool:
        """Send now (on the caller's thread). True when every target accepted it."""
        urls = self.urls_for(event.kind)
        if not urls:
            return True
        import apprise  # 0.1-0.3 s to import: only a process that notifies pays for it

        client = apprise.Apprise()
        for url in urls:
            if not client.add(url):
                log.warning("notification target rejected by Apprise (kind %s)", event.kind)
        try:
            ok = bool(client.notify(title=event.title, body=event.body()))
        except Exception:  # an Apprise plugin may raise anything; never let it escape
            log.exception("notification for %s/%s failed", event.app, event.env)
            ok = False
        if ok:
            self.sent += 1
        else:
            self.failed += 1
        return ok

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until queued notifications are sent (tests, graceful shutdown)."""
        done = threading.Event()

        def waiter() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=waiter, daemon=True).start()
        done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.flush(timeout)
            self._queue.put(None)
            self._thread.join(timeout)
