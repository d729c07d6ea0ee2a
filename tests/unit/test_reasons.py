"""Reasons are types: errors.py's docstring draws exactly the Reason members and error
classes that exist, each reason with its verdict, and the verdict decides retrying."""

from __future__ import annotations

import re

import gitswarm.api.errors as api_errors
import gitswarm.errors as errors
from gitswarm.errors import GitswarmError, Reason

TREE_CHARS = re.compile(r"^[\s│├└─]*")


def _rows() -> list[tuple[int, str, list[str], str]]:
    """(depth, class or note, reasons, verdict) for each row of the docstring's table."""
    doc = errors.__doc__ or ""
    block = doc[doc.index("    class    ") : doc.index("Errors that come from")]
    rows: list[tuple[int, str, list[str], str]] = []
    for line in block.splitlines()[1:]:
        prefix = TREE_CHARS.match(line)
        assert prefix is not None
        text = line[prefix.end() :].rstrip()
        if not text or text in ("at the HTTP edge (api/errors.py)",) or text.startswith("no error"):
            continue
        columns = re.split(r"\s{2,}", text)
        if columns[0].startswith("|"):  # the reasons of the row above, continued
            depth, name, _, _ = rows[-1]
            columns = [name, *columns]
        else:
            depth = prefix.end()
        name, reasons, verdict = columns[0], columns[1], columns[2].split()[0]
        rows.append((depth, name, [r.strip() for r in reasons.strip("| ").split("|")], verdict))
    return rows


def _error_class(name: str) -> type[GitswarmError]:
    found = getattr(errors, name, None) or getattr(api_errors, name, None)
    assert isinstance(found, type) and issubclass(found, GitswarmError), name
    return found


def test_the_docstring_lists_every_reason_once_with_its_verdict() -> None:
    listed = [(reason, verdict) for _, _, reasons, verdict in _rows() for reason in reasons]
    names = [reason for reason, _ in listed]
    assert sorted(names) == sorted(r.value for r in Reason)
    assert len(names) == len(set(names))
    for reason, verdict in listed:
        assert Reason(reason).verdict == verdict, reason


def test_the_docstring_tree_is_the_class_tree_with_each_default_reason() -> None:
    drawn: set[type[GitswarmError]] = set()
    parents: list[tuple[int, type[GitswarmError]]] = []
    for depth, name, reasons, _ in _rows():
        if name.startswith("("):
            continue  # no class: a reason recorded without an error
        cls = _error_class(name)
        if cls not in drawn:
            assert cls.reason == reasons[0], name  # the first listed is the default
        drawn.add(cls)
        while parents and parents[-1][0] >= depth:
            parents.pop()
        if parents and cls.__module__ == "gitswarm.errors":
            assert cls.__bases__ == (parents[-1][1],), name
        parents.append((depth, cls))

    def every(cls: type[GitswarmError]) -> set[type[GitswarmError]]:
        out = {cls}
        for sub in cls.__subclasses__():
            if sub.__module__ in ("gitswarm.errors", "gitswarm.api.errors"):
                out |= every(sub)
        return out

    assert every(GitswarmError) == drawn


def test_only_transient_reasons_are_retried() -> None:
    assert Reason.with_verdict("transient") == {
        Reason.GIT_FAILED,
        Reason.SWARM_FAILED,
        Reason.LOCKED,
        Reason.BUSY,  # the agent refused to take on more sign-ins at once: try shortly
        Reason.STORE_FAILED,
        Reason.SANDBOX_FAILED,
        Reason.REGISTRY_FAILED,
        Reason.SECRET_PROVIDER_FAILED,  # the operator's secret store down or slow: try again
    }
    assert errors.SwarmError("x").retryable and errors.LockedError("x").retryable
    assert errors.SecretError("x", reason=Reason.SECRET_PROVIDER_FAILED).retryable
    assert not errors.SecretError("x", reason=Reason.SECRET_PROVIDER_REFUSED).retryable
    assert not errors.ConfigError("x", reason=Reason.TARGET_NOT_ALLOWED).retryable
    assert not errors.DeployRejected("x").retryable
    assert not errors.HealthError("x", reason=Reason.TASKS_FAILING).retryable
    assert not errors.SecretError("x", reason=Reason.SECRET_KEY_MISSING).retryable


def test_deploy_failures_are_what_reached_the_swarm_and_did_not_converge() -> None:
    assert Reason.with_verdict("deploy-failure") == {
        Reason.HEALTH_TIMEOUT,
        Reason.SWARM_ROLLED_BACK,
        Reason.TASKS_FAILING,
        Reason.UPDATE_PAUSED,
    }
    assert {r for r in Reason if r.degrades} == {
        *Reason.with_verdict("deploy-failure"),
        Reason.SWARM_FAILED,
    }


def test_a_reason_is_its_string_where_it_is_shown_and_stored() -> None:
    assert Reason.HEAL_LOOP == "HealLoop" and f"{Reason.HEAL_LOOP}" == "HealLoop"
    assert str(Reason.DEPLOY_REJECTED) == "DeployRejected"
    assert errors.PolicyError("x").as_dict()["reason"] == "PolicyViolation"
