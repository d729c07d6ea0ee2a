"""certificate_expiry and secret_max_age on a real swarm, through a real agent (issue 17).

A config holds a CA certificate that expires in 10 days, an age-encrypted secret a
certificate (and its private key) valid for 200: the agent deploys both (the rule warns
by default), the warning names the config's certificate by subject and date only, and
/metrics of the agent's HTTP server carries each object's expiry. Enforced, the same
commit is refused before anything changes. A secret whose deployed version (named by its
value) is older than ``max_age`` on the target -- the clock moved 100 days on -- is
refused with its date; the private key appears nowhere but in the secret.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gitswarm.api import create_app, serve_in_thread, settings_from_mapping
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.apply import Clock
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.source.keys import write_identity
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from harness.gitserve import GitRemote
from tests.conftest import SwarmUnderTest, client_of
from tests.gitops import _dump, service
from tests.integration.agent_rig import wait_for

pytestmark = pytest.mark.swarm


def _pem(common_name: str, not_after: dt.datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=365))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _files(
    stack: str, recipient: str, policies: dict[str, object], ca: bytes, tls: bytes
) -> dict[str, str | bytes]:
    settings = {
        "project": "t",
        "application": {"name": "app", "stack": stack},
        "environments": {
            "dev": {
                "secrets": {"recipients": [recipient]},
                "policies": policies,
                "sync": {"prune": True, "health_timeout": 60, "resolve_image": "never"},
            }
        },
    }
    compose = {
        "services": {"web": service(configs=["ca"], secrets=["tls"])},
        "configs": {"ca": {"file": "./ca.pem"}},
        "secrets": {"tls": {"file": "./tls.age"}},
    }
    return {
        "gitswarm.yml": _dump(settings),
        "base/docker-compose.yml": _dump(compose),
        "base/ca.pem": ca,
        "base/tls.age": encrypt(tls, [recipient]),
        "environments/dev/docker-compose.yml": "services: {}\n",
    }


def _metric(text: str, obj: str) -> float:
    prefix = f'gitswarm_certificate_expiry_timestamp_seconds{{app="app",env="dev",object="{obj}"}} '
    (line,) = [x for x in text.splitlines() if x.startswith(prefix)]
    return float(line.removeprefix(prefix))


def _objects(docker_host: str, stack: str) -> set[str]:
    with client_of(docker_host) as client:
        label = f"com.docker.stack.namespace={stack}"
        configs = client.api.configs(filters={"label": label})
        secrets = client.api.secrets(filters={"label": label})
    return {o["Spec"]["Name"] for o in [*configs, *secrets]}


def test_certificates_warn_block_and_are_metrics_and_an_old_secret_is_refused(
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    keys = tmp_path / "keys"
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(keys))
    identity = Identity.generate()
    write_identity(keys / "t" / "dev.key", identity)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca, _ = _pem("Medianest test CA", now + dt.timedelta(days=10))
    leaf, leaf_key = _pem("api.medianest.test", now + dt.timedelta(days=200))
    policies: dict[str, object] = {"secret_max_age": {"mode": "enforce", "max_age": "90d"}}
    wc = git_remote.clone()
    first = wc.commit(
        "certificates", files=_files(stack_name, identity.recipient, policies, ca, leaf + leaf_key)
    )
    wc.push()

    store = Store(str(tmp_path / "state.db"))
    source = RepoSource.open(git_remote.url, cache=tmp_path / "cache")
    pool = SwarmPool()
    metrics = Metrics()
    reconciler = Reconciler(source, store, pool)
    agent = Agent(
        source=source,
        store=store,
        reconciler=reconciler,
        settings=AgentSettings(poll_interval=5.0, drift_interval=300.0, lease_ttl=5.0),
        metrics=metrics,
    )
    api = settings_from_mapping({"anonymous_read": True}, audit=store.audit)
    server = serve_in_thread(create_app(agent, api, metrics), "127.0.0.1", 0)
    agent.start()
    try:
        assert agent.wait_leader(10)

        def healthy() -> bool:
            status = store.get_status("app", "dev")
            return bool(status and status.revision == first and status.health == "Healthy")

        wait_for(healthy, 120)
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert _metric(text, "configs.ca") == (now + dt.timedelta(days=10)).timestamp()
        assert _metric(text, "secrets.tls") == (now + dt.timedelta(days=200)).timestamp()
        deployed = _objects(swarm.docker_host, stack_name)
        assert len(deployed) == 2
    finally:
        server.stop()
        agent.stop(timeout=30)

    try:
        # the warning of that sync, as `gitswarm sync` sees it (the same commit again)
        outcome = Reconciler(source, store, SwarmPool()).sync(SyncRequest("app", "dev"))
        assert outcome.result in ("Succeeded", "Skipped"), outcome.message
        assert outcome.policy is not None
        (warned,) = [r for r in outcome.policy.results if r.rule == "certificate_expiry"]
        assert warned.mode == "warn" and warned.status == "fail"
        assert warned.detail.startswith(
            f"config ca: certificate 'Medianest test CA' expires on "
            f"{(now + dt.timedelta(days=10)).strftime('%Y-%m-%d %H:%M')} UTC, in "
        )
        compose = (wc.path / "base/docker-compose.yml").read_text().splitlines()
        ca_line = compose.index("  ca:", compose.index("configs:")) + 1
        assert (warned.location.file, warned.location.line) == (  # type: ignore[union-attr]
            "base/docker-compose.yml",
            ca_line,
        )

        # enforced, the same certificates block the commit: nothing changes on the swarm
        policies["certificate_expiry"] = {"mode": "enforce", "days": 30}
        blocked = wc.commit(
            "enforce", files=_files(stack_name, identity.recipient, policies, ca, leaf + leaf_key)
        )
        wc.push()
        source.fetch()
        outcome = Reconciler(source, store, SwarmPool()).sync(SyncRequest("app", "dev"))
        assert (outcome.result, outcome.reason) == ("Failed", "PolicyViolation")
        assert outcome.revision == blocked
        assert (
            f"base/docker-compose.yml:{ca_line}:3: config ca: certificate 'Medianest test CA' "
            "expires on "
        ) in outcome.message
        assert outcome.message.endswith("[certificate_expiry]")
        assert _objects(swarm.docker_host, stack_name) == deployed

        # 100 days on, the secret's value (its deployed version) is older than 90 days
        policies.pop("certificate_expiry")
        wc.commit(
            "back to warn",
            files=_files(stack_name, identity.recipient, policies, ca, leaf + leaf_key),
        )
        wc.push()
        source.fetch()
        later = Clock(now=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=100))
        outcome = Reconciler(source, store, SwarmPool(), clock=later).sync(
            SyncRequest("app", "dev")
        )
        assert (outcome.result, outcome.reason) == ("Failed", "PolicyViolation"), outcome.message
        assert (
            f"secret tls: its value has not changed since {now:%Y-%m-%d} (100 days, more than "
            "max_age 90d); rotate it"
        ) in outcome.message
        assert outcome.message.endswith("[secret_max_age]")
        assert _objects(swarm.docker_host, stack_name) == deployed
    finally:
        store.close()
    raw = (tmp_path / "state.db").read_bytes()
    key_line = leaf_key.splitlines()[1]
    assert key_line not in raw and key_line.decode() not in caplog.text
