"""Where an ``http`` gate may send the agent: only where the operator's
``promotion.http_allow`` says, checked on every redirect and after DNS resolution, and
connected to the checked address. Real sockets on loopback prove that nothing reaches a
refused address (a listening socket that no one connects to)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from gitswarm.errors import ConfigError
from gitswarm.promote.core.settings import HttpGate
from gitswarm.promote.egress import HttpAllow, PinnedTransport, parse_allow, system_resolve
from gitswarm.promote.gates import run_http
from gitswarm.promote.operator import load_operator_settings
from tests.unit.promotion_rig import Rig, make_rig


class Trap:
    """A listening socket on loopback: any connection made to it is seen."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]

    def reached(self) -> bool:
        self.sock.settimeout(0.2)
        try:
            conn, _ = self.sock.accept()
        except TimeoutError:
            return False
        conn.close()
        return True


class Answers(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str]]]] = {}
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status, headers = self.routes.get(self.path, (404, {}))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    try:
        yield t
    finally:
        t.sock.close()


@pytest.fixture
def server() -> Iterator[tuple[int, type[Answers]]]:
    handler = type("Handler", (Answers,), {"routes": {}, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def allow(*entries: str, source: str = "/etc/gitswarm/agent.yml") -> HttpAllow:
    return parse_allow(list(entries), "promotion.http_allow", source)


def gate(url: str, **kw: object) -> HttpGate:
    return HttpGate("health", url, where="gitswarm.yml:12:15", **kw)  # type: ignore[arg-type]


def no_sleep(_seconds: float) -> None:
    return


def test_the_metadata_address_is_refused_whatever_is_listed() -> None:
    result = run_http(gate("http://169.254.169.254/latest/meta-data/"), allow("0.0.0.0/0"))
    assert (result.passed, result.refused) == (False, True)
    assert result.summary == (
        "GET http://169.254.169.254/latest/meta-data/: refused, nothing sent to "
        "http://169.254.169.254/latest/meta-data/"
    )
    assert result.output == (
        "gitswarm.yml:12:15: gate health: http://169.254.169.254/latest/meta-data/: "
        "169.254.169.254, which is link-local (where cloud metadata answers); gates never "
        "reach such addresses"
    )
    # Written as a name that resolves there, or as a mapped IPv6 address: the same.
    for url in ("http://[::ffff:169.254.169.254]/", "http://0xa9fea9fe/"):
        assert run_http(gate(url), allow("0.0.0.0/0", "::/0")).refused, url


def test_a_loopback_port_the_operator_did_not_list_is_never_connected_to(
    trap: Trap, server: tuple[int, type[Answers]]
) -> None:
    port, _ = server
    result = run_http(gate(f"http://127.0.0.1:{trap.port}/health"), allow(f"127.0.0.1:{port}"))
    assert (result.passed, result.refused) == (False, True)
    assert result.output == (
        f"gitswarm.yml:12:15: gate health: http://127.0.0.1:{trap.port}/health is not allowed "
        f"by promotion.http_allow of /etc/gitswarm/agent.yml (it lists 127.0.0.1:{port}): "
        "whoever can push writes gate URLs, the operator decides where the agent may go; if "
        f"it should, add 'http://127.0.0.1:{trap.port}/health' to promotion.http_allow in the "
        "agent config"
    )
    assert not trap.reached()


def test_without_an_allow_list_every_http_gate_is_refused(trap: Trap) -> None:
    result = run_http(gate(f"http://127.0.0.1:{trap.port}/"), HttpAllow(source="agent.yml"))
    assert result.refused and "(it lists nothing)" in result.output
    assert not trap.reached()


def test_a_redirect_to_a_refused_address_is_refused_before_it_is_followed(
    trap: Trap, server: tuple[int, type[Answers]]
) -> None:
    port, handler = server
    handler.routes["/health"] = (302, {"Location": f"http://127.0.0.1:{trap.port}/admin"})
    handler.routes["/meta"] = (307, {"Location": "http://169.254.169.254/latest/"})
    allowed = allow(f"http://127.0.0.1:{port}/")
    result = run_http(gate(f"http://127.0.0.1:{port}/health", retries=2), allowed, sleep=no_sleep)
    assert (result.passed, result.refused) == (False, True)
    assert result.summary == (
        f"GET http://127.0.0.1:{port}/health: refused, nothing sent to "
        f"http://127.0.0.1:{trap.port}/admin"
    )
    assert result.output.startswith(
        f"gitswarm.yml:12:15: gate health (redirected: 302 Found -> "
        f"http://127.0.0.1:{trap.port}/admin): http://127.0.0.1:{trap.port}/admin is not "
        "allowed by promotion.http_allow"
    )
    assert handler.seen == ["/health"]  # a refusal is not retried
    assert not trap.reached()
    meta = run_http(gate(f"http://127.0.0.1:{port}/meta"), allowed)
    assert meta.refused and "link-local" in meta.output


def test_an_allowed_redirect_is_followed_and_a_prefix_bounds_the_path(
    server: tuple[int, type[Answers]],
) -> None:
    port, handler = server
    handler.routes["/health"] = (301, {"Location": "/health/ready"})
    handler.routes["/health/ready"] = (200, {})
    result = run_http(
        gate(f"http://127.0.0.1:{port}/health"), allow(f"http://127.0.0.1:{port}/health")
    )
    assert result.passed, result.output
    assert result.summary == f"GET http://127.0.0.1:{port}/health: 200 OK after 1 redirect"
    for path in ("/healthz", "/health/../admin", "/health/%2e%2e/admin"):
        refused = run_http(
            gate(f"http://127.0.0.1:{port}{path}"), allow(f"http://127.0.0.1:{port}/health")
        )
        assert refused.refused, path
    assert "/admin" not in handler.seen and "/healthz" not in handler.seen


def test_the_connection_goes_to_the_address_checked_not_a_second_lookup(
    server: tuple[int, type[Answers]],
) -> None:
    port, handler = server
    handler.routes["/health"] = (200, {})
    looked_up: list[str] = []

    def rebinding(host: str, port_: int) -> list[str]:
        # First the allowed address; any later look-up would say the metadata address.
        looked_up.append(host)
        return ["127.0.0.1"] if len(looked_up) == 1 else ["169.254.169.254"]

    result = run_http(
        gate(f"http://staging.invalid:{port}/health"),
        allow("127.0.0.1/32"),
        resolve=rebinding,
    )
    # staging.invalid resolves nowhere in real DNS: only the pinned address was used.
    assert result.passed, result.output
    assert looked_up == ["staging.invalid"] and handler.seen == ["/health"]


def test_a_name_that_resolves_into_a_refused_range_is_refused(trap: Trap) -> None:
    def resolve(_host: str, _port: int) -> list[str]:
        return ["127.0.0.1", "169.254.169.254"]

    result = run_http(
        gate(f"http://mixed.invalid:{trap.port}/"), allow("mixed.invalid"), resolve=resolve
    )
    assert result.refused
    assert "mixed.invalid resolves to 169.254.169.254, which is link-local" in result.output
    assert not trap.reached()


def test_credentials_in_a_gate_url_are_refused(trap: Trap) -> None:
    result = run_http(gate(f"http://u:p@127.0.0.1:{trap.port}/"), allow(f"127.0.0.1:{trap.port}"))
    assert result.refused and "credentials in a gate URL are refused" in result.output
    assert "u:p" not in result.output
    assert not trap.reached()


def test_a_server_that_drips_bytes_is_cut_off_at_the_gate_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"X-Slow: y\r\n")
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        result = run_http(
            gate(f"http://127.0.0.1:{port}/", timeout=1.0), allow(f"127.0.0.1:{port}")
        )
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert not result.passed and not result.refused
    assert "ReadTimeout" in result.summary
    assert time.monotonic() - started < 3


def test_the_operator_writes_the_allow_list(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_text(
        "promotion:\n  http_allow:\n    - http://127.0.0.1:8080/healthz\n"
        "    - staging.example:8443\n    - 10.0.0.0/8\n"
    )
    entries = load_operator_settings(path).http_allow.entries
    assert [(e.kind, e.host, e.port) for e in entries] == [
        ("prefix", "127.0.0.1", 8080),
        ("host", "staging.example", 8443),
        ("network", None, None),
    ]
    path.write_text("promotion:\n  http_allow: [169.254.169.254]\n")
    with pytest.raises(ConfigError) as info:
        load_operator_settings(path)
    assert info.value.message == (
        f"{path}:2: promotion.http_allow[0]: '169.254.169.254' is link-local (where cloud "
        "metadata answers): gates never reach it"
    )
    path.write_text("promotion:\n  http_allow: http://x/\n")
    with pytest.raises(ConfigError, match=r"promotion.http_allow must be a list"):
        load_operator_settings(path)


def test_system_resolution_of_an_address_is_the_address() -> None:
    assert system_resolve("127.0.0.1", 80) == ["127.0.0.1"]


def test_a_refused_gate_stops_the_promotion_as_gate_not_allowed(tmp_path: Path, trap: Trap) -> None:
    rig: Rig = make_rig(tmp_path)
    try:
        rig.settings(
            {"gates": {"http": [{"name": "health", "url": f"http://127.0.0.1:{trap.port}/"}]}}
        )
        rig.sync("dev")
        rig.sync("prod")
        head = rig.head()
        outcome = rig.promote()
        assert (outcome.result, outcome.reason, outcome.exit_code) == (
            "Failed",
            "GateNotAllowed",
            2,
        )
        assert outcome.message == (
            f"gate failed, nothing committed: health: GET http://127.0.0.1:{trap.port}/: "
            f"refused, nothing sent to http://127.0.0.1:{trap.port}/"
        )
        (refused,) = [g for g in outcome.gates if g.name == "health"]
        assert refused.output.startswith("gitswarm.yml:")
        assert rig.head() == head and not trap.reached()
    finally:
        rig.store.close()


def test_a_pinned_https_connection_still_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    handler = type("Handler", (Answers,), {"routes": {"/": (200, {})}, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    try:
        result = run_http(
            gate(f"https://localhost:{port}/"),
            allow(f"localhost:{port}"),
            resolve=lambda _h, _p: ["127.0.0.1"],
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    # A self-signed certificate is not trusted: the pinned address changes nothing there.
    assert not result.passed and not result.refused
    assert "CERTIFICATE_VERIFY_FAILED" in result.output and handler.seen == []


def test_the_pinned_transport_rests_on_public_api_only(
    server: tuple[int, type[Answers]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx takes no network backend; swapping its HTTPTransport's private ``_pool``
    would break silently with the next httpx. The transport is httpx's public
    BaseTransport over httpcore's pool: it works with HTTPTransport's internals gone,
    and a connection it cannot make is httpx's ConnectError, as before."""
    assert not issubclass(PinnedTransport, httpx.HTTPTransport)

    def gone(*_a: object, **_kw: object) -> httpx.Response:
        raise AssertionError("httpx.HTTPTransport's internals were used")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", gone)
    port, handler = server
    handler.routes["/health"] = (302, {"Location": "/ok"})
    handler.routes["/ok"] = (200, {})
    result = run_http(gate(f"http://127.0.0.1:{port}/health"), allow(f"127.0.0.1:{port}"))
    assert result.passed, result.output
    assert handler.seen == ["/health", "/ok"]

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    result = run_http(gate(f"http://127.0.0.1:{dead}/health"), allow(f"127.0.0.1:{dead}"))
    assert not result.passed and not result.refused
    assert "ConnectError" in result.output, result.output
