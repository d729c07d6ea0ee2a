"""The child side of the Rego sandbox: ``python -I -m gitswarm.sandbox.worker``.

Started by gitswarm/sandbox/rego.py with an empty environment, no inherited file
descriptors but its three pipes, in a session of its own. Before it reads any policy it
makes itself small: no core files, no file writes, a handful of file descriptors, no
child processes; stdout and stderr then point at /dev/null (rego-cpp's ``print()`` and
its crash messages write there) and the protocol uses a private copy of stdout.

Protocol, one JSON object per line:

    parent -> child  {"sources": {...}, "document": {...}, "params": {...},
                      "allowed": [...], "cpu": 5, "max_message_bytes": 262144}
    child -> parent  {"ready": true}                     once, after start-up
                     {"stage": ["policies/a.rego"], "package": "a" | null}
                                                         before each step, for blame
                     {"outcome": {"messages": [...], "failures": [...]}}
                     {"error": "..."}                   a bug here, not in a policy

The memory bound is the parent's (rego-cpp's allocator reserves 256 GB of address space
at load, so RLIMIT_AS/RLIMIT_DATA cannot be used); the CPU bound is RLIMIT_CPU, set
before each request to what this process has used so far plus the request's ``cpu``
seconds (SIGXCPU ends it). The child exits when its stdin closes: a parent that dies
leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import resource
import sys
from typing import Any, BinaryIO

import regopy  # noqa: F401 - loaded before the child says it is ready, not on first use

from gitswarm.policy.rego import evaluate_rego


def _confine() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # writes to files: SIGXFSZ
    _lower(resource.RLIMIT_NPROC, 0)  # no fork/exec (ignored for root)
    _lower(resource.RLIMIT_NOFILE, 16)


def _lower(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        resource.setrlimit(which, (min(value, soft) if soft >= 0 else value, hard))


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _limit_cpu(seconds: float) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(_cpu_used() + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    out.flush()


def _serve(requests: BinaryIO, out: BinaryIO) -> None:
    for line in requests:
        try:
            request = json.loads(line)
            _limit_cpu(float(request["cpu"]))
            outcome = evaluate_rego(
                request["sources"],
                request["document"],
                request["params"],
                allowed=frozenset(request["allowed"]),
                max_message_bytes=int(request["max_message_bytes"]),
                on_stage=lambda files, package: _send(
                    out, {"stage": list(files), "package": package}
                ),
            )
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            _send(out, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        _send(
            out,
            {
                "outcome": {
                    "messages": [dataclasses.asdict(m) for m in outcome.messages],
                    "failures": [dataclasses.asdict(f) for f in outcome.failures],
                }
            },
        )


def main() -> None:
    os.environ.clear()  # Python sets LC_CTYPE itself in an empty environment
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    _confine()
    _send(out, {"ready": True})
    with contextlib.suppress(BrokenPipeError):  # the parent went away
        _serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
