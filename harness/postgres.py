"""A private, throwaway PostgreSQL cluster for tests and benchmarks of the state store.

``start()`` runs ``initdb`` into a fresh directory under ``/tmp`` and starts ``postgres``
on a unix socket in that same (short) directory, with TCP switched off, so it can clash
with no other server on the machine and touches none. ``stop()`` shuts it down and
removes the directory. The server binaries come from Debian's ``postgresql`` package
(``scripts/bootstrap`` installs it); ``$GITSWARM_PG_BINDIR`` points elsewhere.

``initdb`` refuses to run as root, so when we are root the cluster runs as the
unprivileged ``postgres`` user (created by the Debian package). Durability is switched
off (``fsync=off``): the cluster lives for one test session.

Each cluster leaves ``owner.pid`` (the pid of the process that started it) in its
directory; ``reap_stale()``, called by ``start()``, stops clusters whose owner is gone
(a test run killed with SIGKILL), so a later run starts clean.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT_PREFIX = "gitswarm-pg-"
TMP = Path("/tmp")  # short on purpose: a unix socket path must stay under 108 bytes
PORT = 5432  # names the socket file only: TCP is off
SUPERUSER = "postgres"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresHarnessError(RuntimeError):
    pass


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``; a clear error when there is none."""
    env = os.environ.get("GITSWARM_PG_BINDIR")
    candidates = [Path(env)] if env else []
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    looked = ", ".join(str(c) for c in candidates) or "/usr/lib/postgresql/*/bin, PATH"
    raise PostgresHarnessError(
        "PostgreSQL server binaries (initdb, postgres) not found "
        f"(looked in: {looked}). Install them with ./scripts/bootstrap "
        "(Debian package 'postgresql') or set GITSWARM_PG_BINDIR."
    )


def _run_as() -> str | None:
    """The OS user the server runs as: ourselves, or ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresHarnessError(
            "running as root, and initdb refuses root: need the unprivileged 'postgres' "
            "user (the Debian package 'postgresql' creates it)"
        ) from None
    return "postgres"


@dataclass
class PrivatePostgres:
    root: Path
    bindir: Path
    user: str | None  # OS user the server runs as; None: the current user
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres", schema: str | None = None) -> str:
        """A SQLAlchemy URL (psycopg 3) for ``database`` over the unix socket; with
        ``schema``, connections put it first on their ``search_path``."""
        url = f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.root}&port={PORT}"
        if schema is not None:
            url += f"&options=-csearch_path%3D{schema}"
        return url

    def _cmd(self, name: str, *args: str, timeout: float = 60.0) -> str:
        proc = subprocess.run(
            [str(self.bindir / name), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
            user=self.user,
        )
        if proc.returncode != 0:
            raise PostgresHarnessError(
                f"{name} {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc.stdout

    def _prepare(self) -> None:
        (self.root / "owner.pid").write_text(f"{os.getpid()}\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        self._cmd(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )

    def start(self, *, timeout: float = 60.0) -> PrivatePostgres:
        self._prepare()
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(self.root),
            "port": str(PORT),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                user=self.user,
                start_new_session=True,  # a Ctrl-C of the test run reaches us, not it
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PostgresHarnessError(
                    f"postgres exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", str(self.root), "-p", str(PORT)],
                check=False,
                timeout=10,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PostgresHarnessError(
                    f"postgres not ready after {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one SQL statement with psql as the superuser; its output."""
        return self._cmd(
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.root),
            "-p",
            str(PORT),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-At",
            "-c",
            statement,
        )

    def create_database(self, name: str) -> str:
        """Create an empty database; its URL."""
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def create_schema(self, name: str, database: str = "postgres") -> str:
        """Create an empty schema in ``database``; the URL of a connection working in it.
        Much cheaper than a database (CREATE DATABASE copies a template: ~0.3 s)."""
        if not _NAME.match(name):
            raise ValueError(f"not a plain schema name: {name!r}")
        self.sql(f"CREATE SCHEMA {name}", database)
        return self.url(database, schema=name)

    def drop_schema(self, name: str, database: str = "postgres") -> None:
        if not _NAME.match(name):
            raise ValueError(f"not a plain schema name: {name!r}")
        self.sql(f"DROP SCHEMA IF EXISTS {name} CASCADE", database)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if that hangs; then remove every file."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start(*, timeout: float = 60.0) -> PrivatePostgres:
    """A new private cluster, started and ready. The caller must ``stop()`` it."""
    bindir = find_bindir()
    user = _run_as()
    reap_stale()
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=TMP))
    server = PrivatePostgres(root=root, bindir=bindir, user=user)
    try:
        return server.start(timeout=timeout)
    except BaseException:
        server.stop()
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_int(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def reap_stale() -> list[Path]:
    """Stop and remove clusters whose owning process is gone; the roots removed."""
    reaped: list[Path] = []
    for root in TMP.glob(f"{ROOT_PREFIX}*"):
        owner = _read_int(root / "owner.pid")
        if owner is None or _pid_alive(owner):
            continue  # not ours to judge (still starting, or alive)
        postmaster = _read_int(root / "data" / "postmaster.pid")
        if postmaster is not None and _pid_alive(postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGQUIT)  # immediate shutdown, children too
            deadline = time.monotonic() + 10
            while _pid_alive(postmaster) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
        reaped.append(root)
    return reaped
