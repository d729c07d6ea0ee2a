"""The HTTP server's listening socket says it is TCP, so that asyncio turns Nagle off on
every connection it accepts (with Nagle on, each answer on a kept-alive connection
waited ~40 ms for the client's delayed ACK; bench/dashboard.py shows the figures)."""

from __future__ import annotations

import asyncio
import socket

from gitswarm.api.server import _bind


def test_accepted_connections_get_tcp_nodelay() -> None:
    listener = _bind("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        asyncio.base_events._set_nodelay(accepted)  # what asyncio does to each transport
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        for s in (accepted, client, listener):
            s.close()
