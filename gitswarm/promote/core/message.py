"""The promotion commit's message: the seed's layout plus Git trailers (pure).

Called by the promotion code for every promotion commit (manual, approved, automatic,
image automation), so ``git log`` can be queried like any trailer
(``git log --format='%(trailers:key=Promoted-From)'``) and gitswarm's history can tell
what a commit promoted::

    Promote medianest to staging: 127.0.0.1:5000/medianest/app 1.1.0

    Source: development (3f2a9c1b7d40)
    Target: staging
    Images:
    - 127.0.0.1:5000/medianest/app: 1.0.0 -> 1.1.0

    Validation Results:
    - source-healthy: ✅ pass (Synced and Healthy at 3f2a9c1b7d40 for 12m)
    - policy: ✅ pass

    Promoted-From: development@3f2a9c1b7d40...
    Promoted-Images: 127.0.0.1:5000/medianest/app:1.1.0
    Gate-source-healthy: pass
    Gate-policy: pass
    Approved-By: alice
    Requested-By: bob
    Promotion-Id: 12

Every value is one line: anything that came from a request or a commit has its control
characters removed, so no value can start a trailer of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):\s?(.*)$")


def one_line(text: str, limit: int = 200) -> str:
    """``text`` without control characters, at most ``limit`` characters."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict, as recorded in the store and the commit."""

    name: str
    passed: bool
    summary: str = ""  # one line
    output: str = ""  # what the gate said (bounded); shown on failure, never committed
    seconds: float = 0.0
    skipped: bool = False  # not configured / not applicable: still recorded
    # refused by the operator's config before anything was sent or run (GateNotAllowed)
    refused: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "passed": self.passed,
            "summary": self.summary,
            "output": self.output,
            "seconds": round(self.seconds, 3),
            "skipped": self.skipped,
            "refused": self.refused,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> GateResult:
        return cls(
            name=str(data.get("name", "")),
            passed=bool(data.get("passed")),
            summary=str(data.get("summary", "")),
            output=str(data.get("output", "")),
            seconds=float(data.get("seconds", 0.0) or 0.0),  # type: ignore[arg-type]
            skipped=bool(data.get("skipped")),
            refused=bool(data.get("refused")),
        )


@dataclass(frozen=True)
class CommitFacts:
    app: str
    source: str
    target: str
    source_revision: str | None
    changed: Mapping[str, tuple[str, str]]  # repository -> (old tag, new tag)
    gates: Sequence[GateResult]
    requested_by: str
    approved_by: Sequence[str] = ()
    promotion_id: int | None = None
    kind: str = "promotion"  # or "image-automation"


def commit_message(facts: CommitFacts) -> str:
    images = sorted(facts.changed.items())
    short = ", ".join(f"{repo} {new}" for repo, (_old, new) in images)
    if facts.kind == "image-automation":
        subject = f"Update {facts.app} in {facts.target}: {short}"
    else:
        subject = f"Promote {facts.app} to {facts.target}: {short}"
    rev = (facts.source_revision or "")[:12]
    lines = [one_line(subject, 200), ""]
    if facts.kind == "image-automation":
        lines.append(f"Source: registry ({one_line(facts.source)})")
    else:
        lines.append(f"Source: {facts.source}" + (f" ({rev})" if rev else ""))
    lines.append(f"Target: {facts.target}")
    lines.append("Images:")
    lines += [f"- {repo}: {old} -> {new}" for repo, (old, new) in images]
    lines += ["", "Validation Results:"]
    if not facts.gates:
        lines.append("- (no gates configured)")
    for gate in facts.gates:
        mark = "✅ pass" if gate.passed else "❌ fail"
        if gate.skipped:
            mark = "➖ skipped"
        note = f" ({one_line(gate.summary, 160)})" if gate.summary else ""
        lines.append(f"- {gate.name}: {mark}{note}")
    lines.append("")
    source = facts.source if facts.kind != "image-automation" else "registry"
    lines.append(
        f"Promoted-From: {one_line(source)}" + (f"@{facts.source_revision}" if rev else "")
    )
    lines.append("Promoted-Images: " + ", ".join(f"{repo}:{new}" for repo, (_o, new) in images))
    for gate in facts.gates:
        verdict = "skipped" if gate.skipped else ("pass" if gate.passed else "fail")
        lines.append(f"Gate-{gate.name}: {verdict}")
    lines += [f"Approved-By: {one_line(user, 100)}" for user in facts.approved_by]
    lines.append(f"Requested-By: {one_line(facts.requested_by, 100)}")
    if facts.promotion_id is not None:
        lines.append(f"Promotion-Id: {facts.promotion_id}")
    return "\n".join(lines) + "\n"


def parse_trailers(message: str) -> dict[str, list[str]]:
    """The trailers of a commit message (its last paragraph, when every line of it is a
    ``Key: value``): key -> values in order."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}
    out: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line)
        if match is None:
            return {}
        out.setdefault(match.group(1), []).append(match.group(2).strip())
    return out


__all__ = ["CommitFacts", "GateResult", "commit_message", "one_line", "parse_trailers"]
