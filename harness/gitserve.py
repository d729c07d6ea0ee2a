"""Real Git remotes for tests: bare repositories served on loopback, and working clones.

``GitServer(root)`` serves every bare repository under ``root/repos`` two ways, both with
push enabled:

- ``git daemon`` (``git://127.0.0.1:<port>/<name>.git``), a process of its own;
- ``git http-backend`` (smart HTTP, ``http://127.0.0.1:<port>/<name>.git``) behind a small
  HTTP server running in a thread of this process.

``GitServer.daemon_in_netns(netns, host)`` serves the same repositories read-only inside a
private engine's network namespace, for containers of that engine (the agent image's
test): they reach it at the engine's docker_gwbridge gateway address.

``stop()`` takes both down (connections are refused: "the remote is down"), ``start()``
brings them back on the same ports, so URLs stay valid. ``GitRemote`` is one bare
repository with its ``file://``, ``git://`` and ``http://`` URLs; ``WorkingCopy`` is a clone
to write files in, commit (author, committer and dates chosen by the test) and push.

Every ``git`` runs with a private configuration (``git_env``): the machine's and the
user's ``.gitconfig`` do not leak in. Used by the ``git_remote`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.system import (
    HarnessError,
    free_port,
    in_netns,
    journal,
    owned_env,
    run,
    stop_group,
    wait_port,
)

HOST = "127.0.0.1"
DEFAULT_BRANCH = "main"
DEFAULT_AUTHOR = "Ada Author <ada@example.com>"

GITCONFIG = f"""\
[user]
\tname = gitswarm tests
\temail = tests@gitswarm.invalid
[init]
\tdefaultBranch = {DEFAULT_BRANCH}
[advice]
\tdetachedHead = false
[commit]
\tgpgsign = false
[tag]
\tgpgsign = false
[http]
\treceivepack = true
"""


def git_env(config_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for ``git`` with only our configuration (written on first use)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    config = config_dir / "gitconfig"
    if not config.exists():
        config.write_text(GITCONFIG)
    env = dict(os.environ if base is None else base)
    for key in [k for k in env if k.startswith("GIT_")]:
        del env[key]
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(config),
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


def _git(args: list[str], env: Mapping[str, str], *, cwd: Path | None = None) -> str:
    cmd = ["git", *(["-C", str(cwd)] if cwd else []), *args]
    return run(cmd, env=env).strip()


def make_bare(path: Path, env: Mapping[str, str], *, branch: str = DEFAULT_BRANCH) -> Path:
    """An empty bare repository at ``path`` whose HEAD is ``branch``."""
    _git(["init", "--quiet", "--bare", f"--initial-branch={branch}", str(path)], env)
    return path


def _identity(who: str) -> tuple[str, str]:
    name, sep, rest = who.partition("<")
    if not sep or not rest.endswith(">"):
        raise ValueError(f"expected 'Name <email>', got {who!r}")
    return name.strip(), rest[:-1].strip()


def _date(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass
class WorkingCopy:
    """A clone to change and push. Paths are relative to the clone's top folder."""

    path: Path
    env: dict[str, str] = field(repr=False)

    def git(self, *args: str) -> str:
        return _git(list(args), self.env, cwd=self.path)

    def write(self, relpath: str, content: str | bytes) -> Path:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        return target

    def write_files(self, files: Mapping[str, str | bytes]) -> None:
        for relpath, content in files.items():
            self.write(relpath, content)

    def remove(self, relpath: str) -> None:
        target = self.path / relpath
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    def commit(
        self,
        message: str,
        *,
        files: Mapping[str, str | bytes] | None = None,
        author: str = DEFAULT_AUTHOR,
        date: datetime | str | None = None,
        committer: str | None = None,
        committer_date: datetime | str | None = None,
        allow_empty: bool = False,
    ) -> str:
        """Write ``files``, stage every change and commit; returns the new commit's SHA.

        ``author``/``committer`` are ``"Name <email>"``; dates are datetimes or anything
        git accepts. The committer defaults to the author, its date to the author date.
        """
        if files:
            self.write_files(files)
        self.git("add", "--all")
        env = dict(self.env)
        env["GIT_AUTHOR_NAME"], env["GIT_AUTHOR_EMAIL"] = _identity(author)
        env["GIT_COMMITTER_NAME"], env["GIT_COMMITTER_EMAIL"] = _identity(committer or author)
        if date is not None:
            env["GIT_AUTHOR_DATE"] = _date(date)
        cdate = committer_date if committer_date is not None else date
        if cdate is not None:
            env["GIT_COMMITTER_DATE"] = _date(cdate)
        args = ["commit", "--quiet", "--no-verify", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        _git(args, env, cwd=self.path)
        return self.head()

    def push(self, *refspecs: str, remote: str = "origin", force: bool = False) -> None:
        """Push (default: the current branch to its namesake on ``remote``)."""
        args = ["push", "--quiet", *(["--force"] if force else []), remote]
        self.git(*args, *(refspecs or ("HEAD",)))

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


class _GitHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], repos: Path, env: Mapping[str, str]) -> None:
        super().__init__(address, _GitHTTPHandler)
        self.repos = repos
        self.git_env = dict(env)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up mid-answer is no error of the server's."""


class _GitHTTPHandler(BaseHTTPRequestHandler):
    """Smart HTTP: each request runs ``git http-backend`` as a CGI program."""

    server: _GitHTTPServer

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test output is no place for an access log."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body()
        env = dict(self.server.git_env)
        env.update(
            GIT_PROJECT_ROOT=str(self.server.repos),
            GIT_HTTP_EXPORT_ALL="1",
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL=self.request_version,
            REQUEST_METHOD=self.command,
            PATH_INFO=urllib.parse.unquote(path),
            QUERY_STRING=query,
            CONTENT_TYPE=self.headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(len(body)),
            REMOTE_ADDR=self.client_address[0],
            REMOTE_USER="gitswarm-tests",  # http-backend allows push to known users only
        )
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"):
                env[key] = value
        proc = subprocess.run(
            ["git", "http-backend"], input=body, capture_output=True, env=env, timeout=120
        )
        head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = proc.stdout.partition(b"\n\n")
        if proc.returncode != 0 and not sep:
            self.send_error(500, proc.stderr.decode(errors="replace")[:200])
            return
        status, headers = 200, []
        for line in head.decode(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@dataclass
class GitServer:
    """``git daemon`` and smart HTTP for every bare repository under ``root/repos``."""

    root: Path
    owner: int = field(default_factory=os.getpid)
    git_port: int = 0
    http_port: int = 0
    daemon: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    http: _GitHTTPServer | None = field(default=None, repr=False)
    http_thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def repos(self) -> Path:
        return self.root / "repos"

    @property
    def env(self) -> dict[str, str]:
        return git_env(self.root)

    @property
    def running(self) -> bool:
        return self.http is not None or (self.daemon is not None and self.daemon.poll() is None)

    def start(self) -> GitServer:
        if self.running:
            return self
        self.repos.mkdir(parents=True, exist_ok=True)
        self.git_port = self.git_port or free_port(HOST)
        self.http_port = self.http_port or free_port(HOST)
        journal(self.owner, "git", str(self.root), markers=[f"{self.root}/"])
        log = (self.root / "git-daemon.log").open("ab")
        self.daemon = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
                f"--base-path={self.repos}",
                f"--listen={HOST}",
                f"--port={self.git_port}",
                f"--pid-file={self.root / 'git-daemon.pid'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=owned_env(self.owner, self.env),
        )
        log.close()
        self.http = _GitHTTPServer(
            (HOST, self.http_port), self.repos, owned_env(self.owner, self.env)
        )
        self.http_thread = threading.Thread(
            target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.http_thread.start()
        if not wait_port(HOST, self.git_port):
            self.stop()
            raise HarnessError(f"git daemon did not listen on {HOST}:{self.git_port}")
        return self

    def stop(self) -> None:
        """Both servers down; their ports refuse connections until ``start()``."""
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None
        if self.http_thread is not None:
            self.http_thread.join(timeout=10)
            self.http_thread = None
        if self.daemon is not None:
            # git daemon forks a child per connection: end its whole process group.
            stop_group(self.daemon.pid, grace=5.0)
            self.daemon.wait(timeout=10)
            self.daemon = None

    def daemon_in_netns(self, netns: str, host: str) -> NetnsGitDaemon:
        """A read-only ``git daemon`` for this server's repositories on ``host`` inside the
        network namespace ``netns``; ``stop()`` it (``stop()`` of the server does not)."""
        return NetnsGitDaemon(self, netns, host).start()

    def remote(self, name: str, *, branch: str = DEFAULT_BRANCH) -> GitRemote:
        """A new, empty bare repository ``<name>.git`` on this server."""
        remote = GitRemote(self, name)
        if remote.path.exists():
            raise HarnessError(f"repository {remote.path} exists already")
        make_bare(remote.path, self.env, branch=branch)
        return remote


@dataclass
class NetnsGitDaemon:
    """``git daemon`` (fetch only) inside a network namespace, on ``host``:``port``."""

    server: GitServer
    netns: str
    host: str
    port: int = 9418
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, remote: GitRemote) -> str:
        return f"git://{self.host}:{self.port}/{remote.name}.git"

    def start(self) -> NetnsGitDaemon:
        # Journalled with the server's marker: its command line names the repos folder.
        journal(self.server.owner, "git", f"{self.server.root} in {self.netns}",
                markers=[f"{self.server.root}/"])  # fmt: skip
        log = (self.server.root / f"git-daemon-{self.netns}.log").open("ab")
        self.process = subprocess.Popen(
            in_netns(
                self.netns,
                [
                    "git",
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--informative-errors",
                    f"--base-path={self.server.repos}",
                    f"--listen={self.host}",
                    f"--port={self.port}",
                ],
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=owned_env(self.server.owner, self.server.env),
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                in_netns(self.netns, ["git", "ls-remote", f"git://{self.host}:{self.port}/"]),
                capture_output=True,
                env=self.server.env,
                check=False,
                timeout=10,
            )
            if b"Connection refused" not in probe.stderr:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise HarnessError(f"git daemon in {self.netns} did not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid, grace=5.0)
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class GitRemote:
    """One bare repository on a ``GitServer``: its URLs, clones and server switch."""

    server: GitServer
    name: str
    clones: int = 0

    @property
    def path(self) -> Path:
        return self.server.repos / f"{self.name}.git"

    @property
    def file_url(self) -> str:
        return self.path.as_uri()

    @property
    def git_url(self) -> str:
        return f"git://{HOST}:{self.server.git_port}/{self.name}.git"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.server.http_port}/{self.name}.git"

    @property
    def url(self) -> str:
        """The served URL most users have: smart HTTP."""
        return self.http_url

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def clone(self, dest: Path | None = None, *, url: str | None = None) -> WorkingCopy:
        """A working clone (default: of the HTTP URL, next to the server's repositories)."""
        if dest is None:
            self.clones += 1
            dest = self.server.root / "clones" / f"{self.name}-{self.clones}"
        _git(["clone", "--quiet", url or self.url, str(dest)], self.env)
        wc = WorkingCopy(dest, self.env)
        if subprocess.run(
            ["git", "-C", str(dest), "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            env=self.env,
            check=False,
        ).returncode:
            wc.git("symbolic-ref", "HEAD", f"refs/heads/{DEFAULT_BRANCH}")  # an empty remote
        return wc

    def seed(
        self,
        files: Mapping[str, str | bytes],
        message: str = "initial",
        *,
        author: str = DEFAULT_AUTHOR,
        date: datetime | str | None = None,
    ) -> str:
        """Commit ``files`` and push them over ``file://``; returns the commit's SHA."""
        wc = self.clone(url=self.file_url)
        sha = wc.commit(message, files=files, author=author, date=date)
        wc.push()
        return sha

    def ls_remote(self, url: str | None = None) -> dict[str, str]:
        """``git ls-remote``: ref name → SHA. Raises ``HarnessError`` when unreachable."""
        out = _git(["ls-remote", url or self.url], self.env)
        refs = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            refs[ref] = sha
        return refs

    def head(self, branch: str = DEFAULT_BRANCH) -> str:
        """The SHA of ``branch`` in the bare repository itself (no server involved)."""
        return _git(["rev-parse", f"refs/heads/{branch}"], self.env, cwd=self.path)
