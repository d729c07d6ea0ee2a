"""Sharing the machine: set-up at low priority, the measured parts alone and at full.

Deploying 1,000 stacks is set-up, not a figure: it may run beside other work. What is
measured should not be, and should not keep others waiting long. ``Turns`` does both:

- ``Turns(lock, nice)`` lowers the priority of this process by ``nice`` at once, before
  the lab starts (the private dockerd, the registry and the agent inherit it);
- ``with turns.measured():`` takes ``lock`` (an exclusive ``flock``: the one real-swarm
  runs on the machine queue on), raises every thread of this process and of its
  descendants back to the priority they started at, and on the way out lowers them again
  and releases the lock. The time spent waiting for the lock is printed.

Without a lock and with ``nice`` 0 both are no-ops.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def renice_tree(root: int, value: int) -> int:
    """Set the nice value of every thread of ``root`` and its descendants (Linux keeps
    one per thread; new threads inherit their creator's); how many were set."""
    count = 0
    for pid in descendants(root):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, int(task.name), value)
                    count += 1
    return count


class Turns:
    def __init__(self, lock: Path | None = None, nice: int = 0) -> None:
        self.lock, self.nice = lock, nice
        self.base = os.getpriority(os.PRIO_PROCESS, 0)
        self.waited = 0.0  # seconds spent waiting for the lock, in all
        if nice:
            renice_tree(os.getpid(), self.base + nice)

    @contextlib.contextmanager
    def measured(self, what: str) -> Iterator[None]:
        handle = None
        if self.lock is not None:
            handle = self.lock.open("a")
            started = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            waited = time.monotonic() - started
            self.waited += waited
            print(f"  {what}: {self.lock} taken after {waited:.0f} s", flush=True)
        try:
            if self.nice:
                renice_tree(os.getpid(), self.base)
            yield
        finally:
            try:
                if self.nice:
                    renice_tree(os.getpid(), self.base + self.nice)
            finally:
                if handle is not None:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    handle.close()
