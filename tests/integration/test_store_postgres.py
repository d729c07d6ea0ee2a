"""The private PostgreSQL of the test harness (harness/postgres.py): it answers, it is
private, and it leaves nothing behind, even when its owner is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import postgres

pytestmark = pytest.mark.postgres


# --- the harness itself -----------------------------------------------------------------


def test_a_private_cluster_answers_and_leaves_nothing_behind() -> None:
    server = postgres.start()
    try:
        assert server.sql("SELECT current_setting('listen_addresses')") == "\n"  # no TCP
        url = server.create_schema("scratch")
        assert url.endswith("&options=-csearch_path%3Dscratch")
        assert server.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'scratch'") == "1\n"
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None
    assert not server.root.exists()


def test_a_cluster_whose_owner_was_killed_is_reaped() -> None:
    code = (
        "import os, signal\n"
        "from harness import postgres\n"
        "server = postgres.start()\n"
        "print(server.root, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    root = Path(proc.stdout.strip())
    postmaster = int((root / "data" / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, 0)  # orphaned, still running
    assert root in postgres.reap_stale()
    assert not root.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster, 0)
