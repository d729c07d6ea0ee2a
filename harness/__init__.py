"""The real-things harness shared by tests/, bench/ and the README's demo.

- ``engine``: a private dockerd in its own network namespace (single node or 3 nodes);
- ``images``: busybox-based test images and a private docker-registry;
- ``lab``: engine + swarm + registry + images in one call, and ``python -m harness``.
"""
