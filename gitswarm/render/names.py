"""What Swarm and the registry accept as names, checked before anything is deployed (pure).

Rules as the daemon enforces them (moby/swarmkit manager/controlapi): service names are
DNS labels (``^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$``, at most 63 characters); config and
secret names match ``^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$``, at most 64.
Image references follow distribution/reference (what ``docker stack deploy`` checks).
"""

from __future__ import annotations

import re

SERVICE_NAME = re.compile(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")
MAX_SERVICE_NAME = 63
OBJECT_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")
MAX_OBJECT_NAME = 64

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*(?::{_TAG})?(?:@{_DIGEST})?$"
)
IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")


def image_problem(image: str) -> str | None:
    """Why ``image`` is not a valid reference, or None."""
    if IMAGE_ID.match(image) or IMAGE_REFERENCE.match(image):
        name = image.split("@")[0]
        if len(name.rsplit(":", 1)[0]) > 255:
            return "the repository name is longer than 255 characters"
        return None
    if image.endswith(":"):
        return "the tag after ':' is empty (an unset variable?)"
    if any(c.isupper() for c in image.split(":")[0].split("/")[-1]):
        return "repository names must be lower-case"
    return "not a valid image reference (registry/name:tag or name@sha256:...)"


def service_name_problem(stack: str, service: str) -> str | None:
    full = f"{stack}_{service}"
    if not SERVICE_NAME.match(full):
        return (
            f"the Swarm service name {full!r} is not valid: use letters, digits, '-' and "
            "'_' (no '.'), starting and ending with a letter or digit"
        )
    if len(full) > MAX_SERVICE_NAME:
        return (
            f"the Swarm service name {full!r} is {len(full)} characters; Swarm allows "
            f"{MAX_SERVICE_NAME}: shorten the stack or the service name"
        )
    return None


def stack_name_problem(stack: str) -> str | None:
    """Why no service could be named ``<stack>_<service>`` in Swarm, or None. The daemon
    checks only the full service name; a stack name that fails for any service is
    reported once, for the stack."""
    if not SERVICE_NAME.match(f"{stack}_x"):
        return (
            f"stack name {stack!r} is not valid for Swarm: use letters, digits, '-' and '_' "
            "(no '.'), starting with a letter or digit"
        )
    longest = MAX_SERVICE_NAME - 2  # room for "_" and a one-character service name
    if len(stack) > longest:
        return (
            f"stack name {stack!r} is {len(stack)} characters, too long for Swarm: each "
            f"service is named <stack>_<service> in at most {MAX_SERVICE_NAME} characters, "
            f"so a stack name can have at most {longest}; shorten it"
        )
    return None


def object_name(stack: str, key: str, digest: str) -> str | None:
    """``<stack>_<key>_<digest>`` within Swarm's 64 characters: the key is shortened if
    needed (the digest keeps names of different content apart). None if impossible."""
    room = MAX_OBJECT_NAME - len(stack) - len(digest) - 2
    if room < 1:
        return None
    name = f"{stack}_{key[:room]}_{digest}"
    return name if OBJECT_NAME.match(name) else None
