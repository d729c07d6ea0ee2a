"""The operator's targets: where each Docker endpoint is and how to reach it (I/O edge).

A commit only *names* a target (gitswarm.yml ``environments.<env>.target``). The endpoint
and its credentials come from the agent config (``gitswarm serve --config FILE``; the CLI
reads the same file from ``--config`` or ``$GITSWARM_CONFIG``, cli/operator.py)::

    targets:
      local: {}                            # DOCKER_HOST or the default socket (implicit)
      staging: {url: "unix:///run/staging-docker.sock", environments: [staging]}
      production:
        url: tcp://10.0.0.5:2376            # TLS always: the engine's certificate is
        tls:                                # checked against ca, and cert/key are ours
          ca: /etc/gitswarm/tls/production/ca.pem
          cert: /etc/gitswarm/tls/production/cert.pem
          key: /etc/gitswarm/tls/production/key.pem
        environments: [production]          # only production deploys here, and
      edge:                                 # production deploys nowhere else
        url: ssh://deploy@edge-manager:22
        ssh:
          identity: /etc/gitswarm/ssh/id_ed25519
          known_hosts: /etc/gitswarm/ssh/known_hosts   # the host key is checked, strictly
          socket: /var/run/docker.sock       # the engine's socket there (the default)
        environments: [edge]

Why the repository cannot say any of this: a ``url`` chosen by whoever can push would
send the environment's decrypted secrets to an engine of theirs, and TLS or ssh file
paths would make the agent read any file of its host. ``environments:`` pins them both
ways: a target that lists environments takes no other, and an environment listed by a
target deploys to no other, so a commit cannot point development at production's swarm
(nor production at development's). ``check`` says what a commit may not do;
reconcile/sync.py refuses such a commit before anything is rendered or applied.

Relative file paths are read from ``$GITSWARM_KEYS_DIR`` (like ``identities:`` and
``verify:``). Each file must be a regular file of at most 64 KiB when the config is
loaded, so a wrong path stops the agent at start, not at the first sync.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitswarm.errors import ConfigError, Reason
from gitswarm.model.config import Target

LOCAL = "local"
MAX_CREDENTIAL_BYTES = 64 * 1024
RULE_TARGET = "target-pin"
TARGET_REFUSED = Reason.TARGET_NOT_ALLOWED

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?$")
_URL = re.compile(r"^(unix|tcp|ssh)://\S+$")
_SSH_URL = re.compile(
    r"^ssh://(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>\d{1,5}))?/?$"
)
_KEYS = ("url", "tls", "ssh", "environments")
_TLS_KEYS = ("ca", "cert", "key")
_SSH_KEYS = ("identity", "known_hosts", "socket")


@dataclass(frozen=True)
class TargetTable:
    """Every target the operator defined, by name; ``local`` is always there.

    ``source`` names where they came from, for messages ("/etc/gitswarm/agent.yml")."""

    targets: Mapping[str, Target] = field(default_factory=lambda: {LOCAL: Target(LOCAL)})
    source: str = "the agent config"

    def __post_init__(self) -> None:
        if LOCAL not in self.targets:
            object.__setattr__(self, "targets", {LOCAL: Target(LOCAL), **self.targets})

    def endpoint(self, target: Target | str) -> Target:
        """The operator's definition of the target a commit names. A SwarmError-free
        ConfigError when there is none (``check`` says so first, with the environment)."""
        name = target if isinstance(target, str) else target.name
        found = self.targets.get(name)
        if found is None:
            raise ConfigError(self._unknown(name), reason=TARGET_REFUSED)
        return found

    def pinned(self, env: str) -> Target | None:
        """The target that lists ``env`` among its environments, if one does."""
        for target in self.targets.values():
            if env in target.environments:
                return target
        return None

    def check(self, env: str, target: str) -> str | None:
        """Why environment ``env`` may not deploy to target ``target``, or None."""
        if target not in self.targets:
            return f"environment {env!r}: {self._unknown(target)}"
        pinned = self.pinned(env)
        if pinned is not None and pinned.name != target:
            return (
                f"environment {env!r} names target {target!r}, but {self.source} pins it to "
                f"target {pinned.name!r} (targets.{pinned.name}.environments): a commit "
                f"cannot move an environment to another swarm. Set `target: {pinned.name}` "
                "in gitswarm.yml, or change the pin in the agent config"
            )
        allowed = self.targets[target].environments
        if allowed and env not in allowed:
            return (
                f"environment {env!r} names target {target!r}, which takes only "
                f"{', '.join(allowed)} (targets.{target}.environments in {self.source}): a "
                "commit cannot send one environment's stacks and secrets to another's swarm. "
                "Use the environment's own target, or add it to that list in the agent config"
            )
        return None

    def _unknown(self, name: str) -> str:
        known = ", ".join(sorted(self.targets))
        return (
            f"target {name!r} is not defined in {self.source} (defined: {known}); where a "
            "target is and how to reach it is the operator's: add `targets: "
            f"{{{name}: {{url: ...}}}}` to the agent config (gitswarm serve --config FILE, "
            "or --config / $GITSWARM_CONFIG for the CLI; see README, 'Targets')"
        )


def _check_file(text: Any, at: str, what: str, root: Path) -> str:
    """``text`` as the path of a readable regular file (bounded), else ConfigError."""
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{at} must be the path of the {what} file")
    path = Path(text).expanduser()
    path = path if path.is_absolute() else root / path
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(
            f"{at}: the {what} file {text!r} cannot be read ({exc.strerror}; looked at {path}; "
            f"relative paths are read from $GITSWARM_KEYS_DIR, {root})"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{at}: {path} is not a regular file; give the {what} file itself")
    if info.st_size > MAX_CREDENTIAL_BYTES:
        raise ConfigError(
            f"{at}: {path} is larger than {MAX_CREDENTIAL_BYTES} bytes; is it the {what} file?"
        )
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{at}: {path} is not readable by this user")
    return str(path)


def _mapping(value: Any, at: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{at} must be a mapping with {', '.join(keys)}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ConfigError(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(keys)})")
    return value


def parse_targets(
    value: Any,
    where: str,
    *,
    keys_dir: Path,
    lines: Mapping[str, int] | None = None,
    path: Path | None = None,
) -> TargetTable:
    """The agent config's ``targets:`` (see the module docstring), every file checked.
    ``where`` is the setting's origin ("agent.yml:12"); ``lines`` the line of each target."""
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: targets must map target names to {{url: ..., tls: {{...}}, ssh: {{...}}, "
            "environments: [...]}"
        )
    targets: dict[str, Target] = {}
    claimed: dict[str, str] = {}
    for name, spec in value.items():
        line = (lines or {}).get(str(name))
        at = f"{path}:{line}: targets.{name}" if path and line else f"{where}: targets.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"{at}: target name {name!r} is not valid: use 1-40 lower-case letters, digits, "
                "'-' and '_', starting and ending with a letter or digit"
            )
        spec = _mapping(spec, at, _KEYS)
        url = spec.get("url")
        if url is not None and (not isinstance(url, str) or not _URL.match(url)):
            raise ConfigError(
                f"{at}.url: {url!r} is not unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]"
            )
        if url is None and name != LOCAL and (spec.get("tls") or spec.get("ssh")):
            raise ConfigError(f"{at}: tls/ssh settings need a url (tcp:// or ssh://)")
        scheme = url.split("://", 1)[0] if url else "unix"
        tls = _mapping(spec.get("tls"), f"{at}.tls", _TLS_KEYS)
        ssh = _mapping(spec.get("ssh"), f"{at}.ssh", _SSH_KEYS)
        if scheme == "tcp":
            missing = [k for k in _TLS_KEYS if not tls.get(k)]
            if missing:
                raise ConfigError(
                    f"{at}: a tcp:// target needs tls: {{ca, cert, key}} (missing: "
                    f"{', '.join(missing)}): without TLS every secret value would cross the "
                    "network in clear text, and anyone on the path could deploy. ca is the CA "
                    "that signed the engine's certificate (dockerd --tlscert); cert and key are "
                    "the client certificate the engine trusts (dockerd --tlsverify --tlscacert)"
                )
        elif tls:
            raise ConfigError(f"{at}.tls: TLS settings are for tcp:// targets only")
        if scheme == "ssh":
            if _SSH_URL.match(url or "") is None:
                raise ConfigError(
                    f"{at}.url: {url!r} is not ssh://[USER@]HOST[:PORT] (no path, no options)"
                )
            missing = [k for k in ("identity", "known_hosts") if not ssh.get(k)]
            if missing:
                raise ConfigError(
                    f"{at}: an ssh:// target needs ssh: {{identity, known_hosts}} (missing: "
                    f"{', '.join(missing)}): gitswarm logs in with that key only and checks "
                    "the host's key against that file, strictly (never ~/.ssh)"
                )
        elif ssh:
            raise ConfigError(f"{at}.ssh: ssh settings are for ssh:// targets only")
        socket_path = ssh.get("socket", "/var/run/docker.sock")
        if not isinstance(socket_path, str) or not socket_path.startswith("/"):
            raise ConfigError(f"{at}.ssh.socket must be an absolute path on the ssh host")
        envs = spec.get("environments", [])
        if not isinstance(envs, list) or not all(isinstance(e, str) and e for e in envs):
            raise ConfigError(f"{at}.environments must be a list of environment names")
        for env in envs:
            if env in claimed and claimed[env] != name:
                raise ConfigError(
                    f"{at}.environments: environment {env!r} is already pinned to target "
                    f"{claimed[env]!r}; an environment deploys to one target"
                )
            claimed[env] = name
        same = next((t for t in targets.values() if _same_endpoint(t.url, url)), None)
        if same is not None:
            shown = url or "the default socket"
            raise ConfigError(
                f"{at}.url: target {same.name!r} already points at {shown}; give each swarm "
                "one name (under a second name, two environments' stacks of the same name "
                "would replace each other's services)"
            )
        targets[name] = Target(
            name=name,
            url=url,
            tls_ca=_check_file(tls["ca"], f"{at}.tls.ca", "CA certificate", keys_dir)
            if tls
            else None,
            tls_cert=_check_file(tls["cert"], f"{at}.tls.cert", "client certificate", keys_dir)
            if tls
            else None,
            tls_key=_check_file(tls["key"], f"{at}.tls.key", "client key", keys_dir)
            if tls
            else None,
            ssh_identity=_check_file(ssh["identity"], f"{at}.ssh.identity", "ssh key", keys_dir)
            if ssh.get("identity")
            else None,
            ssh_known_hosts=_check_file(
                ssh["known_hosts"], f"{at}.ssh.known_hosts", "known_hosts", keys_dir
            )
            if ssh.get("known_hosts")
            else None,
            ssh_socket=socket_path,
            environments=tuple(envs),
        )
    return TargetTable(targets, source=str(path) if path else where)


def _same_endpoint(one: str | None, other: str | None) -> bool:
    def norm(url: str | None) -> str:
        return (
            (url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
            .rstrip("/")
            .lower()
        )

    return norm(one) == norm(other)


def ssh_parts(url: str) -> tuple[str | None, str, str | None]:
    """(user, host, port) of an ``ssh://`` url checked by parse_targets."""
    match = _SSH_URL.match(url)
    if match is None:
        raise ConfigError(f"{url!r} is not ssh://[USER@]HOST[:PORT]")
    return match["user"], match["host"].strip("[]"), match["port"]


__all__ = ["LOCAL", "TARGET_REFUSED", "TargetTable", "parse_targets", "ssh_parts"]
