"""Listing a repository's tags through the Docker Registry HTTP API v2 (edge). Called by
the image automation (promote/automation.py) on its timer.

    GET /v2/<name>/tags/list?n=1000     (pages followed through the Link header)

Credentials are the operator's, never the repository's: ``promotion.registries`` in the
agent's config, by registry host::

    registries:
      "127.0.0.1:5000": {insecure: true}                 # plain HTTP (loopback is by default)
      "registry.lan": {endpoint: "http://10.0.0.5:5000"}  # reached at another address
      ghcr.io: {username: ci, password_env: GHCR_TOKEN}  # or password_file: /run/secrets/x

A 401 with ``WWW-Authenticate: Bearer realm=...`` gets a token from the realm (with
the credentials, when there are some) and tries once more; ``Basic`` gets the
credentials. Rate limits are respected: a 429 (or 503) with ``Retry-After`` makes the
client leave that registry alone until then (``RateLimited``), and every registry is
asked at most once per ``min_interval``. Passwords are never logged or shown.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from gitswarm.errors import ConfigError, RegistryError
from gitswarm.promote.core.tags import ImageRef, parse_image
from gitswarm.source.agentconfig import Where

MAX_PAGES = 50
MAX_TAGS = 20_000
MAX_BODY = 4 * 1024 * 1024
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_NEXT = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")


@dataclass(frozen=True)
class RegistryAuth:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure: bool = False
    # Where to reach the registry when it is not at its host name (a mirror, a port
    # forwarded from another network): http(s)://host[:port].
    endpoint: str | None = None


def registries_from_mapping(
    data: Any,
    environ: Mapping[str, str] | None = None,
    where: Where | str = "promotion.registries",
) -> dict[str, RegistryAuth]:
    environ = os.environ if environ is None else environ
    where = Where.of(where)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must map registry hosts to {{username, password_env, ...}}")
    out: dict[str, RegistryAuth] = {}
    for host, spec in data.items():
        at = where / str(host)
        spec = spec or {}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{at} must be a mapping")
        unknown = sorted(
            set(spec) - {"username", "password_env", "password_file", "insecure", "endpoint"}
        )
        if unknown:
            raise ConfigError(
                f"{at / unknown[0]}: unknown key {unknown[0]!r} (known: endpoint, insecure, "
                "password_env, password_file, username; the password itself never goes in the file)"
            )
        endpoint = spec.get("endpoint")
        if endpoint is not None and (
            not isinstance(endpoint, str) or not re.match(r"^https?://[^/\s?#]+/?$", endpoint)
        ):
            raise ConfigError(f"{at / 'endpoint'} must be http(s)://host[:port], not {endpoint!r}")
        password = None
        if "password_env" in spec:
            name = spec["password_env"]
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{at / 'password_env'} must name an environment variable")
            password = environ.get(name)
            if not password:
                raise ConfigError(f"{at / 'password_env'}: environment variable {name} is not set")
        elif "password_file" in spec:
            if not isinstance(spec["password_file"], str) or not spec["password_file"]:
                raise ConfigError(f"{at / 'password_file'} must be the path of a file")
            path = Path(spec["password_file"]).expanduser()
            try:
                password = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(f"{at / 'password_file'}: cannot read {path}: {why}") from None
        username = spec.get("username")
        if username is not None and not isinstance(username, str):
            raise ConfigError(f"{at / 'username'} must be a string (quote it)")
        if (username is None) != (password is None):
            raise ConfigError(f"{at}: give both username and a password (env or file), or neither")
        insecure = spec.get("insecure", False)
        if not isinstance(insecure, bool):
            raise ConfigError(f"{at / 'insecure'} must be true or false")
        out[str(host)] = RegistryAuth(
            username, password, insecure, endpoint.rstrip("/") if endpoint else None
        )
    return out


class RateLimited(RegistryError):
    """The registry asked us to wait."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


def _loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _retry_after(value: str | None, now: float) -> float:
    if not value:
        return now + 60.0
    try:
        return now + max(0.0, float(value))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return now + 60.0


@dataclass
class RegistryClient:
    auth: Mapping[str, RegistryAuth] = field(default_factory=dict)
    client: Callable[[], httpx.Client] = lambda: httpx.Client(
        timeout=15.0, follow_redirects=True, trust_env=False
    )
    clock: Callable[[], float] = time.time
    min_interval: float = 10.0  # seconds between two listings from one registry
    _not_before: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)

    def base(self, registry: str) -> str:
        host = "registry-1.docker.io" if registry == "docker.io" else registry
        auth = self.auth.get(registry, RegistryAuth())
        if auth.endpoint:
            return auth.endpoint
        scheme = "http" if auth.insecure or _loopback(host) else "https"
        return f"{scheme}://{host}"

    def waiting(self, registry: str) -> float:
        """Seconds until ``registry`` may be asked again (0: now)."""
        return max(0.0, self._not_before.get(registry, 0.0) - self.clock())

    def tags(self, repository: str) -> list[str]:
        ref: ImageRef = parse_image(repository)
        registry = ref.registry
        now = self.clock()
        if self._not_before.get(registry, 0.0) > now:
            raise RateLimited(
                f"{registry} asked us to wait; trying again in {self.waiting(registry):.0f}s",
                self._not_before[registry],
            )
        self._not_before[registry] = now + self.min_interval
        url: str | None = f"{self.base(registry)}/v2/{ref.path}/tags/list?n=1000"
        tags: list[str] = []
        with self.client() as http:
            for _ in range(MAX_PAGES):
                if url is None:
                    break
                response = self._get(http, registry, ref.path, url)
                try:
                    body = response.json()
                except ValueError:
                    raise RegistryError(
                        f"{registry}: the tag list of {ref.path} is not JSON"
                    ) from None
                found = body.get("tags") if isinstance(body, dict) else None
                tags += [t for t in (found or []) if isinstance(t, str)]
                if len(tags) > MAX_TAGS:
                    raise RegistryError(f"{repository} has more than {MAX_TAGS} tags")
                link = _NEXT.search(response.headers.get("link", ""))
                url = str(httpx.URL(url).join(link.group(1))) if link else None
        return tags

    def _get(self, http: httpx.Client, registry: str, path: str, url: str) -> httpx.Response:
        auth = self.auth.get(registry, RegistryAuth())
        headers: dict[str, str] = {"Accept": "application/json"}
        token = self._tokens.get((registry, path))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self._send(http, registry, url, headers)
        if response.status_code == 401:
            challenge = response.headers.get("www-authenticate", "")
            scheme = challenge.split(" ", 1)[0].lower()
            if scheme == "bearer":
                token = self._token(http, registry, path, challenge, auth)
                headers["Authorization"] = f"Bearer {token}"
            elif scheme == "basic" and auth.username is not None:
                headers["Authorization"] = _basic(auth)
            else:
                raise RegistryError(
                    f"{registry} wants credentials to list {path}; configure them under "
                    "promotion.registries in the agent's config"
                )
            response = self._send(http, registry, url, headers)
        if response.status_code in (401, 403):
            raise RegistryError(
                f"{registry} refused to list the tags of {path} ({response.status_code})"
            )
        if response.status_code == 404:
            raise RegistryError(f"{registry} has no repository {path}")
        if response.status_code >= 400:
            raise RegistryError(
                f"{registry} answered {response.status_code} for the tags of {path}"
            )
        return response

    def _send(
        self, http: httpx.Client, registry: str, url: str, headers: Mapping[str, str]
    ) -> httpx.Response:
        try:
            response = http.get(url, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise RegistryError(f"{registry}: {type(exc).__name__}: {exc}") from None
        if len(response.content) > MAX_BODY:
            raise RegistryError(f"{registry}: the answer is larger than {MAX_BODY} bytes")
        if response.status_code in (429, 503):
            until = _retry_after(response.headers.get("retry-after"), self.clock())
            self._not_before[registry] = max(self._not_before.get(registry, 0.0), until)
            raise RateLimited(
                f"{registry} is rate limiting ({response.status_code}); waiting "
                f"{max(0.0, until - self.clock()):.0f}s as it asked",
                until,
            )
        return response

    def _token(
        self, http: httpx.Client, registry: str, path: str, challenge: str, auth: RegistryAuth
    ) -> str:
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", None)
        if not realm or not realm.startswith(("https://", "http://")):
            raise RegistryError(f"{registry}: a Bearer challenge without a usable realm")
        params.setdefault("scope", f"repository:{path}:pull")
        headers = {"Authorization": _basic(auth)} if auth.username is not None else {}
        try:
            answer = http.get(realm, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f"{registry}: token service: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise RegistryError(f"{registry}: the token service answered {answer.status_code}")
        try:
            body = answer.json()
        except ValueError:
            raise RegistryError(f"{registry}: the token service did not answer JSON") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{registry}: the token service gave no token")
        self._tokens[(registry, path)] = token
        return token


def _basic(auth: RegistryAuth) -> str:
    import base64

    raw = f"{auth.username}:{auth.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


__all__ = ["RateLimited", "RegistryAuth", "RegistryClient", "registries_from_mapping"]
