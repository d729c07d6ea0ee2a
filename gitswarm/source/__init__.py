"""Git: the source of truth. Fetch into a bare cache, read trees, verify signatures.

I/O edge: called by reconcile/ and cli/; hands render/ a read-only ``Tree``.
"""
