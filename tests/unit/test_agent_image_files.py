"""The agent image's two builds say the same thing, the shipped stack files load in the
Docker CLIs, and the container healthcheck asks /healthz where the agent listens. The
image itself runs in tests/integration/test_agent_image.py."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitswarm.cli.healthcheck import main as healthcheck
from gitswarm.cli.healthcheck import probe_url

ROOT = Path(__file__).resolve().parents[2]


def _dockerfile_settings() -> dict[str, str]:
    """The final stage's ENV (one per key), USER, VOLUME, EXPOSE, HEALTHCHECK, ENTRYPOINT
    and CMD, as the build script's --change lines would say them."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.split("\nFROM ${PYTHON_IMAGE}\n", 1)[1]
    out: dict[str, str] = {}
    for line in final.splitlines():
        word, _, rest = line.strip().partition(" ")
        rest = re.sub(r"\s+", " ", rest).strip()
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                out[f"ENV {key}"] = value
        elif word in ("USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"):
            out[word] = rest
    return out


def _script_settings() -> dict[str, str]:
    text = (ROOT / "scripts/build-image").read_text()
    block = text.split("changes=(\n", 1)[1].split("\n)\n", 1)[0]
    out: dict[str, str] = {}
    for raw in block.splitlines():
        line = raw.strip()
        line = line[1:-1] if line[:1] in "\"'" else line
        line = line.replace("$UID_GITSWARM", "10001")
        word, _, rest = line.partition(" ")
        if word == "ENV":
            key, _, value = rest.partition("=")
            out[f"ENV {key}"] = value
        elif word in ("USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"):
            out[word] = rest
    return out


def test_the_dockerfile_and_the_local_build_configure_the_same_image() -> None:
    ours, theirs = _script_settings(), _dockerfile_settings()
    # PATH: the local build spells out Debian's default where the Dockerfile says $PATH.
    assert ours.pop("ENV PATH").startswith("/opt/gitswarm/bin:")
    assert theirs.pop("ENV PATH") == "/opt/gitswarm/bin:$PATH"
    assert ours == theirs
    assert ours["USER"] == "10001"
    assert ours["HEALTHCHECK"].endswith('CMD ["python", "-m", "gitswarm.cli.healthcheck"]')
    assert ours["ENV GITSWARM_LISTEN"] == "0.0.0.0:8080"


def test_both_builds_install_the_same_git_configuration() -> None:
    assert "COPY deploy/image/gitconfig /etc/gitconfig" in (ROOT / "Dockerfile").read_text()
    script = (ROOT / "scripts/build-image").read_text()
    assert 'install -m 0644 deploy/image/gitconfig "$root/etc/gitconfig"' in script


@pytest.mark.parametrize("cli", ["/usr/bin/docker", "/usr/local/bin/docker"])
@pytest.mark.parametrize(
    "files",
    [["gitswarm-stack.yml"], ["gitswarm-stack.yml", "gitswarm-stack.postgres.yml"]],
    ids=["sqlite", "postgres"],
)
def test_the_stack_files_load_in_the_docker_cli(cli: str, files: list[str]) -> None:
    """`stack deploy` checks the file against its schema before it connects: "Cannot
    connect" means the file loaded (Debian's 20.10 CLI, which the image ships, and 28)."""
    if not Path(cli).exists():
        pytest.skip(f"{cli} is not installed")
    args = [cli, "-H", "unix:///nonexistent.sock", "stack", "deploy"]
    for name in files:
        args += ["-c", str(ROOT / "deploy" / name)]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "GITSWARM_IMAGE": "registry.example.com/gitswarm:0.1.0",
        "GITSWARM_REPO": "https://git.example.com/gitops.git",
        "DOCKER_GID": "999",
    }
    proc = subprocess.run([*args, "gitswarm"], capture_output=True, text=True, env=env)
    assert "Cannot connect to the Docker daemon" in proc.stderr, proc.stderr
    missing = subprocess.run(
        [*args, "gitswarm"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert "is missing a value: set GITSWARM_" in missing.stderr, missing.stderr  # says what to do


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        (None, "http://127.0.0.1:8080/healthz"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000/healthz"),
        (":9001", "http://127.0.0.1:9001/healthz"),
        ("[::]:9002", "http://[::1]:9002/healthz"),
        ("10.1.2.3:80", "http://10.1.2.3:80/healthz"),
    ],
)
def test_the_probe_asks_where_the_agent_listens(listen: str | None, url: str) -> None:
    environ = {} if listen is None else {"GITSWARM_LISTEN": listen}
    assert probe_url(environ) == url


@contextlib.contextmanager
def _server(status: int) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status if self.path == "/healthz" else 404
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_probe_passes_on_200_and_fails_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    with _server(200) as port:
        assert healthcheck({"GITSWARM_LISTEN": f"0.0.0.0:{port}"}) == 0
    with _server(503) as port:
        assert healthcheck({"GITSWARM_LISTEN": f"127.0.0.1:{port}"}) == 1
    assert capsys.readouterr().err == (
        f"healthcheck: http://127.0.0.1:{port}/healthz answered 503\n"
    )
    assert healthcheck({"GITSWARM_LISTEN": f"127.0.0.1:{port}"}, timeout=1) == 1  # closed
    assert "Connection refused" in capsys.readouterr().err
    assert healthcheck({"GITSWARM_LISTEN": "no-port"}) == 1
    assert capsys.readouterr().err == (
        "healthcheck: GITSWARM_LISTEN must be HOST:PORT, not 'no-port'\n"
    )


def test_the_probe_imports_only_the_standard_library() -> None:
    probe = (
        "import json, sys; import gitswarm.cli.healthcheck; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"fastapi", "sqlalchemy", "docker", "httpx", "click", "rich", "yaml"}


def test_both_builds_install_the_same_debian_packages() -> None:
    """What the Dockerfile's apt-get installs, the local build installs too (it adds
    Python itself, which the Dockerfile's python base image has)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (installed,) = re.findall(r"apt-get install -y -q --no-install-recommends ([^&]+)&&", text)
    script = (ROOT / "scripts/build-image").read_text()
    (listed,) = re.findall(r"^PACKAGES=(\S+)$", script, re.MULTILINE)
    assert set(listed.split(",")) == set(installed.split()) | {"python3", "python3-venv"}
    assert "libatomic1" in installed.split()  # regopy's native library needs it


def test_both_builds_check_that_the_agent_loads() -> None:
    """`gitswarm --version` alone imports too little: an image whose agent cannot start
    (a native library missing) must fail its build, not its first task."""
    for path in ("Dockerfile", "scripts/build-image"):
        text = (ROOT / path).read_text()
        assert "/opt/gitswarm/bin/gitswarm serve --help >/dev/null" in text, path
        assert 'python -c "import regopy; regopy.Interpreter()"' in text, path
