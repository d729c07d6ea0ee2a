"""The loop: wiring only (SPEC.md section 2). Read agent/__init__.py first. Its files:

    agent/        ``gitswarm serve``: triggers, the work queue, leadership, drift, events,
                  the API's view; one owner of its state
    sync.py       ``Reconciler.sync``: one sync, fetch to record (outcome.py: its
                  request and answer)
    record.py     where every outcome is written: history, status, metrics, notices
    rendering.py  a tree to a validated stack (the CLI's render/validate use it too)
    apply.py      apply a plan, wait for health, read back what was applied
    rollback.py   ``gitswarm rollback`` and the agent's automatic one (``redeploy``)
    status.py     the live status (``gitswarm status``/``diff``, the API)
    retention.py  pruning the history; metrics.py: every Prometheus metric

Imports flow one way: edges (api/, cli/) -> reconcile/ -> the pure core.
"""
