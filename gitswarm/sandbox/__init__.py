"""Untrusted computation in bounded child processes (edge): Rego policies from a commit.

    rego.py    RegoSandbox: the RegoEvaluator of policy/gate.py for the CLI and the agent
    worker.py  the child: ``python -I -m gitswarm.sandbox.worker``, empty environment

policy/ stays pure (no subprocess): it defines the port (policy.rego.RegoEvaluator) and
the evaluation; this package only runs that evaluation elsewhere, within limits. Nothing
is imported here, so the child loads only worker.py and the evaluator.
"""
