"""Compose files to one merged Compose document, exactly as ``docker stack config -c
first.yml -c second.yml ...`` computes it (pure).

Called by render/stack.py. Per file, in the CLI's order: parse (yaml.v3 semantics,
repo/yamlsrc.py), interpolate (render/interpolate.py), validate against the CLI's schema
for the file's ``version`` (render/schema.py), decode into the CLI's types with its
transform hooks (render/composetypes.py); then merge the files left to right with the
CLI's mergo rules (render/gotypes.py) and print the result as the CLI prints it.

What the CLI's merge does, in short (the parity suite, tests/integration/
test_render_parity.py, checks every rule against the real ``docker stack config``):

- services merge by name; scalars of later files win unless empty (so ``init: false``
  or ``replicas`` absent never switch off a base value; ``replicas: 0`` does win);
- ``environment``, ``labels``, ``deploy.labels``, ``sysctls``, ``logging.options`` and
  ``x-*`` mappings merge key by key (an empty ``environment`` value does not override);
- ``ports`` (by published port), ``volumes`` (by target), ``secrets`` and ``configs``
  (by source) merge entry by entry and come out sorted — but only when the earlier file
  has that list at all;
- ``command``/``entrypoint`` are replaced; every other list is concatenated
  (``cap_add``, ``dns``, ``placement.constraints``, and even ``healthcheck.test``);
- top-level ``networks``, ``volumes``, ``secrets``, ``configs`` are replaced per name;
  top-level ``x-*`` keys and ``version`` come from the first file only.

Paths in ``file:`` and ``env_file:`` are relative to the FIRST file's folder, as in the
CLI, and must stay inside the repository. Deliberate differences: bind mounts with a
relative or ``~`` source are refused (they would point into the agent's checkout), and
``env_file:`` is resolved into ``environment`` and dropped from the output (the deployed
file lives in a temporary folder where those paths do not exist).

Why one file (over 450 lines): the merge and its print are one mirror of the CLI's
loader; split, the order rules above would be read in two places.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitswarm.errors import GitswarmError, Problem, YamlError
from gitswarm.model.position import Path, SourceLocation, nearest
from gitswarm.model.stack import PROVIDER_FIELD
from gitswarm.model.tree import join_path, rule_of
from gitswarm.render import composetypes as ct
from gitswarm.render.envfile import parse_env_file
from gitswarm.render.golang import sprint
from gitswarm.render.gotypes import (
    DecodeError,
    GoType,
    decode,
    encode,
    encode_any,
    map_of,
    merge,
)
from gitswarm.render.interpolate import interpolate
from gitswarm.render.schema import DEFAULT_VERSION, normalize_version, validate_compose
from gitswarm.repo.yamlsrc import Document, parse_yaml

Reader = Callable[[str], bytes]  # repository path -> bytes; raises PathError

RULE_SHAPE = "compose-shape"
RULE_VERSION = "compose-version"
RULE_LOAD = "compose-value"
RULE_PATH = "path-outside-repo"
RULE_BIND = "bind-mount-relative"

_SECTIONS: dict[str, GoType] = {
    "networks": ct.NETWORK,
    "volumes": ct.VOLUME,
    "secrets": ct.FILE_OBJECT,
    "configs": ct.FILE_OBJECT,
}
# (list-form mapping fields whose items become keys, for the source map)
_LIST_MAPPINGS = ("environment", "labels", "sysctls", "extra_hosts")


@dataclass
class Merged:
    """The merged compose model: typed values (render/gotypes.py) plus where they came from."""

    version: str = DEFAULT_VERSION
    # the version the first file names, None for none or just "3" (the latest 3.x)
    written_version: str | None = None
    services: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    documents: list[Document] = field(default_factory=list)
    locations: dict[Path, SourceLocation] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        """The document ``docker stack config`` prints, as plain data."""
        out: dict[str, Any] = {
            "version": self.version,
            "services": {n: encode(self.services[n], ct.SERVICE) for n in sorted(self.services)},
        }
        for section in ("networks", "volumes", "secrets", "configs"):
            entries = self.sections.get(section) or {}
            if entries:
                kind = _SECTIONS[section]
                out[section] = {n: encode(entries[n], kind) for n in sorted(entries)}
        for key in sorted(self.extras):
            out[key] = encode_any(self.extras[key])
        return out

    def locate(self, path: Path) -> SourceLocation | None:
        return nearest(self.locations, path)

    def problem(self, path: Path, message: str, rule: str) -> Problem:
        where = self.locate(path)
        if where is None:
            return Problem(message, rule=rule)
        return Problem(message, file=where.file, line=where.line, column=where.column, rule=rule)


@dataclass
class _File:
    doc: Document
    version: str
    written_version: str | None = None
    services: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def _decode(doc: Document, data: Any, kind: GoType, path: Path) -> Any:
    try:
        return decode(data, kind, path)
    except DecodeError as exc:
        raise _LoadProblem(
            *(doc.problem(e.path, f"{_dotted(e.path)}: {e.message}", RULE_LOAD) for e in exc.errors)
        ) from None


class _LoadProblem(Exception):
    """What stops one service or top-level object from loading: every problem found."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__(str(problems[0]))
        self.problems = list(problems)


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _x_keys(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k.startswith("x-")}


class _Loader:
    def __init__(self, variables: Mapping[str, str], working_dir: str, read: Reader) -> None:
        self.variables = variables
        self.working_dir = working_dir
        self.read = read
        self.problems: list[Problem] = []
        self.first_version: str | None = None  # every file must have the first one's

    def file(self, path: str, raw: bytes, first: bool) -> _File | None:
        try:
            doc = parse_yaml(raw, path)
        except YamlError as exc:
            self.problems.extend(exc.problems)
            return None
        if not isinstance(doc.data, dict):
            self.problems.append(
                doc.problem(
                    (),
                    f"a compose file must be a mapping (services:, networks:, ...), but this "
                    f"one is {_shape(doc.data)}",
                    RULE_SHAPE,
                )
            )
            return None
        raw_version = doc.data.get("version")
        version = normalize_version("" if raw_version is None else sprint(raw_version))
        if "version" not in doc.data:
            version = DEFAULT_VERSION
        if first:
            self.first_version = version
        first_version = self.first_version
        if first_version is not None and version != first_version:
            self.problems.append(
                doc.problem(
                    ("version",),
                    f"version {version} differs from the first compose file's {first_version}; "
                    "all files of a stack need the same version (or none)",
                    RULE_VERSION,
                )
            )
            return None
        interpolated = interpolate(doc, self.variables)
        self.problems.extend(interpolated.problems)
        data: dict[str, Any] = interpolated.data
        schema_problems = [
            problem
            for where, problem in validate_compose(doc, data, version)
            if not any(where[: len(bad)] == bad for bad in interpolated.failed)
        ]
        self.problems.extend(schema_problems)
        if interpolated.problems or schema_problems:
            return None
        written = None if raw_version is None or sprint(raw_version) in ("", "3") else version
        loaded = _File(doc=doc, version=version, written_version=written, extras=_x_keys(data))
        problems: list[Problem] = []  # every service and object, not only the first bad one
        for name, service in (data.get("services") or {}).items():
            try:
                loaded.services[name] = self.service(doc, name, service or {})
            except _LoadProblem as exc:
                problems.extend(exc.problems)
        for section, kind in _SECTIONS.items():
            loaded.sections[section] = self.section(
                doc, section, kind, data.get(section) or {}, problems
            )
        if problems:
            self.problems.extend(problems)
            return None
        return loaded

    def service(self, doc: Document, name: str, data: dict[str, Any]) -> Any:
        base: Path = ("services", name)
        service = _decode(doc, data, ct.SERVICE, base)
        service["__extras__"] = _x_keys(data) or None
        problems: list[Problem] = []
        try:
            self.resolve_environment(doc, name, service)
        except _LoadProblem as exc:
            problems.extend(exc.problems)
        for index, volume in enumerate(service["volumes"] or []):
            if volume["type"] != "bind":
                continue
            where = (*base, "volumes", index)
            source = volume["source"]
            if source == "":
                problems.append(
                    doc.problem(where, f"{_dotted(where)}: a bind mount needs a source", RULE_LOAD)
                )
            elif not source.startswith("/"):
                problems.append(
                    doc.problem(
                        where,
                        f"{_dotted(where)}: bind mount source {source!r} is relative to the "
                        "checkout gitswarm renders from, which does not exist on the swarm's "
                        "nodes; use an absolute host path or a named volume",
                        RULE_BIND,
                    )
                )
        if problems:
            raise _LoadProblem(*problems)
        return service

    def resolve_environment(self, doc: Document, name: str, service: dict[str, Any]) -> None:
        lookup = self.variables.get
        environment: dict[str, str | None] = {}

        def update(values: Mapping[str, str | None]) -> None:
            for key, value in values.items():
                looked = lookup(key)
                environment[key] = looked if (not value) and looked is not None else value

        problems: list[Problem] = []
        for index, entry in enumerate(service["env_file"] or []):
            where = ("services", name, "env_file", index)
            try:
                path = self.resolve(doc, where, entry)
                raw = self.read(path)
            except _LoadProblem as exc:
                problems.extend(exc.problems)
                continue
            except GitswarmError as exc:
                problems.append(doc.problem(where, f"{_dotted(where)}: {exc}", rule_of(exc)))
                continue
            parsed = parse_env_file(raw, path, lookup=lookup)
            problems.extend(parsed.problems)
            update(parsed.values)
        if problems:
            raise _LoadProblem(*problems)
        update(service["environment"] or {})
        service["environment"] = environment
        service["env_file"] = None  # resolved: the deployed file must not refer to it

    def section(
        self,
        doc: Document,
        section: str,
        kind: GoType,
        data: dict[str, Any],
        problems: list[Problem],
    ) -> dict[str, Any]:
        """The objects of one top-level section; the problems of each go to ``problems``."""
        out: dict[str, Any] = {}
        for name, raw in data.items():
            try:
                out[name] = self.entry(doc, section, kind, name, raw)
            except _LoadProblem as exc:
                problems.extend(exc.problems)
        return out

    def entry(self, doc: Document, section: str, kind: GoType, name: str, raw: Any) -> Any:
        """One network, volume, secret or config; a _LoadProblem if it cannot load."""
        where: Path = (section, name)
        obj = _decode(doc, raw, kind, where)
        external = obj["external"]
        if section in ("secrets", "configs"):
            obj["__extras__"] = _x_keys(raw) or None
            noun = section[:-1]
            if external["external"]:
                self.external_name(doc, where, noun, obj)
            elif obj["driver"]:
                if obj["file"]:
                    raise _LoadProblem(
                        doc.problem(
                            where,
                            f"{noun} {name}: {noun}.driver and {noun}.file conflict; "
                            f"only use {noun}.driver",
                            RULE_LOAD,
                        )
                    )
            elif not obj["file"] and not (
                section == "secrets" and PROVIDER_FIELD in (obj["__extras__"] or {})
            ):
                raise _LoadProblem(
                    doc.problem(
                        where,
                        f"{noun} {name} needs `file:` (a file in this repository) or "
                        "`external: true` (an object that already exists)"
                        + (
                            f", or `{PROVIDER_FIELD}: {{name: PROVIDER, key: KEY}}` (a value "
                            "from the operator's secret provider)"
                            if section == "secrets"
                            else ""
                        ),
                        RULE_LOAD,
                    )
                )
            elif not obj["file"]:
                pass  # a provider's secret: render/stack.py checks the reference
            else:
                obj["file"] = self.resolve(doc, (*where, "file"), obj["file"])
        elif external["external"]:
            if section == "volumes":
                for key in ("driver", "driver_opts", "labels"):
                    if obj[key]:
                        raise _LoadProblem(
                            doc.problem(
                                where,
                                f'conflicting parameters "external" and "{key}" specified '
                                f'for volume "{name}"',
                                RULE_LOAD,
                            )
                        )
            self.external_name(doc, where, section[:-1], obj)
            obj["__extras__"] = _x_keys(raw) or None
        return obj

    def resolve(self, doc: Document, where: Path, written: str) -> str:
        """A ``file:``/``env_file:`` path, relative to the first compose file's folder (as
        the CLI resolves it), as a repository path; a problem if it leaves the repository."""
        folder = f"{self.working_dir}/" if self.working_dir else "the repository root"
        try:
            return join_path(self.working_dir, written)
        except GitswarmError:
            if written.startswith("/") or written[1:2] == ":":
                why = "is an absolute path; files must be inside the repository, written"
            else:
                why = "leaves the repository: paths are"
            message = (
                f"{_dotted(where)}: {written!r} {why} relative to {folder} (the folder of "
                "the first compose file)"
            )
            raise _LoadProblem(doc.problem(where, message, RULE_PATH)) from None

    def external_name(self, doc: Document, where: Path, noun: str, obj: dict[str, Any]) -> None:
        external = obj["external"]
        if external["name"]:
            if obj["name"]:
                raise _LoadProblem(
                    doc.problem(
                        where,
                        f"{noun} {where[-1]}: {noun}.external.name and {noun}.name conflict; "
                        f"only use {noun}.name",
                        RULE_LOAD,
                    )
                )
            obj["name"] = external["name"]
            obj["external"] = {**external, "name": ""}
        elif not obj["name"]:
            obj["name"] = str(where[-1])


def _shape(data: Any) -> str:
    if data is None:
        return "empty"
    if isinstance(data, list):
        return "a list"
    if isinstance(data, str):
        return f"a single string ({data[:30]!r})"
    return f"a single value ({data!r})"


def _record_locations(merged: Merged, doc: Document) -> None:
    for path, (line, column) in doc.positions.items():
        if any(isinstance(p, int) for p in path):
            # items of list-form mappings ("- KEY=value") locate their key
            if (
                len(path) == 4
                and path[0] == "services"
                and path[2] in _LIST_MAPPINGS
                and isinstance(path[3], int)
            ):
                item = _get(doc.data, path)
                if isinstance(item, str):
                    key = item.partition("=")[0] if path[2] != "extra_hosts" else item
                    merged.locations[(*path[:3], key)] = SourceLocation(doc.file, line, column)
            if len(path) == 5 and path[2] == "deploy" and path[3] == "labels":
                item = _get(doc.data, path)
                if isinstance(item, str):
                    merged.locations[(*path[:4], item.partition("=")[0])] = SourceLocation(
                        doc.file, line, column
                    )
            continue
        merged.locations[path] = SourceLocation(doc.file, line, column)


def _get(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _merge_message(where: Path, exc: DecodeError) -> str:
    return (
        f"{_dotted(where)}: cannot merge this file's value over the earlier files' ({exc.message})"
    )


def load_compose(
    sources: Sequence[tuple[str, bytes]], variables: Mapping[str, str], read: Reader
) -> Merged:
    """Merge compose files (repository path, bytes) in order. Problems are collected in
    ``Merged.problems``; when there are any, the merged model is incomplete."""
    merged = Merged()
    if not sources:
        merged.problems.append(Problem("no compose files to render", rule=RULE_SHAPE))
        return merged
    loader = _Loader(variables, posixpath.dirname(sources[0][0]), read)
    files: list[_File] = []
    for index, (path, raw) in enumerate(sources):
        loaded = loader.file(path, raw, first=index == 0)
        if loaded is not None:
            files.append(loaded)
            merged.documents.append(loaded.doc)
    merged.problems.extend(loader.problems)
    if merged.problems:
        return merged
    base = files[0]
    merged.version = base.version
    merged.written_version = base.written_version
    merged.services = dict(base.services)
    merged.sections = {k: dict(v) for k, v in base.sections.items()}
    merged.extras = dict(base.extras)
    for override in files[1:]:
        for name, service in override.services.items():
            current = merged.services.get(name)
            try:
                merged.services[name] = (
                    service if current is None else merge(current, service, ct.SERVICE)
                )
            except DecodeError as exc:  # a list over a scalar in an x- extension, ...
                where = ("services", name, *exc.path)
                merged.problems.append(
                    override.doc.problem(where, _merge_message(where, exc), RULE_LOAD)
                )
        for section, kind in _SECTIONS.items():
            try:
                merged.sections[section] = merge(
                    merged.sections.get(section) or {},
                    override.sections.get(section) or {},
                    map_of(kind),
                )
            except DecodeError as exc:
                where = (section, *exc.path)
                merged.problems.append(
                    override.doc.problem(where, _merge_message(where, exc), RULE_LOAD)
                )
    for loaded in files:
        _record_locations(merged, loaded.doc)
    return merged
