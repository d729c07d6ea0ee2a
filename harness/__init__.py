"""The real-things harness shared by tests/, bench/ and the README's demo.

- ``system``: processes, network namespaces, cgroups and folders the harness creates; the
  owner mark and journal that let ``leftovers()``/``reap_stale()`` find them again;
- ``engine``: a private dockerd in its own network namespace;
- ``images``: busybox-based test images and a private docker-registry;
- ``lab``: engine + swarm + registry + images in one call, and ``python -m harness``;
- ``cluster``: three dockerd nodes in one swarm, in namespaces joined by a bridge;
- ``gitserve``: bare Git remotes served by ``git daemon`` and smart HTTP, and clones.
"""
