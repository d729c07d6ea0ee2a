"""tests/conftest.py's ``socket_client``: no request of its clients reads proxy settings
from os.environ, the first one (the API version, asked in the constructor) included. The
stack cleaner's threads make such clients while pytest changes PYTEST_CURRENT_TEST, and
iterating os.environ then fails with KeyError (a cleaner failed so and left a test's
network and volume behind)."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
import requests.utils

from tests.conftest import socket_client


class _Engine(BaseHTTPRequestHandler):
    """Answers /version (with or without an API prefix) as a Docker engine of API 1.41."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if not self.path.endswith("/version"):
            self.send_error(404)
            return
        body = json.dumps({"ApiVersion": "1.41", "Version": "20.10.24"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:  # a unix socket has no client address
        return "unix"

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[str]:
    sock = tmp_path / "docker.sock"
    server = socketserver.ThreadingUnixStreamServer(str(sock), _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Engine.seen = []
    try:
        yield f"unix://{sock}"
    finally:
        server.shutdown()
        server.server_close()


def test_no_request_reads_proxy_settings_from_the_environment(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_environ(*_: object, **__: object) -> dict[str, str]:
        raise AssertionError("read proxy settings from os.environ")

    monkeypatch.setattr(requests.utils, "get_environ_proxies", no_environ)
    monkeypatch.setattr(requests.sessions, "get_environ_proxies", no_environ, raising=False)
    client = socket_client(engine)
    try:
        assert client.api.api_version == "1.41"  # the engine's, not a pinned one
        assert client.version()["ApiVersion"] == "1.41"
    finally:
        client.close()
    assert _Engine.seen[-1] == "/v1.41/version"
