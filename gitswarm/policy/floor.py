"""Policies a commit cannot loosen for itself (pure): the operator's floor and the
settings of the revision deployed last, as extra layers of the policy gate.

The ``policies:`` of gitswarm.yml and ``policies/*.rego`` are read from the very commit
being deployed, so on their own a pusher could switch off, in one commit, the rule that
would stop that commit (``no_privileged_containers: off`` beside a service that mounts
/var/run/docker.sock). gate.py therefore evaluates the stack under the commit's own
settings *and* under each :class:`PolicyLayer` the caller passes, and keeps, for every
finding, the strictest verdict of any layer (:func:`combine`). Two layers exist:

- the **floor**: ``policies:`` per environment in the agent's own config
  (``gitswarm serve --config``; source/agentconfig.py reads it, and the Rego files of
  its ``rego.dir``, through :func:`parse_floor`). Only the rules it lists are pinned;
  their mode, parameters and exemptions are the operator's, and an exemption in
  gitswarm.yml does not exempt from them.
- the **deployed** layer: the environment's settings and Rego at the revision the agent
  deployed last (reconcile/sync.py). A loosening (a mode lowered, an exemption added, a
  Rego file removed or changed, a rule's parameters changed) is checked under the old
  settings too, so it takes effect only from the commit after it -- the loosening
  commit itself must pass the old rules, and is reported (:func:`loosenings`).

Like source/verdicts.py's ``settings_in_force`` for signatures; the floor is what a
two-commit attacker (loosen, then exploit) cannot get past.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from gitswarm.errors import ConfigError, Problem
from gitswarm.model.policy import Mode, PolicyResult
from gitswarm.model.position import Path
from gitswarm.policy.settings import REGO, RULES, PolicySettings, parse_settings

LayerKind = Literal["floor", "deployed"]
_RANK: Mapping[str, int] = {"off": 0, "warn": 1, "enforce": 2}

# The parameters of each rule, by PolicySettings attribute: a change of these in a rule
# that was on is checked under the old ones too.
_PARAMETERS: Mapping[str, str] = {
    "required_resource_limits": "resources",
    "no_privileged_containers": "privileged",
    "required_security_contexts": "security",
    "required_labels": "labels",
    "naming_conventions": "naming",
    "no_latest_tag": "images",
    "allowed_registries": "registries",
    "deployment_windows": "windows",
    "certificate_expiry": "certificates",
    "secret_max_age": "secret_age",
    REGO: "rego",
}


@dataclass(frozen=True)
class PolicyLayer:
    """Settings the stack is checked under besides the commit's own.

    ``rego_sources``: the Rego to evaluate under this layer (None: none): the floor's
    own files from the agent's host, the deployed revision's policies/*.rego.
    ``label`` says where the layer comes from, for the report: "the agent's config",
    "1a2b3c4d5e6f, the revision deployed last"."""

    kind: LayerKind
    label: str
    settings: PolicySettings
    rego_sources: Mapping[str, str] | None = None

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules this layer decides on: a floor, only those it does not leave off."""
        if self.kind == "floor":
            rego = (REGO,) if self.rego_sources and self.settings.mode(REGO) != "off" else ()
            return (*(r for r in RULES if self.settings.mode(r) != "off"), *rego)
        return (*RULES, REGO)


def stricter(a: Mode, b: Mode) -> Mode:
    """enforce > warn > off."""
    return a if _RANK[a] >= _RANK[b] else b


def modes_in_force(own: PolicySettings, layers: Iterable[PolicyLayer]) -> dict[str, Mode]:
    """The mode of every rule as the gate applies it: the strictest of the commit's own
    and of every layer that decides on the rule."""
    modes = dict(own.modes)
    for layer in layers:
        for rule in layer.rules:
            modes[rule] = stricter(modes[rule], layer.settings.mode(rule))
    return modes


def parse_floor(
    raw: object,
    *,
    env: str,
    file: str,
    positions: Mapping[Path, tuple[int, int]] | None = None,
    rego_sources: Mapping[str, str] | None = None,
) -> PolicyLayer:
    """One environment's ``policies:`` in the agent config: gitswarm.yml's syntax, but a
    rule the operator does not list is not pinned (``default`` is ``off`` unless given).
    ``rego_sources``: the floor's own Rego (read from the agent's host by the caller),
    evaluated with ``rego``'s mode and params. Raises ConfigError with the file and line
    of each mistake."""
    given: object = raw
    if isinstance(raw, Mapping) and "default" not in raw:
        given = {"default": "off", **raw}
    try:
        settings = parse_settings(
            given,  # type: ignore[arg-type]  # not a mapping: parse_settings says so
            env=env,
            file=file,
            positions=positions,
            prefix=f"policies.{env}",
        )
    except ConfigError as exc:
        raise invalid_floor(exc.problems) from None
    return PolicyLayer("floor", "the agent's config", settings, rego_sources or None)


def invalid_floor(problems: Sequence[Problem]) -> ConfigError:
    lines = "\n".join(f"  {p}" for p in problems)
    return ConfigError(
        f"invalid policy floor in the agent config (fix it, then restart the agent):\n{lines}",
        problems=problems,
    )


def loosenings(
    own: PolicySettings,
    layer: PolicyLayer,
    own_rego: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Where the commit's settings are looser than ``layer``'s, and what applies instead:
    one sentence each, for the report, the outcome, the audit and the notification."""
    notes: list[str] = []
    floor = layer.kind == "floor"
    for rule in layer.rules:
        held, mine = layer.settings.rule(rule), own.rule(rule)
        if _RANK[mine.mode] < _RANK[held.mode]:
            if floor:
                notes.append(
                    f"{rule}: {held.mode} (pinned by the agent's config; gitswarm.yml says "
                    f"{mine.mode})"
                )
            else:
                notes.append(
                    f"{rule}: {held.mode} (as at {layer.label}; this commit says {mine.mode}, "
                    "which applies only from the commit after it is deployed)"
                )
        if held.mode == "off":
            continue
        for service in sorted(set(mine.exempt) - set(held.exempt)):
            why = (
                "the rule is pinned by the agent's config, which does not exempt it"
                if floor
                else f"not exempt at {layer.label}; applies from the commit after this one"
            )
            notes.append(f"{rule}: the exemption of service {service!r} does not apply ({why})")
        attribute = _PARAMETERS.get(rule)
        if (
            not floor
            and attribute is not None
            and getattr(own, attribute) != getattr(layer.settings, attribute)
        ):
            notes.append(
                f"{rule}: its settings changed; checked under those at {layer.label} too "
                "until this commit is deployed"
            )
    if not floor and layer.rego_sources is not None and own.mode(REGO) != "off":
        mine_rego = own_rego or {}
        for path in sorted(layer.rego_sources):
            if path not in mine_rego:
                notes.append(
                    f"{path}: removed by this commit; still evaluated as at {layer.label} "
                    "until this commit is deployed"
                )
            elif mine_rego[path] != layer.rego_sources[path]:
                notes.append(
                    f"{path}: changed by this commit; evaluated as at {layer.label} too "
                    "until this commit is deployed"
                )
    return tuple(notes)


# A finding, whichever layer found it: the same rule about the same service saying the
# same thing. The strictest verdict on it stands.
_Key = tuple[str, str | None, str]


def severity(result: PolicyResult) -> int:
    """error > enforced failure > warning > exempt / overridden."""
    if result.status == "error":
        return 3
    if result.status == "fail":
        return 2 if result.mode == "enforce" else 1
    return 0


def combine(
    own: Sequence[PolicyResult], layered: Sequence[tuple[str, Sequence[PolicyResult]]]
) -> list[PolicyResult]:
    """``own`` with each layer's results (label, results) merged in: for each finding the
    strictest verdict; a finding a layer judges more strictly says which layer that was.
    Never less strict than any list: every blocking result of any of them blocks."""
    out: dict[_Key, PolicyResult] = {}
    for label, results in [("", own), *layered]:
        for result in results:
            key = (result.rule, result.service, result.detail)
            mine = out.get(key)
            if mine is not None and severity(result) <= severity(mine):
                continue
            if label and result.status in ("fail", "error"):
                result = replace(result, detail=f"{result.detail} [{label}]")
            out[key] = result
    return list(out.values())


__all__ = [
    "PolicyLayer",
    "combine",
    "invalid_floor",
    "loosenings",
    "modes_in_force",
    "parse_floor",
    "severity",
    "stricter",
]
