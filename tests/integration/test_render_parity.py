"""Parity: gitswarm's render equals the real ``docker stack config`` (Docker CLI 28), case
by case, modulo what gitswarm adds on purpose: its own service labels, and configs and
secrets declared ``external`` under content-addressed names instead of ``file:``.

Each case is a small repository: compose files, the environment's ``.env``, config and
secret files. The CLI runs on the files with exactly the variables gitswarm uses in its
process environment (``docker stack config`` reads nothing else); gitswarm renders the
same files through a WorkTree. A second check feeds gitswarm's deployable YAML back to
the CLI: it must read exactly the values gitswarm meant (``$`` escaped once), and load in
``docker stack deploy`` itself (its loader runs before it connects to any engine, so a
deploy to a socket that does not exist shows whether the file loads).

gitswarm's one deliberate difference in the document itself: ``version``. The CLI keeps
the first file's while adding ``name:`` and long forms that 3.0-3.4 schemas refuse, and
prints unversioned files as 3.13, which older CLIs refuse; gitswarm writes the lowest
version, not below the author's, whose schema accepts the result (``deploys_as`` where a
case names it). The read-back test asks the CLI itself that it is the lowest: the same
file one version lower does not load. Where Debian's older Docker CLI is installed
(``GITSWARM_TEST_OLD_DOCKER_CLI``, default /usr/bin/docker), files of 3.0-3.9 must load
there too.

``GITSWARM_TEST_DOCKER_CLI`` names the docker binary (default /usr/local/bin/docker, or
the first ``docker`` on PATH that has ``stack config``). No daemon is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from gitswarm.model.stack import DesiredStack
from gitswarm.render import render_stack, to_yaml
from gitswarm.render.schema import normalize_version, supported_versions
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.repo import load_config
from gitswarm.repo.yamlsrc import parse_yaml
from gitswarm.source.tree import WorkTree
from tests.integration.stack_shapes import VERSIONS, PublicStack, public_stack

IDENTITY = Identity.generate()
APP = "app"


def _docker_cli() -> str | None:
    candidates = [os.environ.get("GITSWARM_TEST_DOCKER_CLI"), "/usr/local/bin/docker"]
    candidates.append(shutil.which("docker"))
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [candidate, "stack", "config", "--help"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return candidate
    return None


DOCKER = _docker_cli()


def _old_docker_cli() -> str | None:
    """An older Docker CLI (Debian's docker.io 20.10, which knows 3.0-3.9), if installed."""
    candidate = os.environ.get("GITSWARM_TEST_OLD_DOCKER_CLI", "/usr/bin/docker")
    if not Path(candidate).exists() or candidate == DOCKER:
        return None
    probe = subprocess.run(
        [candidate, "version", "--format", "{{.Client.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    )  # exits 1 without an engine, having printed the client's version
    major = probe.stdout.strip().split(".")[0]
    return candidate if major.isdigit() and int(major) < 25 else None


OLD_DOCKER = _old_docker_cli()
OLD_DOCKER_VERSIONS = [f"3.{minor}" for minor in range(10)]  # what CLI 20.10 knows
pytestmark = pytest.mark.skipif(DOCKER is None, reason="needs a Docker CLI with `stack config`")


@dataclass(frozen=True)
class Secret:
    """A secret file's plaintext: the case writes it age-encrypted."""

    value: str


@dataclass
class Case:
    name: str
    compose: list[str]  # files in -c order
    files: dict[str, str | Secret]
    variables: dict[str, str] = field(default_factory=dict)
    env: str = "test"
    deploys_as: str | None = None  # the deployable file's version, if not the CLI's


def _seed_section(title: str) -> str:
    """A compose file of the seed document (SPEC's medianest-gitops), by its heading."""
    seed = Path("/work/shared/seed/gitops-workflow-strategy.md")
    text = seed.read_text() if seed.exists() else ""
    start = text.find(title)
    if start < 0:
        return ""
    block = text.find("```yaml", start) + len("```yaml\n")
    return text[block : text.find("```", block)]


SEED_DEV = _seed_section("### Development Environment")
SEED_STAGING = _seed_section("### Staging Environment")
SEED_PRODUCTION = _seed_section("### Production Environment")


def _example_case(env: str) -> Case:
    root = resources.files("gitswarm") / "example"
    files: dict[str, str | Secret] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            path = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, path + "/")
            elif path != "gitswarm.yml":
                files[path] = child.read_text()

    walk(root, "")
    files[f"environments/{env}/secrets/jwt_secret.age"] = Secret(f"jwt-{env}")
    env_file = files.pop(f"environments/{env}/.env")
    variables = dict(
        line.split("=", 1) for line in str(env_file).splitlines() if line and line[0] != "#"
    )
    return Case(
        f"example-{env}",
        ["base/docker-compose.yml", f"environments/{env}/docker-compose.yml"],
        files,
        variables,
        env=env,
    )


def _public_stack_case(version: str) -> Case:
    shape: PublicStack = public_stack(
        version, image="traefik:1.7", network="traefik-public", volume="pgdata", env="test",
        port=8080,
    )  # fmt: skip
    files: dict[str, str | Secret] = dict(shape.files)
    if shape.secret_path:
        files[shape.secret_path] = Secret("s3cret")
    return Case(
        f"public-stack-shapes-version-{version}",
        shape.compose,
        files,
        {"DB_USER": "app"},
        deploys_as=shape.deploys_as(),
    )


CASES: list[Case] = [
    Case(
        "seed-development",
        ["environments/test/docker-compose.yml"],
        {"environments/test/docker-compose.yml": SEED_DEV},
    ),
    Case(
        "seed-staging",
        ["environments/test/docker-compose.yml"],
        {"environments/test/docker-compose.yml": SEED_STAGING},
        {"APP_VERSION": "2.1.0"},
    ),
    Case(
        "seed-production",
        ["environments/test/docker-compose.yml"],
        {"environments/test/docker-compose.yml": SEED_PRODUCTION},
        {"APP_VERSION": "v1.2.3"},
    ),
    Case(
        "services-merge-by-name-scalars-override",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: nginx:1.25\n    user: '101'\n    hostname: web\n"
                "    working_dir: /srv\n    stop_signal: SIGTERM\n  db:\n    image: postgres:16\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    image: nginx:1.27\n    hostname: web-test\n"
                "  cache:\n    image: redis:7\n"
            ),
        },
    ),
    Case(
        "environment-list-and-map-merge-by-key",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    environment:\n      - A=1\n      - B=2\n"
                "      - FROM_VARS\n      - EMPTY=\n      - KEEP=base\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    environment:\n      A: override\n      KEEP: ''\n"
                "      NUM: 5\n      FLOAT: 1.5\n      BIG: 1000000.0\n      BOOLSTR: 'true'\n"
                "      NULL_VALUE:\n      EMPTY: filled\n"
            ),
        },
        {"FROM_VARS": "from-dotenv"},
    ),
    Case(
        "labels-and-deploy-labels-merge-by-key",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    labels: [com.example.a=1, com.example.b]\n"
                "    deploy:\n      labels:\n        team: core\n        tier: web\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    labels: {com.example.b: set}\n"
                "    deploy:\n      labels: [tier=edge, cost=low]\n"
            ),
        },
    ),
    Case(
        "ports-merge-by-published-port-and-sort",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    ports:\n      - '8080:80'\n      - 443\n"
                "      - '127.0.0.1:9000:9000/udp'\n      - '7000-7002:7000-7002'\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    ports:\n      - target: 8081\n        published: 8080\n"
                "        mode: host\n      - '53:53/udp'\n"
            ),
        },
    ),
    Case(
        "ports-only-in-a-later-file-keep-their-order",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": "services:\n  web:\n    image: a\n",
            "env/c.yml": "services:\n  web:\n    ports: ['2:2', '1:1', '5:3', 4]\n",
        },
    ),
    Case(
        "volumes-merge-by-target",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    volumes:\n      - data:/var/lib/data\n"
                "      - /etc/localtime:/etc/localtime:ro\n"
                "      - type: tmpfs\n        target: /tmp\n"
                "        tmpfs: {size: 1048576}\n      - cache:/cache:nocopy\n"
                "volumes:\n  data: {}\n  cache:\n    driver: local\n    labels: [backup=no]\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    volumes:\n      - other:/var/lib/data:ro\n"
                "      - /host/logs:/logs:rslave\nvolumes:\n  other:\n    external: true\n"
                "  data:\n    driver_opts: {type: nfs, o: 'addr=10.0.0.1'}\n"
            ),
        },
    ),
    Case(
        "service-secrets-and-configs-merge-by-source",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    secrets:\n      - db\n      - source: api\n"
                "        target: /run/api\n        uid: '1000'\n        gid: '1000'\n"
                "        mode: 0400\n    configs: [nginx]\n"
                "secrets:\n  db: {file: ../env/db.age}\n  api: {external: true}\n"
                "configs:\n  nginx: {file: ./nginx.conf}\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    secrets:\n      - source: db\n        target: db_password\n"
                "    configs:\n      - source: nginx\n        target: /etc/nginx/nginx.conf\n"
                "        mode: 0444\n"
            ),
            "base/nginx.conf": "events {}\n",
            "env/db.age": Secret("hunter2"),
        },
    ),
    Case(
        "top-level-objects-replaced-per-name",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    secrets: [old_style, named]\n"
                "    configs: [c1]\n"
                "secrets:\n  old_style:\n    external:\n      name: real_secret\n"
                "  named:\n    name: custom_name\n    external: true\n"
                "configs:\n  c1:\n    file: ./one.txt\n    labels: {a: b}\n"
            ),
            "env/c.yml": "configs:\n  c1:\n    file: ./two.txt\n",
            "base/one.txt": "one\n",
            "base/two.txt": "two\n",
        },
    ),
    Case(
        "networks-aliases-and-external",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    networks:\n"
                "      front:\n        aliases: [www]\n"
                "      back:\n  worker:\n    image: b\n    networks: [back]\n"
                "networks:\n  front:\n    driver: overlay\n    attachable: true\n"
                "    ipam:\n      config: [{subnet: 10.10.0.0/24}]\n"
                "  back:\n    driver: overlay\n    internal: true\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    networks:\n      front:\n        aliases: [web, site]\n"
                "      back:\n        aliases: [api]\n      mgmt:\n"
                "networks:\n  mgmt:\n    external: true\n    name: management\n"
                "  back:\n    driver: overlay\n"
            ),
        },
    ),
    Case(
        "command-and-entrypoint-are-replaced",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    command: [run, --port, '80']\n"
                "    entrypoint: /docker-entrypoint.sh\n  job:\n    image: b\n"
                "    command: sh -c \"echo 'hello world' && sleep 5\"\n"
            ),
            "env/c.yml": "services:\n  web:\n    command: run --port 8080 --debug\n",
        },
    ),
    Case(
        "healthcheck-test-is-concatenated-and-durations-normalised",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    healthcheck:\n"
                "      test: [CMD, curl, -f, http://localhost]\n      interval: 90s\n"
                "      timeout: 10s\n      retries: 3\n      start_period: 1m\n"
                "  db:\n    image: b\n    healthcheck:\n      test: pg_isready\n"
                "      interval: 1h30m\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    healthcheck:\n      test: [CMD, wget, -q, http://localhost]\n"
                "      retries: 5\n      start_interval: 500ms\n"
            ),
        },
    ),
    Case(
        "deploy-merges-field-by-field",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    deploy:\n      replicas: 3\n"
                "      update_config: {parallelism: 2, delay: 10s, order: start-first}\n"
                "      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3}\n"
                "      resources:\n        limits: {cpus: '0.50', memory: 512M}\n"
                "        reservations: {cpus: '0.25', memory: 1.5G}\n"
                "      placement:\n        constraints: [node.role == worker]\n"
                "        preferences: [{spread: node.labels.zone}]\n"
                "  agent:\n    image: b\n    deploy: {mode: global, endpoint_mode: dnsrr}\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    deploy:\n      replicas: 0\n"
                "      update_config: {failure_action: rollback, monitor: 30s, delay: 0s}\n"
                "      rollback_config: {parallelism: 1, max_failure_ratio: 0.1}\n"
                "      restart_policy: {window: 2m}\n"
                "      resources:\n        limits: {memory: 1G, pids: 100}\n"
                "      placement:\n        constraints: [node.labels.tier == app]\n"
                "        max_replicas_per_node: 2\n"
            ),
        },
    ),
    Case(
        "false-never-overrides-true",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    init: true\n    read_only: true\n"
                "    privileged: true\n    tty: true\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    init: false\n    read_only: false\n    privileged: false\n"
                "    stdin_open: true\n"
            ),
        },
    ),
    Case(
        "logging-options-merge-and-the-lost-options-quirk",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  a:\n    image: a\n    logging:\n      driver: json-file\n"
                "      options: {max-size: 10m}\n"
                "  b:\n    image: b\n    logging:\n      driver: json-file\n"
                "  c:\n    image: c\n    logging:\n      driver: json-file\n"
                "      options: {max-size: 1m}\n"
            ),
            "env/c.yml": (
                "services:\n  a:\n    logging:\n      options: {max-file: 3}\n"
                "  b:\n    logging:\n      options: {max-file: 5}\n"
                "  c:\n    logging:\n      driver: syslog\n"
            ),
        },
    ),
    Case(
        "interpolation-forms",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: ${REGISTRY}/web:$TAG\n    environment:\n"
                "      SOFT: ${UNSET:-soft}\n      SOFT_EMPTY: ${EMPTY:-soft}\n"
                "      HARD: ${UNSET-hard}\n      HARD_EMPTY: ${EMPTY-hard}\n"
                "      REQUIRED: ${TAG:?need a tag}\n      REQUIRED_EMPTY_OK: ${EMPTY?x}\n"
                "      DOLLARS: $$HOME and $${NOT_A_VAR} cost $$5\n"
                "      NESTED: ${UNSET:-${TAG}}\n      MIXED: pre-${TAG}-post\n"
                "    command: echo $$PATH ${TAG}\n"
            ),
        },
        {"REGISTRY": "registry.local:5000", "TAG": "1.0", "EMPTY": ""},
    ),
    Case(
        "interpolated-values-are-cast",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    read_only: ${RO}\n    deploy:\n"
                "      replicas: ${N}\n      update_config: {parallelism: '${N}'}\n"
                "    ports:\n      - target: ${PORT}\n        published: ${PORT}\n"
                "    healthcheck: {test: [CMD, x], retries: '${N}'}\n"
                "    ulimits: {nofile: '${N}'}\n"
            ),
        },
        {"RO": "yes", "N": "3", "PORT": "8080"},
    ),
    Case(
        "extensions-anchors-and-merge-keys",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "x-common: &common\n  image: shared:1\n  environment: {A: '1'}\n"
                "  deploy: {replicas: 2}\n"
                "x-more: &more\n  user: '7'\n"
                "services:\n  web:\n    <<: [*common, *more]\n    environment: {B: '2'}\n"
                "    x-meta: {owner: team-a, tags: [a]}\n  worker:\n    <<: *common\n"
            ),
            "env/c.yml": (
                "x-ignored: in the second file\nservices:\n  web:\n"
                "    x-meta: {tags: [b], extra: 1}\n"
            ),
        },
    ),
    Case(
        "yaml-scalars-as-go-reads-them",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    environment:\n      OCTAL: 0400\n"
                "      HEX: 0x1F\n      UNDERSCORE: 1_000\n      YES: yes\n      ON: on\n"
                "      FLOAT: 1e3\n      DATE: 2024-01-02\n      SMALL: 0.0001\n"
                "    secrets:\n      - source: s\n        mode: 0440\n"
                "secrets:\n  s: {external: true}\n"
            ),
        },
    ),
    Case(
        "many-service-fields",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n"
                "    dns: 8.8.8.8\n    dns_search: example.com\n    tmpfs: /run\n"
                "    extra_hosts: ['db:10.0.0.2', 'cache=10.0.0.3']\n"
                "    sysctls: [net.core.somaxconn=1024]\n"
                "    ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}\n"
                "    security_opt: [no-new-privileges:true]\n    stop_grace_period: 90s\n"
                "    expose: [80, '443']\n    isolation: default\n"
            ),
            "env/c.yml": (
                "services:\n  web:\n    cap_add: [SYS_TIME]\n    dns: [1.1.1.1]\n"
                "    extra_hosts: {api: 10.0.0.4}\n    sysctls: {net.ipv4.ip_forward: 1}\n"
                "    ulimits: {nofile: 4096}\n    stop_grace_period: 5s\n"
            ),
        },
    ),
    Case(
        "three-files",
        ["base/c.yml", "env/c.yml", "extra/c.yml"],
        {
            "base/c.yml": "services:\n  web:\n    image: a:1\n    environment: {A: base}\n",
            "env/c.yml": "services:\n  web:\n    image: a:2\n    environment: {B: env}\n",
            "extra/c.yml": (
                "services:\n  web:\n    environment: {A: extra}\n  sidecar:\n    image: s\n"
            ),
        },
    ),
    Case(
        "env-file-resolves-from-the-first-files-folder",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    env_file: ./web.env\n"
                "    environment: {FROM_FILE: overridden}\n"
            ),
            "env/c.yml": "services:\n  web:\n    env_file: [./more.env]\n",
            "base/web.env": '# comment\nFROM_FILE=file\nQUOTED="kept"\nSHARED=base\n',
            "base/more.env": "SHARED=more\nBARE\n",
        },
        {"BARE": "from-vars"},
    ),
    Case(
        "version-3-8-in-every-file",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": "version: '3.8'\nservices:\n  web:\n    image: a\n",
            "env/c.yml": "version: '3.8'\nservices:\n  web:\n    user: '1'\n",
        },
    ),
    Case(
        "version-3-means-latest",
        ["base/c.yml"],
        {"base/c.yml": "version: '3'\nservices:\n  web:\n    image: a\n"},
    ),
    Case(
        "generic-resources-and-credential-spec",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "services:\n  gpu:\n    image: a\n    credential_spec: {config: cred}\n"
                "    deploy:\n      resources:\n        reservations:\n"
                "          generic_resources:\n            - discrete_resource_spec:\n"
                "                kind: gpu\n                value: 2\n"
                # a credential spec's config must be declared, or the engine refuses it
                "configs:\n  cred:\n    external: true\n"
            ),
        },
    ),
    Case(
        "empty-services-and-default-network",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "services:\n  web:\n    image: a\n    networks: [default]\n"
                "networks:\n  default:\n    driver: overlay\n"
            ),
            "env/c.yml": "services: {}\nnetworks:\n  extra: {}\n",
        },
    ),
    Case(
        "version-3-0-without-names-keeps-its-version",
        ["base/c.yml", "env/c.yml"],
        {
            "base/c.yml": (
                "version: '3.0'\nservices:\n  web:\n    image: a\n    environment: [A=1]\n"
                "    deploy:\n      replicas: 2\n      labels: [tier=web]\n"
                "networks:\n  back:\n    driver: overlay\n"
            ),
            "env/c.yml": "version: '3.0'\nservices:\n  web:\n    user: '1'\n",
        },
        deploys_as="3.0",
    ),
    Case(
        "version-3-0-ports-deploy-as-3-2-the-long-syntax",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "version: '3.0'\nservices:\n  web:\n    image: a\n    ports: ['80:80', 443]\n"
                "    volumes: ['data:/data', '/etc/localtime:/etc/localtime:ro']\n"
                "volumes:\n  data: {}\n"
            ),
        },
        deploys_as="3.2",
    ),
    Case(
        "version-3-1-file-secret-deploys-as-3-5",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "version: '3.1'\nservices:\n  db:\n    image: postgres:9.6\n"
                "    secrets: [db_password]\n"
                "secrets:\n  db_password:\n    file: ./db_password.age\n"
            ),
            "base/db_password.age": Secret("pw"),
        },
        deploys_as="3.5",
    ),
    Case(
        "version-3-2-external-network-old-form-deploys-as-3-5",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "version: '3.2'\nservices:\n  web:\n    image: a\n    networks: [public]\n"
                "networks:\n  public:\n    external:\n      name: traefik-public\n"
            ),
        },
        deploys_as="3.5",
    ),
    Case(
        "version-3-3-traefik-external-network",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "version: '3.3'\nservices:\n  traefik:\n    image: traefik:1.7\n"
                "    command: --docker --docker.swarmmode --docker.watch\n"
                "    networks: [public]\n    ports:\n      - target: 80\n"
                "        published: 80\n        mode: host\n"
                "    deploy:\n      placement:\n        constraints: [node.role == manager]\n"
                "networks:\n  public:\n    external: true\n"
            ),
        },
        deploys_as="3.5",
    ),
    Case(
        "version-3-3-file-config-deploys-as-3-5",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "version: '3.3'\nservices:\n  prometheus:\n    image: prom/prometheus\n"
                "    configs:\n      - source: prom\n        target: /etc/prometheus/p.yml\n"
                "configs:\n  prom:\n    file: ./p.yml\n"
            ),
            "base/p.yml": "global: {}\n",
        },
        deploys_as="3.5",
    ),
    Case(
        "version-3-4-external-volume-keeps-3-4",
        ["base/c.yml"],
        {
            "base/c.yml": (
                "version: '3.4'\nservices:\n  db:\n    image: postgres:10\n"
                "    volumes: ['pg:/var/lib/postgresql/data']\n"
                "volumes:\n  pg:\n    external:\n      name: pgdata\n"
            ),
        },
        deploys_as="3.4",
    ),
    *(_public_stack_case(version) for version in VERSIONS),
    _example_case("development"),
    _example_case("staging"),
    _example_case("production"),
]


# --- running both sides ----------------------------------------------------------------------


def _write_case(root: Path, case: Case) -> None:
    config = {
        "project": "parity",
        "application": {"name": APP, "stack": "p-{env}", "files": case.compose},
        "environments": {case.env: {"secrets": {"recipients": [IDENTITY.recipient]}}},
    }
    files: dict[str, str | bytes] = {"gitswarm.yml": json.dumps(config)}
    variables = case.variables
    files[f"environments/{case.env}/.env"] = "".join(f"{k}={v}\n" for k, v in variables.items())
    for path, content in case.files.items():
        if isinstance(content, Secret):
            files[path] = encrypt(content.value.encode(), [IDENTITY.recipient])
        else:
            files[path] = content
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)


def _variables(case: Case) -> dict[str, str]:
    own = {"GITSWARM_ENV": case.env, "GITSWARM_APP": APP, "GITSWARM_STACK": f"p-{case.env}"}
    return {**case.variables, **own}


def docker_stack_config(cwd: Path, files: list[str], environ: Mapping[str, str]) -> Any:
    assert DOCKER is not None
    args = [DOCKER, "stack", "config"]
    for name in files:
        args += ["-c", name]
    done = subprocess.run(
        args, cwd=cwd, env=dict(environ), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return parse_yaml(done.stdout, "docker stack config").data


def _deploy_loader(
    cwd: Path, files: list[str], environ: Mapping[str, str], no_engine: Path, docker: str
) -> subprocess.CompletedProcess[str]:
    """``docker stack deploy`` loads and validates the files (schema, images) before it
    connects: against a socket that does not exist, reaching the connection means the
    files loaded."""
    args = [docker, "-H", f"unix://{no_engine}", "stack", "deploy"]
    for name in files:
        args += ["-c", name]
    return subprocess.run(
        [*args, "probe"], cwd=cwd, env=dict(environ), capture_output=True, text=True, check=False
    )


def assert_deploy_loads(
    cwd: Path,
    files: list[str],
    environ: Mapping[str, str],
    no_engine: Path,
    docker: str | None = None,
) -> None:
    docker = docker or DOCKER
    assert docker is not None
    done = _deploy_loader(cwd, files, environ, no_engine, docker)
    assert "Cannot connect to the Docker daemon" in done.stderr, (docker, done.stderr)


def assert_deploy_refuses(cwd: Path, file: str, no_engine: Path) -> None:
    assert DOCKER is not None
    done = _deploy_loader(cwd, [file], {}, no_engine, DOCKER)
    assert done.returncode != 0 and "Cannot connect" not in done.stderr, done.stderr


def _written_version(case: Case) -> str | None:
    """The version the case's first file names; None for none or just "3"."""
    data = parse_yaml(str(case.files[case.compose[0]]), case.compose[0]).data
    version = data.get("version") if isinstance(data, dict) else None
    return None if version is None or str(version) == "3" else str(version)


def _gitswarm_side(desired: DesiredStack) -> dict[str, Any]:
    """gitswarm's compose without what gitswarm adds on purpose."""
    compose: dict[str, Any] = json.loads(json.dumps(desired.compose))
    for service in compose["services"].values():
        deploy = service.get("deploy", {})
        labels = {
            k: v for k, v in deploy.get("labels", {}).items() if not k.startswith("io.gitswarm.")
        }
        if labels:
            deploy["labels"] = labels
        else:
            deploy.pop("labels", None)
        if not deploy:
            service.pop("deploy", None)
    for material in desired.objects:
        kind = f"{material.kind}s"
        entry: dict[str, Any] = {"file": material.source}
        own = ("io.gitswarm.", "com.docker.stack.namespace")
        labels = {k: v for k, v in material.labels.items() if not k.startswith(own)}
        if labels:
            entry["labels"] = labels
        for key, value in compose[kind].items():
            if value.get("name") == material.name:
                compose[kind][key] = entry
    return compose


def _cli_side(data: Any, root: Path) -> dict[str, Any]:
    """The CLI's output with paths made repository-relative, file-based objects reduced
    to what gitswarm keeps (file, labels), and env_file dropped (gitswarm resolves it)."""
    text = json.dumps(data).replace(f"{root}/", "")
    out: dict[str, Any] = json.loads(text)
    for kind in ("configs", "secrets"):
        for key, value in (out.get(kind) or {}).items():
            if "file" in value:
                out[kind][key] = {k: v for k, v in value.items() if k in ("file", "labels")}
    for service in out["services"].values():
        service.pop("env_file", None)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_render_equals_docker_stack_config(case: Case, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _write_case(root, case)
    tree = WorkTree(root)
    desired = render_stack(tree, load_config(tree), APP, case.env, IDENTITY)
    theirs = _cli_side(docker_stack_config(root, case.compose, _variables(case)), root)
    ours = _gitswarm_side(desired)
    deployed_version, written = ours.pop("version"), theirs.pop("version")
    if case.deploys_as:
        assert deployed_version == case.deploys_as
    elif _written_version(case) is not None:
        assert deployed_version == written  # nothing needed more
    assert ours == theirs


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_deployable_yaml_reads_back_as_rendered(case: Case, tmp_path: Path) -> None:
    """What `docker stack deploy` will read from gitswarm's file is exactly the render:
    every `$` escaped once, nothing left for the deploy's own interpolation to change;
    and the file loads in `docker stack deploy` as the author's own files do."""
    root = tmp_path / "repo"
    _write_case(root, case)
    tree = WorkTree(root)
    desired = render_stack(tree, load_config(tree), APP, case.env, IDENTITY)
    deploy_dir = tmp_path / "deploy"
    deploy_dir.mkdir()
    text = to_yaml(desired)
    (deploy_dir / "stack.yml").write_text(text)
    read_back = docker_stack_config(deploy_dir, ["stack.yml"], {})
    assert read_back == json.loads(json.dumps(desired.compose))
    no_engine = tmp_path / "no-engine.sock"
    assert_deploy_loads(root, case.compose, _variables(case), no_engine)
    assert_deploy_loads(deploy_dir, ["stack.yml"], {}, no_engine)

    # the lowest version that loads, and not below the author's
    known = supported_versions()
    version = desired.compose["version"]
    written = _written_version(case)
    floor = known.index(normalize_version(written)) if written else 0
    assert known.index(version) >= floor
    if known.index(version) > floor:
        lower = known[known.index(version) - 1]
        assert f'\nversion: "{version}"\n' in f"\n{text}"
        (deploy_dir / "lower.yml").write_text(
            text.replace(f'version: "{version}"', f'version: "{lower}"', 1)
        )
        assert_deploy_refuses(deploy_dir, "lower.yml", no_engine)
    if OLD_DOCKER and version in OLD_DOCKER_VERSIONS:
        assert_deploy_loads(deploy_dir, ["stack.yml"], {}, no_engine, OLD_DOCKER)


def test_enough_cases() -> None:
    assert len(CASES) >= 25
    assert SEED_DEV and SEED_STAGING and SEED_PRODUCTION
