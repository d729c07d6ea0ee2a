"""Compose files in the shapes of public Swarm stacks, written once per Compose version.

Swarm guides and public stack repositories mostly pin an old ``version:``; each shape
here uses what its version allows, the way such files are written:

- a Traefik-style proxy on an external overlay network created beforehand
  (``docker network create -d overlay public``), with deploy labels, a manager
  placement constraint and a published port (long syntax and ``mode: host`` from 3.2);
- a Prometheus-style monitoring service with its configuration as a ``file:`` config
  (configs exist from 3.3) on an internal overlay network;
- a database on an external volume (``docker volume create``), with its password as a
  ``file:`` secret (secrets exist from 3.1) read through ``*_FILE``.

The external names are written in each version's own form: the key itself
(``external: true``), ``external: {name: ...}`` (before names existed), or
``name:`` with ``external: true`` (volumes from 3.4, networks from 3.5).

Used by test_render_parity.py (against ``docker stack config`` and the deploy loader)
and test_compose_versions.py (synced on the real swarm). The healthchecks look for the
mounted config, secret and volume, so a service is healthy only if they were deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSIONS = ("3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9")

PROMETHEUS_YML = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: swarm\n"
DB_PASSWORD = "s3cret-db-password"


def _at_least(version: str, other: str) -> bool:
    return tuple(int(x) for x in version.split(".")) >= tuple(int(x) for x in other.split("."))


@dataclass(frozen=True)
class PublicStack:
    """One version's repository files (path -> text) and its secret's path."""

    version: str
    compose: list[str]  # base, overlay: in -c order
    files: dict[str, str]
    secret_path: str | None  # an age-encrypted DB_PASSWORD goes here

    def deploys_as(self) -> str:
        """The ``version`` gitswarm's deployable file must carry: ``name:`` on networks,
        configs and secrets needs 3.5, and every shape has its external network."""
        return self.version if _at_least(self.version, "3.5") else "3.5"


def _healthcheck(checks: list[str], version: str) -> str:
    probe = " && ".join([*checks, "wget -q --spider http://127.0.0.1:4000/health"])
    lines = [
        "    healthcheck:",
        f"      test: [CMD, sh, -c, '{probe}']",
        "      interval: 1s",
        "      timeout: 3s",
        "      retries: 3",
    ]
    if _at_least(version, "3.4"):
        lines.append("      start_period: 1s")
    return "\n".join(lines) + "\n"


def _external(kind: str, key: str, real: str, version: str) -> str:
    """An external network or volume in the form a file of ``version`` would use."""
    named_from = "3.4" if kind == "volumes" else "3.5"
    if _at_least(version, named_from):
        return f"  {key}:\n    name: {real}\n    external: true\n"
    if key == real:
        return f"  {key}:\n    external: true\n"
    return f"  {key}:\n    external:\n      name: {real}\n"


def public_stack(
    version: str, *, image: str, network: str, volume: str, env: str, port: int | None
) -> PublicStack:
    """The three shapes in one stack of Compose ``version``, deployed to ``env``.

    ``network`` and ``volume`` name the external objects (under 3.0 they are referred
    to by their own names, as the key). ``port`` is the proxy's published port (host
    mode from 3.2; an ingress port before), None for none."""
    secrets = _at_least(version, "3.1")
    long_syntax = _at_least(version, "3.2")
    configs = _at_least(version, "3.3")
    net_key = network if version == "3.0" else "public"
    vol_key = volume if version == "3.0" else "dbdata"
    head = f'version: "{version}"\n'

    proxy = (
        "  proxy:\n"
        f"    image: {image}\n"
        "    stop_grace_period: 1s\n"
        f"    networks:\n      - {net_key}\n"
    )
    if port is not None and long_syntax:
        proxy += (
            "    ports:\n"
            f"      - target: 4000\n        published: {port}\n"
            "        protocol: tcp\n        mode: host\n"
        )
    elif port is not None:
        proxy += f'    ports:\n      - "{port}:4000"\n'
    proxy += (
        "    deploy:\n"
        "      replicas: 1\n"
        "      placement:\n        constraints: [node.role == manager]\n"
        "      labels:\n"
        f"        traefik.docker.network: {network}\n"
        "        traefik.frontend.rule: Host:proxy.example.com\n"
        "        traefik.port: '4000'\n"
    )
    if long_syntax:
        proxy += "      endpoint_mode: dnsrr\n"
    proxy += _healthcheck([], version)

    monitoring = (
        "  prometheus:\n"
        f"    image: {image}\n"
        "    stop_grace_period: 1s\n"
        f"    networks: [monitoring, {net_key}]\n"
        "    deploy:\n      replicas: 1\n"
    )
    checks = []
    if configs:
        monitoring += (
            "    configs:\n"
            "      - source: prometheus_config\n"
            "        target: /etc/prometheus/prometheus.yml\n"
        )
        checks.append("test -s /etc/prometheus/prometheus.yml")
    monitoring += _healthcheck(checks, version)

    database = (
        "  db:\n"
        f"    image: {image}\n"
        "    stop_grace_period: 1s\n"
        "    networks: [monitoring]\n"
        "    environment:\n"
        "      POSTGRES_DB: app\n"
        "      POSTGRES_USER: ${DB_USER}\n"
    )
    checks = ["test -d /var/lib/postgresql/data"]
    if secrets:
        database += "      POSTGRES_PASSWORD_FILE: /run/secrets/db_password\n"
        database += "    secrets:\n      - db_password\n"
        checks.append("test -s /run/secrets/db_password")
    if long_syntax:
        database += (
            f"    volumes:\n      - type: volume\n        source: {vol_key}\n"
            "        target: /var/lib/postgresql/data\n"
        )
    else:
        database += f"    volumes:\n      - {vol_key}:/var/lib/postgresql/data\n"
    database += "    deploy:\n      replicas: 1\n"
    database += _healthcheck(checks, version)

    tail = "networks:\n" + _external("networks", net_key, network, version)
    tail += "  monitoring:\n    driver: overlay\n"
    if long_syntax:
        tail += "    attachable: true\n"
    tail += "volumes:\n" + _external("volumes", vol_key, volume, version)
    files: dict[str, str] = {}
    secret_path = None
    if secrets:
        secret_path = f"environments/{env}/secrets/db_password.age"
        tail += f"secrets:\n  db_password:\n    file: ../{secret_path}\n"
    if configs:
        files["base/prometheus.yml"] = PROMETHEUS_YML
        tail += "configs:\n  prometheus_config:\n    file: ./prometheus.yml\n"
    overlay_path = f"environments/{env}/docker-compose.yml"
    files["base/docker-compose.yml"] = head + "services:\n" + proxy + monitoring + database + tail
    files[overlay_path] = (
        head + "services:\n"
        "  prometheus:\n    environment:\n      RETENTION: 15d\n"
        "  db:\n    deploy:\n      labels:\n        backup: nightly\n"
    )
    return PublicStack(
        version=version,
        compose=["base/docker-compose.yml", overlay_path],
        files=files,
        secret_path=secret_path,
    )
