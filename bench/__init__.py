"""gitswarm's benchmarks (SPEC.md section 7): measured side by side in one run, never
timed unit tests. ``python -m bench`` (``make bench``); see bench/README.md.

- ``lab``: the private swarm lab, Git server and scratch folder of one run;
- ``agentproc`` / ``agent``: the gitswarm agent in a process of its own, metered;
- ``naive``: the seed document's bash sync agent (naive-agent.sh), the naive contender;
- ``observe``: one outside observer that decides "converged" for every contender;
- ``latency``, ``drift``, ``noop``, ``scale``: the four benchmarks;
- ``report``: medians, ratios, targets, the machine.
"""
