"""Bounded reads of the operator's own small files: the agent config (source/agentconfig.py)
and ``$GITSWARM_STATE_FILE`` (store/location.py). I/O, below the edges that use it: one
helper, so both refuse a file that is too large, or not a regular file, the same way.

A FIFO, a device or a directory named where a file is expected is refused at once
(opened without blocking: a FIFO with no writer would otherwise hold the command for
good), and at most ``limit + 1`` bytes are read whatever the file's size.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class TooLarge(Exception):
    """The file holds more than the limit (its first ``limit + 1`` bytes were read)."""


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit``; TooLarge beyond that;
    OSError (``strerror`` set) when it cannot be opened or is not a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(str(path))
    return data
