"""The one authorization decision of gitswarm's HTTP side: may this caller do this action
in this environment? Called by the JSON API (v1.py) and by the dashboard (dashboard/),
for the button it shows and again for the request it answers, so a page never offers
what its endpoint would refuse, and an endpoint refuses what a page does not offer.

    action            role needed in the environment
    view              viewer     (status, diff, history, operations, DORA, promotions)
    sync              deployer   (a sync now, or of an older revision: a rollback)
    rollback          deployer
    override-window   admin      (deploy through a closed deployment window)
    promote           deployer   (of the target environment; its dry run too)
    approve, reject   approver   (of the target environment), never the requester
    release-hold      deployer   (of the held environment)

Roles include others: ``deployer`` and ``approver`` are viewers too, ``admin`` is all
four (settings.ROLE_INCLUDES). An anonymous caller (``anonymous_read``) may only view.
Whoever requested a promotion decides nothing on it, whatever their roles (``requester``:
two people see every change to a gated environment, as the store's approvals count).
A refusal is a 403 and goes into the audit trail with the user (``enforce``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal, get_args

from gitswarm.api.auth import Caller
from gitswarm.api.errors import Forbidden, Unauthorized
from gitswarm.api.plumbing import call
from gitswarm.api.settings import AuditSink, Role
from gitswarm.errors import GitswarmError

log = logging.getLogger("gitswarm.api")

Action = Literal[
    "view", "sync", "rollback", "override-window", "promote", "approve", "reject", "release-hold"
]
ACTIONS: tuple[Action, ...] = get_args(Action)

REQUIRED_ROLE: Mapping[Action, Role] = {
    "view": "viewer",
    "sync": "deployer",
    "rollback": "deployer",
    "override-window": "admin",
    "promote": "deployer",
    "approve": "approver",
    "reject": "approver",
    "release-hold": "deployer",
}
DECISIONS: frozenset[Action] = frozenset({"approve", "reject"})


def permits(
    caller: Caller, action: Action, env: str | None, *, requester: str | None = None
) -> bool:
    """Whether ``caller`` may do ``action`` in ``env`` (None: in every environment);
    ``requester``: who asked for the promotion an approve/reject decides on."""
    role = REQUIRED_ROLE[action]
    if caller.anonymous and role != "viewer":
        return False
    if action in DECISIONS and requester is not None and caller.user == requester:
        return False
    return caller.allows(role, env)


def authorize(
    caller: Caller, action: Action, env: str | None, *, requester: str | None = None
) -> None:
    """Nothing if permitted; Unauthorized (401) for an anonymous caller, else Forbidden."""
    if permits(caller, action, env, requester=requester):
        return
    role = REQUIRED_ROLE[action]
    if caller.anonymous:
        raise Unauthorized(f"acting as {role} needs a bearer token or a signed-in user")
    caller.require(role, env)  # raises Forbidden with the usual wording
    raise Forbidden(f"{caller.user} requested this promotion and cannot {action} it")


async def enforce(
    caller: Caller,
    action: Action,
    env: str | None,
    *,
    target: str,
    audit: AuditSink,
    via: str,
    audit_action: str | None = None,
    requester: str | None = None,
) -> None:
    """``authorize``, and a refusal of a known caller is audited (if that fails, the
    refusal stands all the same)."""
    try:
        authorize(caller, action, env, requester=requester)
    except Forbidden:
        details: dict[str, Any] = {"via": via, "result": "forbidden"}
        try:
            await call(audit, caller.user, audit_action or action, target, details)
        except GitswarmError as exc:
            log.warning(
                "could not audit a refused %s of %s by %s: %s", action, target, caller.user, exc
            )
        raise
