"""Which address a request is counted by (the sign-in throttle, the audit and log budgets)
is the operator's choice, ``api.trusted_proxies``, through the real uvicorn server:
X-Forwarded-For is believed only from those peers, and then only its right-most
address that is not one of them (a client behind a proxy that appends cannot choose
it). Left out: uvicorn's own rule (loopback, or $FORWARDED_ALLOW_IPS); ``[]``: none."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from gitswarm.api import ApiSettings, create_app, settings_from_mapping
from gitswarm.api.server import serve_in_thread
from gitswarm.errors import ConfigError
from gitswarm.reconcile.metrics import Metrics
from tests.fake_agent import FakeAgent

SYNC = "/api/v1/apps/web/envs/development/sync"


def _seen_as(trusted: tuple[str, ...] | None, forwarded: str) -> str:
    """The address the audit trail gives an unauthenticated POST from 127.0.0.1 that
    says ``X-Forwarded-For: forwarded``."""
    rows: list[Mapping[str, Any]] = []
    settings = ApiSettings(audit=lambda *row: rows.append(row[3]), trusted_proxies=trusted)
    app = create_app(FakeAgent(), settings, Metrics())
    with (
        serve_in_thread(app, port=0, trusted_proxies=settings.trusted_proxies) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.post(SYNC, headers={"X-Forwarded-For": forwarded}).status_code == 401
    [details] = rows
    return str(details["address"])


@pytest.mark.parametrize(
    ("trusted", "forwarded", "seen"),
    [
        (None, "203.0.113.9", "203.0.113.9"),  # uvicorn's default: loopback is a proxy
        ((), "203.0.113.9", "127.0.0.1"),  # no proxy: the header is the client's word
        (("10.0.9.0/24",), "203.0.113.9", "127.0.0.1"),  # the peer is no trusted proxy
        (("127.0.0.1",), "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # what it appended
        (("127.0.0.0/8",), "198.51.100.1, 127.0.0.5", "198.51.100.1"),  # proxies skipped
    ],
)
def test_the_address_a_request_is_counted_by(
    monkeypatch: pytest.MonkeyPatch, trusted: tuple[str, ...] | None, forwarded: str, seen: str
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert _seen_as(trusted, forwarded) == seen


def test_the_config_file_names_addresses_and_networks() -> None:
    s = settings_from_mapping({"trusted_proxies": ["10.0.9.7/24", "::1", " 192.0.2.1 "]})
    assert s.trusted_proxies == ("10.0.9.0/24", "::1", "192.0.2.1")
    assert settings_from_mapping({}).trusted_proxies is None
    assert settings_from_mapping({"trusted_proxies": []}).trusted_proxies == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            ["*"],
            "api.trusted_proxies: '*' is not an IP address or network (such as 10.0.9.0/24); "
            "'*' would let every client choose the address it is counted by",
        ),
        (
            ["proxy.internal"],
            "api.trusted_proxies: 'proxy.internal' is not an IP address or network (such as "
            "10.0.9.0/24); '*' would let every client choose the address it is counted by",
        ),
        ("10.0.9.0/24", "api.trusted_proxies must be a list of IP addresses or networks"),
    ],
)
def test_a_bad_entry_is_refused_with_what_to_write(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"trusted_proxies": value})
    assert raised.value.message == message
