"""Two things every handler needs: a bounded body read, and a safe call into the agent.

``read_body`` enforces the size limit while reading (a declared Content-Length over the
limit is refused before reading; a chunked or lying body is cut off at limit + 1 byte).
``call`` runs an agent (or audit) method on the thread pool, since they may block on
Docker, Git or the store, and turns anything that is not a gitswarm error into an
``InternalError`` after logging it: foreign exception text never reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gitswarm.api.errors import InternalError, PayloadTooLarge
from gitswarm.errors import GitswarmError, UsageError

log = logging.getLogger("gitswarm.api")

P = ParamSpec("P")
T = TypeVar("T")


def address_of(request: Request) -> str:
    """The address a request came from (uvicorn's view: X-Forwarded-For only from a
    trusted proxy, ``api.trusted_proxies``), for the throttle and the audit budget.
    Behind Swarm's routing mesh every outside client has the ingress network's address:
    they share one throttle and one budget (README, "The agent")."""
    return request.client.host if request.client else "unknown"


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise UsageError("Content-Length is not a number") from None
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def call(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except GitswarmError:
        raise
    except Exception as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        log.exception("unexpected error from %s", name)
        raise InternalError("internal error; the agent's log has the details") from exc
