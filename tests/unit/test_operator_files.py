"""The operator's small files — the agent config (``--config``) and
``$GITSWARM_STATE_FILE`` — are read by one bounded helper (gitswarm/files.py): a FIFO, a
directory or a device where the file should be is refused at once with the usual
message (a FIFO with no writer held the command for good before), a file too large is
refused after reading at most one byte past the limit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gitswarm.errors import ConfigError
from gitswarm.files import TooLarge, read_bounded
from gitswarm.source.agentconfig import read_agent_config
from gitswarm.store.location import default_location


def _refused(call: Callable[[], object]) -> str:
    """The ConfigError message of ``call``, which must come within 10 s."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "still waiting on the file after 10 s"
    [error] = outcome
    assert isinstance(error, ConfigError), error
    return error.message


@pytest.fixture(params=["fifo", "directory", "device"])
def odd(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "device":
        return Path("/dev/zero")  # endless: never read to its end
    path = tmp_path / "odd"
    if request.param == "fifo":
        os.mkfifo(path)  # nobody will ever write to it
    else:
        path.mkdir()
    return path


def test_an_agent_config_that_is_no_regular_file_is_refused_at_once(odd: Path) -> None:
    message = _refused(lambda: read_agent_config(odd))
    reason = "Is a directory" if odd.is_dir() else "not a regular file"
    assert message == (
        f"{odd}: cannot read the agent config: {reason}; "
        "check the path given to --config or $GITSWARM_CONFIG"
    )


def test_a_state_file_that_is_no_regular_file_is_refused_at_once(odd: Path) -> None:
    message = _refused(lambda: default_location({"HOME": "/h", "GITSWARM_STATE_FILE": str(odd)}))
    reason = "Is a directory" if odd.is_dir() else "not a regular file"
    assert message == (
        f"$GITSWARM_STATE_FILE: cannot read {odd}: {reason}; it must name a file holding "
        "the store's location (a PostgreSQL URL, e.g. a Docker secret)"
    )


def test_the_command_says_so_without_a_traceback(tmp_path: Path) -> None:
    fifo = tmp_path / "state-url"
    os.mkfifo(fifo)
    env = {**os.environ, "GITSWARM_STATE_FILE": str(fifo)}
    env.pop("GITSWARM_STATE", None)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("gitswarm")), "history", "--env", "x"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"$GITSWARM_STATE_FILE: cannot read {fifo}: not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_at_most_one_byte_past_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_bounded(path, 10) == b"x" * 10
    with pytest.raises(TooLarge):
        read_bounded(path, 9)
