"""Promotion: moving image tags from one environment to the next through Git (SPEC 4).

    gitswarm promote / POST /api/v1/promotions       (cli/, api/)
        -> pipeline.Promoter.promote: source deployed and healthy (store + live swarm)
           -> gates (gates.py: soak, http, command, policy, window)
           -> pending for approvals (approvals.py) or commit
           -> core/edits.py (the tags written, nothing else) -> core/message.py
           -> push (rebase and retry, never force) -> recorded and notified
    the agent's timer -> automation.Automation.tick: image automation (registry.py),
           automatic promotion, holds after a rollback (holds.py), expiry of pending ones

core/ is pure (settings, tag ordering, edits, commit messages); the rest uses the edges
(Git through source/writer.py, the store, the swarm through reconcile's Reconciler).
"""
