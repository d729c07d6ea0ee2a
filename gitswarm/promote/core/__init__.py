"""The pure part of promotion: settings, tag ordering, file edits, commit messages.

No I/O here (import-linter's pure-core contract): the promotion pipeline and the image
automation (gitswarm/promote/) call these with what they read from Git, the store, the
swarm and the registry.
"""
