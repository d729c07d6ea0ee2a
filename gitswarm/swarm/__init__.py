"""The only package that talks to Docker: apply, observe, events (I/O edge)."""
