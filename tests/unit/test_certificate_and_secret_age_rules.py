"""certificate_expiry and secret_max_age (issue 17): the seed's expiry alerts and rotation.

Certificates are read from the rendered stack's configs and secrets (a secret after
decryption, in memory); a finding names the object, the certificate's subject and its
date, at the line that declares the object, and never anything else of it. A secret's
age is that of its content-addressed version on the target (when its value last
changed). Both warn or block like every rule; the expiry is also a metric.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import generate_latest

from gitswarm.errors import ConfigError, PolicyError
from gitswarm.policy import evaluate, raise_for_violations
from gitswarm.policy.certs import earliest_expiry
from gitswarm.reconcile.metrics import Metrics
from gitswarm.render import render_stack
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.repo import load_config
from tests.unit.test_render_trees import MemoryTree

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DEV = Identity.generate()


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


def _stack(policies: str, config: bytes, secret: bytes) -> tuple[object, object]:
    files: dict[str, str | bytes] = {
        "gitswarm.yml": (
            "project: shop\napplication: {name: web, stack: 'shop-{env}'}\nenvironments:\n"
            f"  dev:\n    secrets: {{recipients: ['{DEV.recipient}']}}\n"
            f"    policies: {policies}\n"
        ),
        "base/docker-compose.yml": (
            "services:\n"
            "  api:\n"
            "    image: registry.local/api:1\n"
            "    configs: [ca]\n"
            "    secrets: [tls]\n"
            "configs:\n"
            "  ca:\n"
            "    file: ./ca.pem\n"
            "secrets:\n"
            "  tls:\n"
            "    file: ./tls.age\n"
        ),
        "base/ca.pem": config,
        "base/tls.age": encrypt(secret, [DEV.recipient]),
        "environments/dev/docker-compose.yml": "services: {}\n",
    }
    tree = MemoryTree(files)
    config_ = load_config(tree)
    return render_stack(tree, config_, "web", "dev", DEV), config_.environment("dev")


def test_a_certificate_close_to_expiry_warns_at_its_declaration() -> None:
    ca, _ = _pem("Medianest CA", NOW + dt.timedelta(days=200))
    leaf, leaf_key = _pem("api.medianest.local", NOW + dt.timedelta(days=10, hours=1))
    desired, env = _stack("{}", ca, leaf + leaf_key)  # a bundle: certificate and its key
    report = evaluate(desired, env, rego_sources={}, now=NOW)  # type: ignore[arg-type]
    (result,) = [r for r in report.results if r.rule == "certificate_expiry"]
    assert result.mode == "warn" and result.status == "fail"  # default mode: warn, 30 days
    assert result.detail == (
        "secret tls: certificate 'api.medianest.local' expires on 2026-06-11 13:00 UTC, in 10 "
        "days (within 30); renew it and commit the new file (or update it at its provider)"
    )
    assert (result.location.file, result.location.line) == ("base/docker-compose.yml", 10)  # type: ignore[union-attr]
    assert b"PRIVATE KEY" in leaf_key and "PRIVATE" not in str(report.to_dict())
    assert not report.blocked


def test_enforced_it_blocks_and_expired_says_so() -> None:
    old, _ = _pem("old", NOW - dt.timedelta(days=1))
    good, _ = _pem("fine", NOW + dt.timedelta(days=300))
    desired, env = _stack("{certificate_expiry: {mode: enforce, days: 14}}", old, good)
    report = evaluate(desired, env, rego_sources={}, now=NOW)  # type: ignore[arg-type]
    (result,) = [r for r in report.results if r.rule == "certificate_expiry"]
    assert result.detail.startswith("config ca: certificate 'old' expired on 2026-05-31")
    with pytest.raises(PolicyError):
        raise_for_violations(report)


def test_the_expiry_is_a_metric_per_object() -> None:
    ca, _ = _pem("ca", NOW + dt.timedelta(days=200))
    leaf, _ = _pem("leaf", NOW + dt.timedelta(days=20))
    desired, _env = _stack("{}", ca, leaf)
    expiries = earliest_expiry(desired)  # type: ignore[arg-type]
    assert expiries == {
        "configs.ca": NOW + dt.timedelta(days=200),
        "secrets.tls": NOW + dt.timedelta(days=20),
    }
    metrics = Metrics()
    metrics.set_certificates("web", "dev", expiries)
    text = generate_latest(metrics.registry).decode()
    line = next(x for x in text.splitlines() if 'object="secrets.tls"' in x)
    assert line.startswith(
        'gitswarm_certificate_expiry_timestamp_seconds{app="web",env="dev",object="secrets.tls"} '
    )
    assert float(line.rsplit(" ", 1)[1]) == (NOW + dt.timedelta(days=20)).timestamp()
    metrics.set_certificates("web", "dev", {"configs.ca": expiries["configs.ca"]})
    text = generate_latest(metrics.registry).decode()
    assert 'object="secrets.tls"' not in text and 'object="configs.ca"' in text


def test_a_secret_unchanged_for_longer_than_max_age_is_reported() -> None:
    ca, _ = _pem("ca", NOW + dt.timedelta(days=200))
    desired, env = _stack("{secret_max_age: {mode: enforce, max_age: 90_days}}", ca, b"db-password")
    (secret,) = [o for o in desired.objects if o.kind == "secret"]  # type: ignore[attr-defined]
    created = {secret.name: NOW - dt.timedelta(days=120)}
    report = evaluate(desired, env, rego_sources={}, now=NOW, secret_created=created)  # type: ignore[arg-type]
    (result,) = [r for r in report.results if r.rule == "secret_max_age"]
    assert result.detail == (
        "secret tls: its value has not changed since 2026-02-01 (120 days, more than max_age "
        "90d); rotate it: a new value (`gitswarm secret encrypt`, or at its provider) deploys "
        "as a new secret version"
    )
    assert report.blocked
    # a new value is a new version: not on the target yet, so new
    fresh = evaluate(desired, env, rego_sources={}, now=NOW, secret_created={})  # type: ignore[arg-type]
    assert not [r for r in fresh.results if r.rule == "secret_max_age"]
    # `policy check` cannot know ages: nothing judged
    unknown = evaluate(desired, env, rego_sources={}, now=NOW)  # type: ignore[arg-type]
    assert not [r for r in unknown.results if r.rule == "secret_max_age"]


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ("{secret_max_age: warn}", "environments.dev.policies.secret_max_age: needs the age"),
        (
            "{secret_max_age: {mode: warn, max_age: soon}}",
            "environments.dev.policies.secret_max_age.max_age: must be a number of days",
        ),
        (
            "{certificate_expiry: {mode: warn, days: 0}}",
            "environments.dev.policies.certificate_expiry.days: must be from 1 to 3650 days",
        ),
    ],
)
def test_bad_parameters_are_refused_at_their_line(policies: str, message: str) -> None:
    ca, _ = _pem("ca", NOW + dt.timedelta(days=200))
    desired, env = _stack(policies, ca, b"x")
    with pytest.raises(ConfigError) as caught:
        evaluate(desired, env, rego_sources={}, now=NOW)  # type: ignore[arg-type]
    (problem,) = caught.value.problems
    assert problem.file == "gitswarm.yml" and problem.line == 6
    assert problem.message.startswith(message)
