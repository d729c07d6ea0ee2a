"""The C allocator under the agent: fewer arenas, and freed memory given back (issue 18).

Used by ``gitswarm serve`` (cli/serve.py) before any thread starts, and by the agent's
dispatch loop (reconcile/agent/agent.py) when a burst of work ends. Python's small
objects live in pymalloc's arenas, but every larger block (a listing's JSON, a render's
strings, SQLite's pages, msgspec's buffers) comes from the C allocator. glibc gives each
thread that allocates an arena of its own, up to 8 per core, and keeps what was freed in
them: after the first syncs of 1,000 apps on the agent's 4 workers that memory stays
resident though nothing holds it. ``cap_arenas`` limits the arenas (``M_ARENA_MAX``, as
``MALLOC_ARENA_MAX`` does); ``trim`` returns the free pages of every arena to the
system (``malloc_trim(0)``). Both are no-ops where the C library is not glibc (musl,
macOS): the symbols are looked up, never assumed.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2  # the main thread's arena and one the workers share


@dataclass(frozen=True)
class Allocator:
    """glibc's ``mallopt`` and ``malloc_trim`` when the process has them (else None)."""

    mallopt: Callable[[int, int], int] | None = None
    malloc_trim: Callable[[int], int] | None = None

    @classmethod
    def of_process(cls, lib: object | None = None) -> Allocator:
        """The allocator this process links (``lib``: a stand-in, for tests)."""
        if lib is None:
            try:
                lib = ctypes.CDLL(None)
            except OSError:  # no C library to load (not seen on Linux)
                return cls()
        return cls(getattr(lib, "mallopt", None), getattr(lib, "malloc_trim", None))

    def cap_arenas(self, arenas: int = ARENAS) -> bool:
        """At most ``arenas`` arenas; call it before the process starts a thread (glibc
        reads the cap when a thread first allocates). True if the C library took it."""
        if self.mallopt is None:
            return False
        taken = bool(self.mallopt(M_ARENA_MAX, arenas))
        log.debug("malloc arenas capped at %d: %s", arenas, taken)
        return taken

    def trim(self) -> bool:
        """Give the free memory of every arena back to the system. True if it did."""
        if self.malloc_trim is None:
            return False
        return bool(self.malloc_trim(0))


__all__ = ["ARENAS", "M_ARENA_MAX", "Allocator"]
