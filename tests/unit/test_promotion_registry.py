"""The Registry HTTP API v2 client of image automation: pages, tokens, rate limits,
credentials from the operator only and never shown (the real registry: integration)."""

from __future__ import annotations

import httpx
import pytest

from gitswarm.errors import ConfigError, RegistryError
from gitswarm.promote.registry import (
    RateLimited,
    RegistryAuth,
    RegistryClient,
    registries_from_mapping,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(handler: object, clock: Clock, **auth: RegistryAuth) -> RegistryClient:
    transport = httpx.MockTransport(handler)  # type: ignore[arg-type]
    return RegistryClient(
        auth=auth,
        client=lambda: httpx.Client(transport=transport),
        clock=clock,
        min_interval=10.0,
    )


def test_pages_are_followed_through_the_link_header() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if "last=" not in str(request.url):
            return httpx.Response(
                200,
                json={"tags": ["1.0.0", "1.1.0"]},
                headers={"Link": '</v2/app/tags/list?n=1000&last=1.1.0>; rel="next"'},
            )
        return httpx.Response(200, json={"tags": ["1.2.0"]})

    tags = client(handler, Clock()).tags("reg.io/app")
    assert tags == ["1.0.0", "1.1.0", "1.2.0"]
    assert seen[0] == "https://reg.io/v2/app/tags/list?n=1000"


def test_a_bearer_challenge_gets_a_token_with_the_operators_credentials() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.reg.io":
            assert request.headers["authorization"].startswith("Basic ")
            assert request.url.params["scope"] == "repository:team/app:pull"
            return httpx.Response(200, json={"token": "tok"})
        if request.headers.get("authorization") == "Bearer tok":
            return httpx.Response(200, json={"tags": ["1"]})
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": 'Bearer realm="https://auth.reg.io/token",service="reg"'},
        )

    auth = RegistryAuth("ci", "pw")
    assert client(handler, Clock(), **{"reg.io": auth}).tags("reg.io/team/app") == ["1"]
    assert "pw" not in repr(auth)


def test_a_429_is_respected_until_retry_after() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": "120"})

    clock = Clock()
    registry = client(handler, clock)
    with pytest.raises(RateLimited, match="rate limiting"):
        registry.tags("reg.io/app")
    clock.now += 60
    with pytest.raises(RateLimited, match="asked us to wait"):
        registry.tags("reg.io/app")
    assert len(calls) == 1  # the second round did not ask
    clock.now += 61
    with pytest.raises(RateLimited):
        registry.tags("reg.io/app")
    assert len(calls) == 2


def test_one_registry_is_asked_at_most_once_per_interval() -> None:
    registry = client(lambda r: httpx.Response(200, json={"tags": []}), Clock())
    registry.tags("reg.io/a")
    with pytest.raises(RateLimited):
        registry.tags("reg.io/b")


def test_missing_repository_and_refusals_say_what_to_do() -> None:
    clock = Clock()
    with pytest.raises(RegistryError, match="has no repository app"):
        client(lambda r: httpx.Response(404), clock).tags("reg.io/app")
    with pytest.raises(RegistryError, match=r"configure them under promotion\.registries"):
        client(lambda r: httpx.Response(401), Clock()).tags("reg.io/app")


def test_credentials_come_from_the_environment_or_a_file_never_the_config_itself() -> None:
    found = registries_from_mapping(
        {"ghcr.io": {"username": "ci", "password_env": "TOKEN"}}, {"TOKEN": "s3cret"}
    )
    assert found["ghcr.io"].password == "s3cret"
    with pytest.raises(ConfigError, match="unknown key 'password'"):
        registries_from_mapping({"ghcr.io": {"username": "ci", "password": "x"}}, {})
    with pytest.raises(ConfigError, match=r"endpoint must be http"):
        registries_from_mapping({"r": {"endpoint": "file:///etc/passwd"}}, {})
