"""A private Docker engine that listens on TLS only, for tests of tcp:// targets.

The engine is a ``PrivateEngine`` (its own network namespace, folders, cgroup) whose
dockerd also listens on ``tcp://127.0.0.1:2376`` *inside* that namespace with
``--tlsverify``: only a client certificate signed by the test's CA gets in. Its unix
socket is kept for the harness itself (setup, images, cleanup); gitswarm reaches the
engine only over TLS.

Nothing outside the namespace listens on an address but loopback: a ``NetnsForwarder``
accepts on ``127.0.0.1:<port>`` of the caller's namespace and opens each connection from
inside the engine's namespace (a thread that entered it with setns), copying bytes both
ways. TLS runs end to end between gitswarm and dockerd; the forwarder sees ciphertext.

Certificates come from ``openssl`` (``make_pki``): a CA, the engine's server certificate
(for 127.0.0.1 and localhost), a client certificate, and a second CA with a client
certificate of its own (the wrong certificate).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from harness.engine import PrivateEngine
from harness.system import NETNS_DIR, HarnessError, run

CLONE_NEWNET = 0x40000000
ENGINE_PORT = 2376


@dataclass(frozen=True)
class Pki:
    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "server-cert.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.root / "cert.pem"

    @property
    def client_key(self) -> Path:
        return self.root / "key.pem"

    @property
    def rogue_cert(self) -> Path:
        """A client certificate from another CA: the engine must refuse it."""
        return self.root / "rogue-cert.pem"

    @property
    def rogue_key(self) -> Path:
        return self.root / "rogue-key.pem"


def _openssl(*args: str) -> None:
    run(["openssl", *args], timeout=60)


def _issue(root: Path, ca: str, name: str, subject: str, ext: str) -> None:
    (root / f"{name}.ext").write_text(ext)
    _openssl("genrsa", "-out", str(root / f"{name}-key.pem"), "2048")
    _openssl(
        "req", "-new", "-key", str(root / f"{name}-key.pem"), "-subj", subject,
        "-out", str(root / f"{name}.csr"),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-days", "2", "-sha256", "-in", str(root / f"{name}.csr"),
        "-CA", str(root / f"{ca}.pem"), "-CAkey", str(root / f"{ca}-key.pem"),
        "-CAcreateserial", "-out", str(root / f"{name}-cert.pem"),
        "-extfile", str(root / f"{name}.ext"),
    )  # fmt: skip


def make_pki(root: Path) -> Pki:
    """CA, server and client certificates (valid two days), and a rogue CA's client."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for ca in ("ca", "rogue-ca"):
        _openssl("genrsa", "-out", str(root / f"{ca}-key.pem"), "2048")
        _openssl(
            "req", "-new", "-x509", "-days", "2", "-sha256", "-key", str(root / f"{ca}-key.pem"),
            "-subj", f"/CN=gitswarm test {ca}", "-out", str(root / f"{ca}.pem"),
        )  # fmt: skip
    _issue(
        root, "ca", "server", "/CN=localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )  # fmt: skip
    _issue(root, "ca", "client", "/CN=gitswarm", "extendedKeyUsage=clientAuth\n")
    _issue(root, "rogue-ca", "rogue", "/CN=intruder", "extendedKeyUsage=clientAuth\n")
    (root / "client-cert.pem").rename(root / "cert.pem")
    (root / "client-key.pem").rename(root / "key.pem")
    return Pki(root)


def tls_engine(name: str, root: Path, pki: Pki) -> PrivateEngine:
    """A PrivateEngine that also listens on TLS at 127.0.0.1:2376 in its namespace."""
    return PrivateEngine(
        name=name,
        root=root,
        extra_args=(
            "--tlsverify",
            "--tlscacert", str(pki.ca),
            "--tlscert", str(pki.server_cert),
            "--tlskey", str(pki.server_key),
            "-H", f"tcp://127.0.0.1:{ENGINE_PORT}",
        ),
    )  # fmt: skip


@dataclass
class NetnsForwarder:
    """127.0.0.1:<port> here -> 127.0.0.1:``port`` inside network namespace ``netns``."""

    netns: str
    port: int = ENGINE_PORT
    _listener: socket.socket | None = field(default=None, repr=False)
    _dials: queue.Queue[queue.Queue[socket.socket | OSError] | None] = field(
        default_factory=queue.Queue, repr=False
    )
    _closed: threading.Event = field(default_factory=threading.Event, repr=False)
    _sockets: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def address(self) -> str:
        if self._listener is None:
            raise HarnessError("forwarder not started")
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> NetnsForwarder:
        ready: queue.Queue[BaseException | None] = queue.Queue()
        threading.Thread(target=self._dialer, args=(ready,), daemon=True).start()
        error = ready.get(timeout=10)
        if error is not None:
            raise HarnessError(f"cannot enter netns {self.netns}: {error}")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _dialer(self, ready: queue.Queue[BaseException | None]) -> None:
        """Enter the namespace (this thread only) and open connections there on request."""
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            fd = os.open(NETNS_DIR / self.netns, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
        except OSError as exc:
            ready.put(exc)
            return
        ready.put(None)
        while True:
            reply = self._dials.get()
            if reply is None:
                return
            try:
                reply.put(socket.create_connection(("127.0.0.1", self.port), timeout=5))
            except OSError as exc:
                reply.put(exc)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            reply: queue.Queue[socket.socket | OSError] = queue.Queue()
            self._dials.put(reply)
            upstream = reply.get()
            if isinstance(upstream, OSError):
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._dials.put(None)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


__all__ = ["ENGINE_PORT", "NetnsForwarder", "Pki", "make_pki", "tls_engine"]
