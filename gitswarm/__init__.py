"""gitswarm: GitOps for Docker Swarm.

The agent's loop (SPEC.md section 2) is visible in the sub-packages:

    source/  fetch and verify a Git revision            (I/O edge)
    repo/    read gitswarm.yml and applications/       (pure)
    render/  merge, interpolate, name configs/secrets  (pure)
    policy/  built-in rules and Rego                   (pure)
    plan/    desired vs deployed                       (pure)
    swarm/   apply, observe, events                    (I/O edge: the only Docker code)
    health/  convergence and drift verdicts            (pure)
    reconcile/ the loop itself: wiring, locks, triggers
    store/   history, audit, locks                     (I/O edge)
    notify/  Apprise                                   (I/O edge)
    api/, cli/  the ways in
"""

__version__ = "0.1.0"
