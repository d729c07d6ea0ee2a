"""Image references and tag ordering: which tag of a registry repository is the newest
under an image policy (pure). Called by the image automation (promote/automation.py)
with the tags the registry listed, and by the promotion code to read ``NAME:TAG``.

An image policy is Flux's ImagePolicy, in gitswarm.yml's words::

    policy: {semver: {range: ">=1.0.0 <2.0.0"}}   # or {numerical: {order: asc}}
                                                   # or {alphabetical: {order: asc}}
    filter_tags: {pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)$', extract: '$ts'}

- ``filter_tags.pattern`` is a regular expression (the ``regex`` module's syntax, which
  reads Flux's patterns: ``(?P<name>...)`` groups, classes, anchors). It comes from a
  commit, so every match is bounded in time (``MATCH_TIMEOUT``): a pattern that
  backtracks without end (``^(a|aa)+$`` over a long tag) is stopped and reported as a
  bad pattern, never hangs the agent. (RE2, linear by design, was the first choice; its
  Python binding and regopy's bundled RE2 corrupt each other's memory in one process.)
  ``extract`` expands ``$name``, ``${name}`` and ``$1`` from the match, like Go's
  ``Regexp.Expand``; the policy then orders the extracted values, and the tag they came
  from wins.
- ``semver``: tags that are versions (``1.2.3``, ``v1.2.3``, ``1.2.3-rc.1``) inside the
  range, in npm/Masterminds range syntax (``>=1.2 <2``, ``^1.2``, ``~1.2.3``, ``1.x``,
  ``a || b``; a comma means "and"). Prereleases only when the range names one.
- ``numerical``: values that are numbers; ``alphabetical``: any value. ``order: asc``
  (the default) takes the largest, ``desc`` the smallest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import regex
import semantic_version

from gitswarm.errors import UsageError

PolicyKind = Literal["semver", "numerical", "alphabetical"]
Order = Literal["asc", "desc"]

MATCH_TIMEOUT = 0.05  # seconds for one pattern against one tag

# A Docker tag: https://github.com/distribution/reference (at most 128 characters).
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Docker's reference grammar for a repository: [domain[:port]/]component(/component)*.
_DOMAIN_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(
    rf"^(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$"
)
_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_EXPAND = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """``repository[:tag][@digest]``: the repository includes the registry host."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def registry(self) -> str:
        """The registry host (``docker.io`` when the first part is not a host)."""
        first, _, rest = self.repository.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return first
        return "docker.io"

    @property
    def path(self) -> str:
        """The repository inside its registry: ``medianest/app``."""
        first, _, rest = self.repository.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return rest
        return self.repository if "/" in self.repository else f"library/{self.repository}"


def parse_image(text: str) -> ImageRef:
    """``127.0.0.1:5000/medianest/app:1.2.0@sha256:...`` -> its parts. The tag is what
    follows the last ``:`` after the last ``/`` (a registry port is not a tag)."""
    rest, _, digest = text.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return ImageRef(rest[:colon], rest[colon + 1 :] or None, digest or None)
    return ImageRef(rest, None, digest or None)


def parse_image_arg(text: str) -> ImageRef:
    """``--image NAME:TAG`` as a user gives it: ValueError unless it names a tag."""
    ref = parse_image(text.strip())
    if not ref.repository or ref.tag is None or ref.digest is not None:
        raise ValueError(
            f"--image {text!r} must be NAME:TAG (e.g. 127.0.0.1:5000/medianest/app:1.2.0)"
        )
    if not TAG.match(ref.tag):
        raise ValueError(f"--image {text!r}: {ref.tag!r} is not a valid tag")
    return ref


def parse_image_args(texts: Iterable[str]) -> tuple[ImageRef, ...]:
    """Each ``--image`` (CLI) or ``images`` entry (API) as parse_image_arg reads it; a
    UsageError (exit 2, 400) naming the first that is wrong."""
    refs = []
    for text in texts:
        try:
            refs.append(parse_image_arg(text))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return tuple(refs)


@dataclass(frozen=True, slots=True)
class TagFilter:
    pattern: str
    extract: str = ""

    def compiled(self) -> Any:
        """The compiled pattern; ValueError saying why when it is not valid."""
        if len(self.pattern) > 500:
            raise ValueError("a tag pattern is at most 500 characters")
        try:
            return regex.compile(self.pattern)
        except (regex.error, OverflowError, RecursionError) as exc:
            raise ValueError(f"pattern {self.pattern!r} is not a valid expression: {exc}") from None

    def search(self, program: Any, tag: str) -> Any:
        """``program.search(tag)``, bounded in time; ValueError when it runs too long."""
        try:
            return program.search(tag, timeout=MATCH_TIMEOUT)
        except TimeoutError:
            raise ValueError(
                f"pattern {self.pattern!r} took more than {MATCH_TIMEOUT}s on tag {tag!r}: "
                "it backtracks without end; simplify it"
            ) from None


def expand(template: str, match: Any) -> str:
    """Go's ``Regexp.Expand``: ``$name``, ``${name}``, ``$1`` from ``match``; an unknown
    name is the empty string."""

    def one(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        try:
            value = match.group(int(name)) if name.isdigit() else match.group(name)
        except (IndexError, KeyError, regex.error):
            return ""
        return value or ""

    return _EXPAND.sub(one, template.replace("$$", "\x00")).replace("\x00", "$")


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    kind: PolicyKind
    range: str = ""  # semver only
    order: Order = "asc"
    filter: TagFilter | None = None

    def spec(self) -> semantic_version.NpmSpec:
        """The semver range; ValueError when it is not one."""
        text = " ".join(part.strip() for part in self.range.split(",")) if self.range else "*"
        try:
            return semantic_version.NpmSpec(text)
        except ValueError as exc:
            raise ValueError(f"semver range {self.range!r} is not valid: {exc}") from None

    def candidates(self, tags: Iterable[str]) -> list[tuple[str, str]]:
        """(tag, value to order by) for every tag the filter keeps."""
        out: list[tuple[str, str]] = []
        program = self.filter.compiled() if self.filter else None
        extract = self.filter.extract if self.filter else ""
        for tag in tags:
            if not TAG.match(tag):
                continue
            if program is None:
                out.append((tag, tag))
                continue
            found = self.filter.search(program, tag) if self.filter else None
            if found is None:
                continue
            value = expand(extract, found) if extract else tag
            out.append((tag, value))
        return out

    def key(self, value: str) -> Any:
        """What ``value`` orders by under this policy; None when it does not qualify."""
        if self.kind == "semver":
            version = semver(value)
            if version is None or not self.spec().match(version):
                return None
            return version
        if self.kind == "numerical":
            try:
                number = float(value)
            except ValueError:
                return None
            return None if number != number else number  # NaN qualifies as nothing
        return value

    def newest(self, tags: Iterable[str]) -> str | None:
        """The tag this policy selects, or None when none qualifies. Ties (two tags with
        one value) go to the tag that sorts last, so the answer never depends on the
        order the registry listed them in."""
        best: tuple[Any, str] | None = None
        for tag, value in self.candidates(tags):
            key = self.key(value)
            if key is None:
                continue
            if best is None or self._better((key, tag), best):
                best = (key, tag)
        return best[1] if best else None

    def _better(self, one: tuple[Any, str], other: tuple[Any, str]) -> bool:
        if one[0] == other[0]:
            return one[1] > other[1]
        return bool(one[0] > other[0]) if self.order == "asc" else bool(one[0] < other[0])

    def newer(self, tag: str, than: str) -> bool:
        """Whether ``tag`` comes after ``than`` under this policy (a tag that does not
        qualify is never newer; any qualifying tag is newer than one that does not)."""
        mine = self._value(tag)
        theirs = self._value(than)
        if mine is None:
            return False
        if theirs is None:
            return True
        return self._better((mine, tag), (theirs, than)) and mine != theirs

    def _value(self, tag: str) -> Any:
        found = self.candidates([tag])
        return self.key(found[0][1]) if found else None


def semver(text: str) -> semantic_version.Version | None:
    """``1.2.3`` or ``v1.2.3`` (with prerelease and build) as a version; None otherwise."""
    if not _SEMVER.match(text):
        return None
    return semantic_version.Version(text.removeprefix("v"))


__all__ = [
    "REPOSITORY",
    "TAG",
    "ImagePolicy",
    "ImageRef",
    "TagFilter",
    "expand",
    "parse_image",
    "parse_image_arg",
    "parse_image_args",
    "semver",
]
