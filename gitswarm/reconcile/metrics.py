"""Every Prometheus metric of gitswarm, named in one place.

One ``Metrics`` object per agent owns its own registry (no module globals); the loop
updates it, the API serves it at /metrics. Label values are app, env, result and
reason: bounded sets, never revisions or messages.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
            "throttled (refused after too many failures).",
            ["reason"],
            registry=r,
        )
        self.leader = Gauge(
            "gitswarm_agent_leader",
            "1 while this agent holds the agent lease (the active one), 0 on standby.",
            registry=r,
        )

    def set_state(self, app: str, env: str, sync: str, health: str) -> None:
        for state in SYNC_STATES:
            self.sync_state.labels(app, env, state).set(1 if state == sync else 0)
        for state in HEALTH_STATES:
            self.health_state.labels(app, env, state).set(1 if state == health else 0)
