"""Every Prometheus metric of gitswarm, named in one place.

One ``Metrics`` object per agent owns its own registry (no module globals); the loop
updates it, the API serves it at /metrics. Label values are app, env, result and
reason: bounded sets, never revisions or messages.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gitswarm.reconcile.journal import Journal

SYNC_STATES = ("Synced", "OutOfSync", "Unknown")
HEALTH_STATES = ("Healthy", "Progressing", "Degraded", "Missing", "Unknown")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sync_operations = Counter(
            "gitswarm_sync_operations_total",
            "Sync operations by application, environment, result and reason.",
            ["app", "env", "result", "reason"],
            registry=r,
        )
        self.sync_duration = Histogram(
            "gitswarm_sync_duration_seconds",
            "Duration of sync operations that deployed something.",
            ["app", "env"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.sync_state = Gauge(
            "gitswarm_app_sync_state",
            "1 for the current sync state of an application in an environment.",
            ["app", "env", "state"],
            registry=r,
        )
        self.health_state = Gauge(
            "gitswarm_app_health_state",
            "1 for the current health of an application in an environment.",
            ["app", "env", "state"],
            registry=r,
        )
        self.last_success = Gauge(
            "gitswarm_last_successful_sync_timestamp_seconds",
            "Unix time of the last successful sync.",
            ["app", "env"],
            registry=r,
        )
        self.drift_events = Counter(
            "gitswarm_drift_events_total",
            "Drift detected on the swarm, and drift healed.",
            ["app", "env", "action"],
            registry=r,
        )
        self.git_fetch_errors = Counter(
            "gitswarm_git_fetch_errors_total",
            "Failed polls or fetches of the Git remote.",
            registry=r,
        )
        self.git_polls = Counter(
            "gitswarm_git_polls_total",
            "Polls of the Git remote, and whether they fetched.",
            ["fetched"],
            registry=r,
        )
        self.syncs_skipped = Counter(
            "gitswarm_syncs_skipped_total",
            "App syncs not run at a new revision: the files and settings the app's render "
            "reads are the same as at its deployed revision (nothing rendered or deployed).",
            registry=r,
        )
        self.webhook_requests = Counter(
            "gitswarm_webhook_requests_total",
            "Webhook requests by provider and result.",
            ["provider", "result"],
            registry=r,
        )
        self.notifications = Counter(
            "gitswarm_notifications_total", "Notifications sent or failed.", ["result"], registry=r
        )
        # Alert rules (deploy/prometheus/gitswarm-alerts.yml) read these too: issue 16.
        self.rollbacks = Counter(
            "gitswarm_rollbacks_total",
            "Automatic rollbacks of a failed deploy, by whether the rollback succeeded.",
            ["app", "env", "result"],
            registry=r,
        )
        self.api_refused = Counter(
            "gitswarm_api_refused_requests_total",
            "API requests refused: 401 (no or bad token) and 403 (role or environment).",
            ["code"],
            registry=r,
        )
        self.login_failures = Counter(
            "gitswarm_login_failures_total",
            "Failed dashboard sign-ins: bad_credentials (unknown user or wrong password), "
            "throttled (refused after too many failures), busy (refused: every argon2 slot "
            "stayed taken, api.sign_in_slots).",
            ["reason"],
            registry=r,
        )
        self.audit_summarized = Counter(
            "gitswarm_audit_summarized_total",
            "Requests without valid credentials beyond the audit trail's budget "
            "(api/refusals.py): counted into one summary row each window, by action.",
            ["action"],
            registry=r,
        )
        self.leader = Gauge(
            "gitswarm_agent_leader",
            "1 while this agent holds the agent lease (the active one), 0 on standby.",
            registry=r,
        )
        # issue 17: the earliest end of validity of the X.509 certificates in each config
        # or secret (object: "configs.<key>" / "secrets.<key>", the compose name: stable
        # across versions), of the revision deployed last.
        self.certificate_expiry = Gauge(
            "gitswarm_certificate_expiry_timestamp_seconds",
            "Unix time at which the first certificate in a config or secret expires.",
            ["app", "env", "object"],
            registry=r,
        )
        self._certificates: dict[tuple[str, str], set[str]] = {}
        self._certificates_lock = threading.Lock()
        self._journal = _JournalCollector()
        r.register(self._journal)

    def set_certificates(self, app: str, env: str, expiries: Mapping[str, dt.datetime]) -> None:
        """The certificates of ``app`` in ``env`` now; series of objects gone are removed."""
        with self._certificates_lock:
            before = self._certificates.get((app, env), set())
            for gone in before - set(expiries):
                self.certificate_expiry.remove(app, env, gone)
            for name, when in expiries.items():
                self.certificate_expiry.labels(app, env, name).set(when.timestamp())
            self._certificates[(app, env)] = set(expiries)

    def watch_journal(self, journal: Journal) -> None:
        """Serve the store's refused writes from ``journal`` (the agent's Reconciler's)."""
        self._journal.journal = journal

    def set_state(self, app: str, env: str, sync: str, health: str) -> None:
        for state in SYNC_STATES:
            self.sync_state.labels(app, env, state).set(1 if state == sync else 0)
        for state in HEALTH_STATES:
            self.health_state.labels(app, env, state).set(1 if state == health else 0)


class _JournalCollector(Collector):
    """Read at each scrape from the journal (reconcile/journal.py), which counts itself."""

    def __init__(self) -> None:
        self.journal: Journal | None = None

    def collect(self) -> Iterator[Metric]:
        journal = self.journal
        backlog = journal.backlog() if journal is not None else None
        yield CounterMetricFamily(
            "gitswarm_store_write_failures",
            "Writes the state store refused (locked, disk full, down); each is kept and retried.",
            value=journal.failures if journal is not None else 0,
        )
        yield GaugeMetricFamily(
            "gitswarm_store_unwritten_records",
            "Records the state store refused that wait, in memory, to be written.",
            value=backlog.count if backlog is not None else 0,
        )
