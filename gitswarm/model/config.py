"""The repository's settings as values: gitswarm.yml and applications/*.yml, parsed.

repo/ builds these from YAML (with file:line errors); every other layer only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gitswarm.model.order import apply_order
from gitswarm.model.position import Path, Position

ResolveImage = Literal["always", "changed", "never"]


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """Like Argo CD's syncPolicy. Defaults are the cautious ones."""

    automated: bool = True  # the agent applies new commits by itself
    prune: bool = False  # remove owned services that left Git
    self_heal: bool = False  # revert manual changes on the swarm
    auto_rollback: bool = False  # redeploy the last healthy revision when health fails
    health_timeout: float = 300.0  # seconds to wait for convergence
    resolve_image: ResolveImage = "changed"  # `docker stack deploy --resolve-image`
    keep_versions: int = 2  # old config/secret versions kept for rollback


@dataclass(frozen=True, slots=True)
class Target:
    """A Docker endpoint, by name.

    The repository only *names* a target (``environments.<env>.target``): a commit gets
    ``Target(name)`` and nothing else. Where the endpoint is and the credentials that
    reach it are the operator's (the agent config's ``targets:``, read by
    swarm/targets.py), because whoever can push must choose neither a host file to read
    nor a Docker engine to hand the environment's secrets to.

    ``url`` None means DOCKER_HOST or the default socket (the implicit ``local``).
    ``environments``: the environments that may deploy here (empty: any environment
    that no other target claims)."""

    name: str
    url: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    ssh_identity: str | None = None
    ssh_known_hosts: str | None = None
    ssh_socket: str = "/var/run/docker.sock"  # the engine's socket on the ssh host
    environments: tuple[str, ...] = ()

    @property
    def scheme(self) -> str:
        return (self.url or "unix://").split("://", 1)[0].lower()


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """Commits must be signed by a trusted key (checked by source/verify.py).

    ``keys`` and ``allowed_signers`` are paths of files on the agent's host, never key text
    and never files of the repository being verified (whoever can push could change
    those): absolute, ``~/...``, or relative to the agent's trusted-keys directory
    (``$GITSWARM_KEYS_DIR``). gpg: public key files, ASCII-armored or binary. ssh: public
    key files (``ssh-ed25519 AAAA... name`` lines) and/or an ssh-keygen allowed signers file.
    """

    mode: Literal["gpg", "ssh"]
    keys: tuple[str, ...] = ()  # paths of public key files (see above)
    allowed_signers: str | None = None  # ssh only: path of an allowed signers file


@dataclass(frozen=True, slots=True)
class SecretSettings:
    """``recipients``: the public age keys secrets of the environment are encrypted to.
    Which identity (private key) decrypts is never a setting of the repository: the
    operator puts it where source/keys.py looks (agent config, environment, keys dir)."""

    recipients: tuple[str, ...] = ()


def key_suffix(env: str) -> str:
    """The environment's part of the variables that hold its age identity
    (``GITSWARM_AGE_KEY_<suffix>``): upper case, ``-`` and ``.`` as ``_``. Two
    environments of one repository never share it (repo/config.py refuses that)."""
    return env.upper().replace("-", "_").replace(".", "_")


@dataclass(frozen=True, slots=True)
class Environment:
    name: str
    order: int  # position in the promotion order, 0 first
    target: Target
    path: str  # repo-relative folder, "environments/<name>"
    sync: SyncPolicy = field(default_factory=SyncPolicy)
    branch: str | None = None  # None: the repo's default branch
    verify: VerifySettings | None = None
    secrets: SecretSettings = field(default_factory=SecretSettings)
    # Sections owned by policy/ and the promotion code, kept as parsed mappings and validated there.
    policies: Mapping[str, Any] = field(default_factory=dict)
    promotion: Mapping[str, Any] = field(default_factory=dict)
    # Where the environment was declared, and the line/column of every node under it
    # (paths relative to the environment, e.g. ("policies", "no_latest_tag")), so that
    # the owners of ``policies``/``promotion`` can point at file:line.
    source: str = "gitswarm.yml"
    positions: Mapping[Path, Position] = field(default_factory=dict)

    @property
    def env_file(self) -> str:
        return f"{self.path}/.env"


@dataclass(frozen=True, slots=True)
class Application:
    """One Swarm stack per environment, rendered from ``files`` (``{env}`` substituted)."""

    name: str
    stack: str  # stack name template, e.g. "medianest-{env}"
    files: tuple[str, ...]
    environments: tuple[str, ...]  # where it is deployed, in promotion order
    sync: Mapping[str, SyncPolicy] = field(default_factory=dict)  # per environment
    source: str = "gitswarm.yml"  # the file that declared it
    # line/column of every node of its declaration, paths relative to it: ("files", 0)
    positions: Mapping[Path, Position] = field(default_factory=dict)
    # applications of the same environments applied (and converged) before this one
    depends_on: tuple[str, ...] = ()

    def stack_name(self, env: str) -> str:
        return self.stack.replace("{env}", env).replace("{app}", self.name)

    def files_for(self, env: str) -> tuple[str, ...]:
        return tuple(f.replace("{env}", env) for f in self.files)


@dataclass(frozen=True, slots=True)
class RepoConfig:
    project: str
    environments: tuple[Environment, ...]
    applications: tuple[Application, ...]
    targets: Mapping[str, Target] = field(default_factory=dict)
    # The applications by name, for the lookups every sync makes (application,
    # dependencies): a scan of a tuple of 1,000 apps per lookup, a few lookups per app,
    # made each sync O(apps) and a commit O(apps²) (bench/ issue 18).
    _by_name: Mapping[str, Application] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        by_name: dict[str, Application] = {}
        for app in self.applications:
            by_name.setdefault(app.name, app)  # the first of a name, as a scan finds it
        object.__setattr__(self, "_by_name", by_name)

    def environment(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.environments)
        raise KeyError(f"unknown environment {name!r} (known: {known})")

    def application(self, name: str) -> Application:
        app = self._by_name.get(name)
        if app is not None:
            return app
        known = ", ".join(a.name for a in self.applications)
        raise KeyError(f"unknown application {name!r} (known: {known})")

    def apps_for(self, env: str) -> tuple[Application, ...]:
        """The applications deployed to ``env``, in the order they are applied: each
        after the applications it ``depends_on`` (model/order.py), otherwise in the
        order they are declared."""
        apps = tuple(a for a in self.applications if env in a.environments)
        if not any(a.depends_on for a in apps):
            return apps
        by_name = {a.name: a for a in apps}
        graph = {a.name: a.depends_on for a in apps}
        return tuple(by_name[n] for n in apply_order(list(by_name), graph))

    def dependencies(self, app: str, env: str) -> tuple[str, ...]:
        """What ``app`` waits for in ``env``: the applications it depends on (directly)
        that are deployed there (repo/depends.py makes that all of them); none if ``app``
        is not deployed to ``env``."""
        own = self._by_name.get(app)
        if own is None or env not in own.environments:
            return ()
        return tuple(
            d
            for d in own.depends_on
            if (dep := self._by_name.get(d)) is not None and env in dep.environments
        )

    def sync_policy(self, app: Application, env: Environment) -> SyncPolicy:
        return app.sync.get(env.name, env.sync)
