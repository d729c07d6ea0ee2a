"""``python -m gitswarm.cli.healthcheck``: the container's HEALTHCHECK (edge).

GETs ``/healthz`` of the agent in this container, at the address ``gitswarm serve``
listens on (``$GITSWARM_LISTEN``, default 127.0.0.1:8080; a wildcard address is asked
on loopback), and exits 0 when it answers 200, 1 otherwise, printing why. Used by the
image (Dockerfile, scripts/build-image) and deploy/gitswarm-stack.yml. Standard library
only, so a probe every few seconds costs a few milliseconds of CPU, not an import of
the web stack.

A standby agent (another one holds the lease) is healthy: it is alive and ready to take
over. Whether an agent is the leader is ``/readyz``'s question.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

DEFAULT_LISTEN = "127.0.0.1:8080"
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}  # noqa: S104


def probe_url(environ: Mapping[str, str]) -> str:
    """The /healthz URL of the agent that listens on ``$GITSWARM_LISTEN``."""
    listen = environ.get("GITSWARM_LISTEN") or DEFAULT_LISTEN
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"GITSWARM_LISTEN must be HOST:PORT, not {listen!r}")
    host = _WILDCARDS.get(host, host).strip("[]")
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main(environ: Mapping[str, str] | None = None, timeout: float = 4.0) -> int:
    try:
        url = probe_url(os.environ if environ is None else environ)
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
