"""Run the ASGI app with uvicorn on a background thread: for the agent and for tests.

``serve_in_thread`` binds the socket itself, in the caller's thread, so a port that is
taken fails right there and port 0 gives a free port whose number is known at once. It
returns when the server accepts connections. ``stop`` lets requests in flight finish
(up to ``grace`` seconds), then cancels what is left.

uvicorn is kept away from process-wide state: no logging configuration (the agent owns
logging) and no signal handlers (only the main thread may install them; `gitswarm serve`
handles SIGTERM and calls ``stop``). The one exception, while the server runs: a filter
on uvicorn's ``uvicorn.error`` logger (refusals.py ``ConnectionLog``), since it wrote a
WARNING for each malformed request anybody sends (10,000 requests, 10,000 lines).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from gitswarm.api.refusals import ConnectionLog
from gitswarm.errors import OperationError

log = logging.getLogger("gitswarm.api")
UVICORN_LOG = "uvicorn.error"  # where uvicorn's HTTP protocols log


class _Server(uvicorn.Server):
    """uvicorn's server, summing up the budget of its connection warnings once a second."""

    def __init__(self, config: uvicorn.Config, quieter: ConnectionLog) -> None:
        super().__init__(config)
        self.quieter = quieter

    async def on_tick(self, counter: int) -> bool:
        if counter % 10 == 0 and self.quieter.due():
            self.quieter.flush()
        return await super().on_tick(counter)


class ServerHandle:
    """A running server: ``url`` to reach it, ``stop()`` to end it (idempotent)."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        host: str,
        port: int,
        quieter: ConnectionLog | None = None,
    ):
        self._server = server
        self._quieter = quieter
        self._thread = thread
        self.host = host
        self.port = port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish, then stop; waits up to ``timeout``."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the HTTP server did not stop in %.0f s; forcing it", timeout)
            self._server.force_exit = True
            self._thread.join(5.0)
        if self._quieter is not None:
            logging.getLogger(UVICORN_LOG).removeFilter(self._quieter)
            self._quieter.flush(final=True)
            self._quieter = None

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    grace: int = 5,
    access_log: bool = False,
    startup_timeout: float = 10.0,
    trusted_proxies: Sequence[str] | None = None,
) -> ServerHandle:
    """Serve ``app`` on ``host:port`` (0: a free port) until ``stop()``.

    ``trusted_proxies`` (``api.trusted_proxies``): the peers whose X-Forwarded-For and
    X-Forwarded-Proto uvicorn believes; the client is the right-most address of
    X-Forwarded-For that is not one of them, so a client behind a proxy that appends
    cannot choose it. None: uvicorn's default ($FORWARDED_ALLOW_IPS, else 127.0.0.1 and
    ::1); empty: no peer, the headers are ignored."""
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=grace,
        server_header=False,
        proxy_headers=trusted_proxies is None or bool(trusted_proxies),
        forwarded_allow_ips=None if trusted_proxies is None else list(trusted_proxies),
    )
    quieter = ConnectionLog(time.monotonic, log)
    server = _Server(config, quieter)
    logging.getLogger(UVICORN_LOG).addFilter(quieter)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            failure.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"gitswarm-http-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5.0)
            logging.getLogger(UVICORN_LOG).removeFilter(quieter)
            why = f": {failure[0]!r}" if failure else ""
            raise OperationError(f"the HTTP server on {host}:{bound_port} did not start{why}")
        time.sleep(0.01)
    log.info("HTTP API listening on %s:%d", host, bound_port)
    return ServerHandle(server, thread, host, bound_port, quieter)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:  # a host name: let the resolver choose
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        except OSError as exc:
            raise OperationError(f"cannot resolve {host}: {exc.strerror}") from exc
    # proto=IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say they are TCP, and with Nagle on, each response on a kept-alive connection waited
    # ~40 ms for the client's delayed ACK between its headers and its body.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OperationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock
