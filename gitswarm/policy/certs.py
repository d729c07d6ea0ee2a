"""X.509 certificates in a stack's configs and secrets, and how long they last (pure).

Read from the bytes render/ put in ``DesiredStack.objects`` -- a secret's after
decryption (or as its provider gave it), in memory only -- by the ``certificate_expiry``
rule (gate.py) and by the agent's ``gitswarm_certificate_expiry_timestamp_seconds``
metric (reconcile/metrics.py). Every PEM ``CERTIFICATE`` block of an object counts (a
bundle: the leaf and its chain); what is reported about one is its subject and dates,
never anything else of the object (a secret bundle also holds the private key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from gitswarm.model.stack import DesiredStack

MAX_CERTIFICATES = 64  # per object: a bundle of a few; past that, the rest is not read
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Certificate:
    kind: str  # "config" | "secret"
    key: str  # its name in the compose file
    subject: str  # the common name, else the whole subject
    not_after: datetime  # aware, UTC
    index: int = 0  # its place in the object's bundle

    @property
    def object(self) -> str:
        return f"{self.kind}s.{self.key}"


def _subject(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        return str(names[0].value)
    return cert.subject.rfc4514_string() or "(no subject)"


def certificates(stack: DesiredStack) -> list[Certificate]:
    """Every certificate of every config and secret of ``stack`` that has data."""
    found: list[Certificate] = []
    for material in stack.objects:
        if not material.data or b"-----BEGIN CERTIFICATE-----" not in material.data:
            continue
        for index, match in enumerate(_PEM.finditer(material.data)):
            if index >= MAX_CERTIFICATES:
                break
            try:
                cert = x509.load_pem_x509_certificate(match.group(0))
            except ValueError:
                continue  # not a certificate after all: nothing to say about its expiry
            found.append(
                Certificate(
                    material.kind, material.key, _subject(cert), cert.not_valid_after_utc, index
                )
            )
    return found


def earliest_expiry(stack: DesiredStack) -> dict[str, datetime]:
    """Per object (``configs.<key>`` / ``secrets.<key>``) the earliest end of validity
    among its certificates: the one that breaks first."""
    out: dict[str, datetime] = {}
    for cert in certificates(stack):
        if cert.object not in out or cert.not_after < out[cert.object]:
            out[cert.object] = cert.not_after
    return out


__all__ = ["Certificate", "certificates", "earliest_expiry"]
