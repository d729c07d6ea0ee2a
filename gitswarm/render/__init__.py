"""From a Tree at a revision to the exact stack that will be deployed (pure).

Compose merge and interpolation with the semantics of ``docker stack config``,
content-addressed config/secret names, in-memory secret decryption, validation.
"""
