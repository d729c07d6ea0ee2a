"""Where an ``http`` gate may send the agent (edge): the operator's allow-list, checked on
every URL the gate asks for, and a connection only to the addresses that were checked.
Called by gates.py's ``run_http`` for a gate's URL and for every redirect it follows.

Why: gitswarm.yml is written by whoever can push, and the agent GETs the URL of each
``http`` gate from inside the operator's network. Unchecked, a pusher could make it probe
internal hosts and ports, or the cloud's metadata service (169.254.169.254), and read
the answer off the gate's status line. So where a gate may go is the operator's, in the
agent config (``promotion.http_allow``)::

    promotion:
      http_allow:
        - "http://127.0.0.1:8080/healthz"   # a URL prefix: scheme, host, port, and the
                                            # path itself or below it
        - "staging.example.com"             # a host name, any port, http or https
        - "staging.example.com:8443"        # a host name and port
        - "10.20.0.0/16"                    # addresses: any host that resolves only into
                                            # these (an IP address is a /32 or /128)

Nothing listed (the default): every ``http`` gate is refused, with the entry to add.
Never, whatever is listed: link-local addresses (169.254.0.0/16 and fe80::/10, where the
metadata services answer; and the other known metadata addresses), unspecified,
multicast and broadcast addresses. A URL with credentials, or with ``.`` or ``..`` path
segments (encoded or not), is refused too: its prefix would not say where it goes.

Checked after DNS resolution, and connected to what was checked: ``check`` resolves the
host once, refuses it unless *every* address it resolves to passes, and pins those
addresses; ``PinnedBackend`` then connects only to pinned addresses (a name that
resolves to an allowed address at check time and to a refused one a moment later, DNS
rebinding, is never resolved again). TLS is still verified against the host name.
Each attempt has a deadline: every read and write waits at most what is left of the
gate's timeout, so a server that drips bytes cannot hold the agent longer. httpx takes
no network backend, so ``PinnedTransport`` is a transport of its own (httpx's public
``BaseTransport``) over httpcore's pool with ``PinnedBackend``: no private attribute of
either library is touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import certifi
import httpcore
import httpx

from gitswarm.errors import ConfigError, GateNotAllowed
from gitswarm.source.agentconfig import Where

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

SETTING = "promotion.http_allow"
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_ENTRIES = 200

# Never reached, whatever the operator lists: where metadata services and other hosts'
# own links answer, and addresses that are no one host.
NEVER: tuple[tuple[Network, str], ...] = (
    (ipaddress.ip_network("169.254.0.0/16"), "link-local (where cloud metadata answers)"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "a cloud metadata address"),
    (ipaddress.ip_network("100.100.100.200/32"), "a cloud metadata address"),
    (ipaddress.ip_network("0.0.0.0/8"), "unspecified"),
    (ipaddress.ip_network("::/128"), "unspecified"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast"),
    (ipaddress.ip_network("ff00::/8"), "multicast"),
    (ipaddress.ip_network("255.255.255.255/32"), "broadcast"),
)


def address(text: str) -> Address:
    """``text`` as an address; an IPv4-mapped IPv6 address as the IPv4 one it is."""
    found = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def never(addr: Address) -> str | None:
    """Why ``addr`` is never reached, or None."""
    for network, why in NEVER:
        if addr.version == network.version and addr in network:
            return why
    return None


@dataclass(frozen=True, slots=True)
class AllowEntry:
    text: str
    kind: Literal["prefix", "host", "network"]
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str = "/"
    network: Network | None = None

    def admits(self, url: httpx.URL, addresses: Sequence[Address]) -> bool:
        if self.kind == "network":
            net = self.network
            return net is not None and all(a.version == net.version and a in net for a in addresses)
        if _host(url) != self.host:
            return False
        if self.port is not None and _port(url) != self.port:
            return False
        if self.kind == "host":
            return True
        if url.scheme != self.scheme:
            return False
        path = url.path or "/"
        return path == self.path or path.startswith(
            self.path if self.path.endswith("/") else self.path + "/"
        )


def _host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii").lower()


def _port(url: httpx.URL) -> int:
    return url.port or DEFAULT_PORTS.get(url.scheme, 0)


def parse_entry(text: Any, at: str) -> AllowEntry:
    """One entry of ``promotion.http_allow``; ConfigError naming it when it is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{at}: each entry is a URL prefix, a host[:port] or a CIDR, as a string")
    text = text.strip()
    if "://" in text:
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"{at}: {text!r} is not a URL: {exc}") from None
        if url.scheme not in DEFAULT_PORTS or not url.host or url.userinfo:
            raise ConfigError(f"{at}: {text!r}: a URL prefix is http(s)://host[:port][/path]")
        _refuse_host_literal(url.host, text, at)
        return AllowEntry(text, "prefix", url.scheme, _host(url), _port(url), url.path or "/")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        network = None
    if network is not None:
        first = address(str(network.network_address))
        if network.num_addresses == 1 and (why := never(first)) is not None:
            raise ConfigError(f"{at}: {text!r} is {why}: gates never reach it")
        return AllowEntry(text, "network", network=network)
    try:
        url = httpx.URL(f"http://{text}")
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{at}: {text!r} is not a host[:port]: {exc}") from None
    if not url.host or url.userinfo or url.path not in ("", "/") or url.query:
        raise ConfigError(f"{at}: {text!r}: give a host, host:port, a CIDR or a URL prefix")
    _refuse_host_literal(url.host, text, at)
    return AllowEntry(text, "host", host=_host(url), port=url.port)


def _refuse_host_literal(host: str, text: str, at: str) -> None:
    try:
        literal = address(host.strip("[]"))
    except ValueError:
        return
    if (why := never(literal)) is not None:
        raise ConfigError(f"{at}: {text!r} is {why}: gates never reach it")


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (one look-up; an address resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class HttpAllow:
    """The operator's allow-list; ``source`` names the config file, for messages."""

    entries: tuple[AllowEntry, ...] = ()
    source: str = "the agent config"

    def refusal(self, url: httpx.URL, addresses: Sequence[Address]) -> str | None:
        """Why a gate may not GET ``url``, whose host resolved to ``addresses``, or None."""
        if url.scheme not in DEFAULT_PORTS:
            return f"{url}: only http:// and https:// URLs"
        if url.userinfo:
            return f"{_safe(url)}: credentials in a gate URL are refused"
        segments = urllib.parse.unquote(url.raw_path.decode("ascii").split("?", 1)[0]).split("/")
        if any(s in (".", "..") for s in segments) or "\\" in url.path:
            return f"{url}: '.' and '..' path segments are refused"
        host = _host(url)
        if not addresses:
            return f"{url}: {host} resolves to no address"
        for addr in addresses:
            if (why := never(addr)) is not None:
                said = host if str(addr) == host else f"{host} resolves to {addr}"
                return f"{url}: {said}, which is {why}; gates never reach such addresses"
        if any(entry.admits(url, addresses) for entry in self.entries):
            return None
        listed = ", ".join(e.text for e in self.entries[:5]) or "nothing"
        suggestion = f"{url.scheme}://{url.netloc.decode('ascii')}{url.path or '/'}"
        return (
            f"{url} is not allowed by {SETTING} of {self.source} (it lists {listed}): "
            "whoever can push writes gate URLs, the operator decides where the agent may "
            f"go; if it should, add {suggestion!r} to {SETTING} in the agent config"
        )


@dataclass
class Egress:
    """One gate run's checks: each URL against ``allow`` after one resolution, and the
    addresses that passed, pinned for the connection; ``deadline`` ends an attempt."""

    allow: HttpAllow
    resolve: Resolver = system_resolve
    pins: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)
    deadline: float = math.inf  # time.monotonic() when the attempt's time is up

    def check(self, url: httpx.URL) -> None:
        """GateNotAllowed unless the operator lets a gate GET ``url``; then its host's
        addresses are pinned for the connection."""
        host, port = _host(url), _port(url)
        found: list[Address] = []
        if url.scheme in DEFAULT_PORTS and not url.userinfo:
            try:
                found = [address(a) for a in self.resolve(host, port)]
            except (OSError, UnicodeError, ValueError) as exc:
                raise GateNotAllowed(f"{url}: {host} does not resolve ({exc})") from None
        refused = self.allow.refusal(url, found)
        if refused is not None:
            raise GateNotAllowed(refused)
        self.pins[(host, port)] = tuple(str(a) for a in found)


def _safe(url: httpx.URL) -> str:
    return str(url.copy_with(username=None, password=None))


def parse_allow(
    data: Any, where: Where | str = SETTING, source: str = "the agent config"
) -> HttpAllow:
    """``promotion.http_allow`` of the operator's config."""
    where = Where.of(where)
    if data is None:
        return HttpAllow(source=source)
    if not isinstance(data, list):
        raise ConfigError(
            f"{where} must be a list of URL prefixes, host[:port] names or CIDRs "
            "(where http gates may go)"
        )
    if len(data) > MAX_ENTRIES:
        raise ConfigError(f"{where}: at most {MAX_ENTRIES} entries")
    entries = tuple(parse_entry(item, str(where / i)) for i, item in enumerate(data))
    return HttpAllow(entries, source)


# --- the connection: only to pinned addresses, within the deadline ------------------


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, backend: PinnedBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._backend.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._backend.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._backend
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's sockets, connected only to the addresses ``Egress.check`` pinned."""

    def __init__(self, egress: Egress) -> None:
        self._inner = httpcore.SyncBackend()
        self._egress = egress

    def left(self, timeout: float | None, late: type[Exception]) -> float:
        remaining = self._egress.deadline - time.monotonic()
        if remaining <= 0:
            raise late("the gate's timeout is up")
        return remaining if timeout is None else min(timeout, remaining)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        pinned = self._egress.pins.get((host.lower(), port))
        if not pinned:  # pragma: no cover - run_http checks every URL it asks for
            raise httpcore.ConnectError(f"{host}:{port} was not checked against {SETTING}")
        failure: Exception | None = None
        for addr in pinned:
            try:
                stream = self._inner.connect_tcp(
                    addr,
                    port,
                    timeout=self.left(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self)
        raise failure or httpcore.ConnectError(f"{host}:{port}: no address")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - gates speak TCP only
        raise httpcore.ConnectError("http gates do not reach unix sockets")


# httpcore's errors as httpx's: what gates.py catches (httpx.HTTPError) and names.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc) or type(exc).__name__, request=request) from exc
        raise


class _Body(httpx.SyncByteStream):
    """A response body read from httpcore, its errors as httpx's."""

    def __init__(self, stream: Iterable[bytes], request: httpx.Request) -> None:
        self._stream, self._request = stream, request

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx(self._request):
            yield from self._stream

    def close(self) -> None:
        closer = getattr(self._stream, "close", None)
        if closer is not None:
            closer()


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport over httpcore's connection pool with a PinnedBackend, built
    from public API only (httpx.BaseTransport, httpcore.ConnectionPool and its
    ``network_backend``): no proxy, no retry, HTTP/1.1, TLS verified against certifi's
    CAs and the URL's host name (httpcore passes it as the server name)."""

    def __init__(self, backend: PinnedBackend) -> None:
        context = ssl.create_default_context(cafile=certifi.where())
        self._pool = httpcore.ConnectionPool(
            ssl_context=context, network_backend=backend, max_connections=4, retries=0
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.SyncByteStream):  # pragma: no cover
            raise httpx.UnsupportedProtocol("a gate's request body must be synchronous")
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx(request):
            answer = self._pool.handle_request(core)
        if not isinstance(answer.stream, Iterable):  # pragma: no cover - the sync pool's
            raise httpx.UnsupportedProtocol("httpcore answered with an async body")
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream, request),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self._pool.close()


__all__ = [
    "NEVER",
    "SETTING",
    "AllowEntry",
    "Egress",
    "HttpAllow",
    "PinnedBackend",
    "PinnedTransport",
    "parse_allow",
    "parse_entry",
    "system_resolve",
]
