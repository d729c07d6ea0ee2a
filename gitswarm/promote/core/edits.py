"""Writing new image tags into an environment, changing nothing else (pure).

Called by the promotion code and the image automation with the target's rendered stack
(which says, per service, the final image and the file and line its ``image:`` came
from) and the files themselves. For each service whose image repository gets a new tag,
the tag is found where it was written:

- ``image: ${REGISTRY}/medianest/app:${APP_VERSION}``: the tag is the variable, so the
  edit is the ``APP_VERSION=`` line of ``environments/<env>/.env`` (appended when the
  variable only had a default);
- ``image: ${APP_IMAGE}``: the whole image is a variable: its line gets ``repo:tag``;
- ``image: 127.0.0.1:5000/medianest/app:1.2.0`` in the environment's own overlay: that
  scalar is replaced, in its quoting style.

ruamel.yaml composes the file to find the scalar's exact span; the new text is spliced
into the original characters, so every other byte (comments, indentation, quoting, key
order, line endings) stays as it was. A round-trip dump would re-flow the file; a splice
cannot. Each edited file is parsed again and must differ from the original in exactly
the edited value. A tag written in a file the environment shares with others (the base)
is refused: editing it would promote every environment at once.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from gitswarm.errors import GitswarmError, Problem, PromotionError
from gitswarm.model.config import Environment
from gitswarm.model.stack import DesiredStack
from gitswarm.promote.core.tags import TAG, ImageRef, parse_image
from gitswarm.render.envfile import parse_env_file
from gitswarm.repo.yamlsrc import parse_yaml

RULE = "promotion-edit"
RESERVED = ("GITSWARM_ENV", "GITSWARM_APP", "GITSWARM_STACK")

ReadFile = Callable[[str], bytes | None]  # repository path -> content, None when absent


@dataclass(frozen=True, slots=True)
class TagSite:
    """Where the tag of one service's image is written."""

    service: str
    repository: str
    current: str  # the tag deployed now
    kind: str  # "env" (a .env variable is the tag), "env-image" (the whole image), "yaml"
    file: str
    line: int | None
    variable: str | None = None  # kind env / env-image


@dataclass(frozen=True, slots=True)
class FileEdit:
    path: str
    before: bytes
    after: bytes


@dataclass(frozen=True)
class EditPlan:
    """What writing ``images`` into an environment changes."""

    edits: tuple[FileEdit, ...]
    changed: Mapping[str, tuple[str, str]]  # repository -> (old tag, new tag)
    services: tuple[str, ...]  # the services whose image changes
    sites: tuple[TagSite, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.edits


def _scan(raw: str) -> tuple[list[int], list[int], list[int]]:
    """Positions of ``/``, ``:`` and ``@`` outside ``${...}`` in a compose value."""
    slashes: list[int] = []
    colons: list[int] = []
    ats: list[int] = []
    depth = 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if raw.startswith("$$", i):
            i += 2
            continue
        if raw.startswith("${", i):
            depth += 1
            i += 2
            continue
        if ch == "}" and depth:
            depth -= 1
        elif depth == 0:
            if ch == "/":
                slashes.append(i)
            elif ch == ":":
                colons.append(i)
            elif ch == "@":
                ats.append(i)
        i += 1
    return slashes, colons, ats


def _variable(text: str) -> str | None:
    """The name, when ``text`` is exactly one ``$VAR`` / ``${VAR}`` / ``${VAR:-x}`` ..."""
    if text.startswith("${") and text.endswith("}") and text.count("${") == 1:
        inner = text[2:-1]
        name = inner
        for op in (":-", ":?", ":+", "-", "?", "+"):
            if op in inner:
                name = inner.split(op, 1)[0]
                break
        return name if name.replace("_", "a").isalnum() and not name[0].isdigit() else None
    if text.startswith("$") and not text.startswith("$$") and "$" not in text[1:]:
        name = text[1:]
        return name if name and name.replace("_", "a").isalnum() and not name[0].isdigit() else None
    return None


def _compose_node(text: str, file: str) -> Node:
    try:
        node = YAML(typ="rt").compose(io.StringIO(text))
    except YAMLError as exc:
        raise PromotionError(f"{file}: cannot read it to edit an image: {exc}") from None
    if not isinstance(node, Node):
        raise PromotionError(f"{file}: the file is empty")
    return node


def _find(node: Node, path: Iterable[str]) -> ScalarNode | None:
    for key in path:
        if not isinstance(node, MappingNode):
            return None
        found = None
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                found = v
        if found is None:
            return None
        node = found
    return node if isinstance(node, ScalarNode) else None


@dataclass
class _Planner:
    desired: DesiredStack
    env: Environment
    read: ReadFile
    texts: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def text(self, path: str) -> str:
        if path not in self.texts:
            data = self.read(path)
            if data is None:
                raise PromotionError(f"{path} does not exist")
            try:
                self.texts[path] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise PromotionError(f"{path} is not UTF-8; gitswarm will not edit it") from None
        return self.texts[path]

    def site(self, service: str, image: str) -> TagSite | None:
        ref = parse_image(image)
        loc = self.desired.source_map.locations.get(("services", service, "image"))
        if loc is None or loc.file is None:
            self.problems.append(
                Problem(f"service {service!r}: cannot tell where its image is written", rule=RULE)
            )
            return None
        scalar = _find(_compose_node(self.text(loc.file), loc.file), ("services", service, "image"))
        if scalar is None or scalar.style in ("|", ">"):
            self.problems.append(
                Problem(
                    f"service {service!r}: its image: is not a plain value here (an alias, a "
                    "merge key or a block scalar); write image: NAME:TAG or NAME:${VAR} in "
                    "the environment's overlay",
                    file=loc.file,
                    line=loc.line,
                    rule=RULE,
                )
            )
            return None
        raw = str(scalar.value)
        slashes, colons, ats = _scan(raw)
        if ats:
            self.problems.append(
                Problem(
                    f"service {service!r}: image {raw!r} is pinned by digest; a new tag would "
                    "not change what runs. Drop the @sha256:... to promote by tag",
                    file=loc.file,
                    line=loc.line,
                    rule=RULE,
                )
            )
            return None
        tag_at = colons[-1] if colons and (not slashes or colons[-1] > slashes[-1]) else None
        current = ref.tag or "latest"
        if tag_at is not None:
            written = raw[tag_at + 1 :]
            var = _variable(written)
            if var is not None:
                return TagSite(
                    service, ref.repository, current, "env", self.env.env_file, None, var
                )
            if "$" not in written:
                return TagSite(service, ref.repository, current, "yaml", loc.file, loc.line)
        else:
            var = _variable(raw)
            if var is not None:
                return TagSite(
                    service, ref.repository, current, "env-image", self.env.env_file, None, var
                )
        self.problems.append(
            Problem(
                f"service {service!r}: cannot write a tag into image {raw!r}: its tag must be "
                "written out (NAME:1.2.0) or be one variable (NAME:${APP_VERSION})",
                file=loc.file,
                line=loc.line,
                rule=RULE,
            )
        )
        return None


def plan_edits(
    desired: DesiredStack,
    env: Environment,
    images: Mapping[str, str],
    read: ReadFile,
) -> EditPlan:
    """The edits that give every service of ``desired`` whose image repository is in
    ``images`` that tag, in the files of environment ``env``. PromotionError naming
    file:line when a tag cannot be written without changing another environment or
    another image."""
    for repo, tag in images.items():
        if not TAG.match(tag):
            raise PromotionError(f"{repo}: {tag!r} is not a valid image tag")
    planner = _Planner(desired, env, read)
    sites: list[TagSite] = []
    by_var: dict[str, list[TagSite]] = {}
    for service, spec in sorted(desired.services.items()):
        image = spec.get("image") if isinstance(spec, Mapping) else None
        if not isinstance(image, str):
            continue
        ref = parse_image(image)
        # Every service is looked at: one that shares a tag variable with a promoted
        # image would change with it. Only a promoted one's problems count.
        noted = len(planner.problems)
        site = planner.site(service, image)
        if ref.repository not in images:
            del planner.problems[noted:]
        if site is None:
            continue
        if site.variable is not None:
            by_var.setdefault(site.variable, []).append(site)
        if ref.repository in images:
            sites.append(site)
    _problems_or_raise(planner.problems)
    # A variable shared with an image that is not promoted (or gets another tag) would
    # change it too.
    for var, users in by_var.items():
        wanted = {images.get(s.repository) for s in users if s.kind == "env"}
        promoted = [s for s in users if s.repository in images]
        if promoted and (None in wanted or len(wanted) > 1):
            others = ", ".join(
                f"{s.service} ({s.repository})" for s in users if images.get(s.repository) is None
            )
            planner.problems.append(
                Problem(
                    f"variable {var} is the tag of images that would not all get the same "
                    f"new tag ({others or 'different tags requested'}); give each image "
                    "its own variable",
                    file=env.env_file,
                    rule=RULE,
                )
            )
    _problems_or_raise(planner.problems)
    changes = [s for s in sites if s.current != images[s.repository]]
    if not changes:
        return EditPlan((), {}, (), tuple(sites))
    edits: dict[str, str] = {}
    env_values: dict[str, str] = {}
    for site in changes:
        new = images[site.repository]
        if site.kind == "yaml":
            if not site.file.startswith(env.path.rstrip("/") + "/"):
                raise PromotionError(
                    f"{site.file}:{site.line}: the tag of {site.repository} (service "
                    f"{site.service}) is written in a file every environment shares; "
                    f"promoting {env.name} must not change the others. Write the tag in "
                    f"{env.env_file} (image: {site.repository}:${{APP_VERSION}}) or in "
                    f"{env.path}/'s overlay",
                    problems=[
                        Problem(
                            "the tag is written in a shared file", site.file, site.line, rule=RULE
                        )
                    ],
                )
            text = edits.get(site.file, planner.text(site.file))
            edits[site.file] = _splice_tag(text, site, new)
        else:
            if site.variable is None or site.variable in RESERVED:
                raise PromotionError(f"{site.variable} is set by gitswarm; it cannot hold a tag")
            value = new if site.kind == "env" else f"{site.repository}:{new}"
            if env_values.get(site.variable, value) != value:
                raise PromotionError(f"variable {site.variable} would need two values")
            env_values[site.variable] = value
    if env_values:
        current = planner.read(env.env_file)
        text = (current or b"").decode("utf-8", errors="strict") if current else ""
        edits[env.env_file] = set_env_values(text, env_values, env.env_file)
    out: list[FileEdit] = []
    for path, text in sorted(edits.items()):
        before = planner.read(path) or b""
        after = text.encode("utf-8")
        if path.endswith((".yml", ".yaml")):
            _check_yaml(path, before, after)
        if after != before:
            out.append(FileEdit(path, before, after))
    changed = {s.repository: (s.current, images[s.repository]) for s in changes}
    services = tuple(sorted({s.service for s in changes}))
    return EditPlan(tuple(out), changed, services, tuple(sites))


def _problems_or_raise(problems: list[Problem]) -> None:
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise PromotionError(f"cannot write the new tags:\n{lines}", problems=problems)


def _splice_tag(text: str, site: TagSite, tag: str) -> str:
    scalar = _find(_compose_node(text, site.file), ("services", site.service, "image"))
    if scalar is None:
        raise PromotionError(f"{site.file}: services.{site.service}.image disappeared")
    start, end = scalar.start_mark.index, scalar.end_mark.index
    source = text[start:end]
    value = str(scalar.value)
    if scalar.style in ("'", '"'):
        quote = scalar.style
        if source != f"{quote}{value}{quote}":
            raise PromotionError(
                f"{site.file}:{site.line}: image of {site.service} uses escapes; write it "
                "without them so gitswarm can edit it"
            )
    elif source != value:
        raise PromotionError(
            f"{site.file}:{site.line}: image of {site.service} spans lines; write it on one"
        )
    _, colons, _ = _scan(value)
    new_value = value[: colons[-1] + 1] + tag
    new_source = f"{scalar.style}{new_value}{scalar.style}" if scalar.style else new_value
    return text[:start] + new_source + text[end:]


def _check_yaml(path: str, before: bytes, after: bytes) -> None:
    """The edited file parses, and differs from the original only in image values."""
    try:
        old = parse_yaml(before, path).data
        new = parse_yaml(after, path).data
    except GitswarmError as exc:  # pragma: no cover - a splice of a tag cannot break YAML
        raise PromotionError(f"{path}: the edit would break the file: {exc}") from None
    if _without_images(old) != _without_images(new):
        raise PromotionError(f"{path}: the edit would change more than image tags; refused")


def _without_images(data: Any) -> Any:
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        return data
    services = {
        name: ({k: v for k, v in spec.items() if k != "image"} if isinstance(spec, dict) else spec)
        for name, spec in data["services"].items()
    }
    return {**data, "services": services}


def set_env_values(text: str, values: Mapping[str, str], file: str) -> str:
    """``text`` (a .env) with each ``KEY=`` line of ``values`` given its new value; a key
    not set yet is appended. Every other character stays: comments, order, blank lines,
    ``\\r\\n`` endings, a missing final newline."""
    for key, value in values.items():
        if "\n" in value or "\r" in value or "\x00" in value:
            raise PromotionError(f"{key}: a value cannot contain a line break")
    parsed = parse_env_file(text.encode("utf-8"), file)
    lines = text.split("\n")
    appended: list[str] = []
    for key, value in values.items():
        number = parsed.lines.get(key)
        if number is None:
            appended.append(f"{key}={value}")
            continue
        line = lines[number - 1]
        ending = "\r" if line.endswith("\r") else ""
        body = line[:-1] if ending else line
        indent = body[: len(body) - len(body.lstrip())]
        lines[number - 1] = f"{indent}{key}={value}{ending}"
    out = "\n".join(lines)
    if appended:
        crlf = "\r\n" in text
        newline = "\r\n" if crlf else "\n"
        if out and not out.endswith("\n"):
            out += newline
        out += newline.join(appended) + newline
    check = parse_env_file(out.encode("utf-8"), file)
    for key, value in values.items():
        if check.values.get(key) != value:  # pragma: no cover - the edit is exact
            raise PromotionError(f"{file}: writing {key} did not take")
    return out


def current_images(desired: DesiredStack) -> dict[str, str]:
    """repository -> tag of every service's image (the first service's when several
    share a repository with different tags)."""
    out: dict[str, str] = {}
    for _service, spec in sorted(desired.services.items()):
        image = spec.get("image") if isinstance(spec, Mapping) else None
        if isinstance(image, str):
            ref: ImageRef = parse_image(image)
            out.setdefault(ref.repository, ref.tag or "latest")
    return out


__all__ = [
    "EditPlan",
    "FileEdit",
    "TagSite",
    "current_images",
    "plan_edits",
    "set_env_values",
]
