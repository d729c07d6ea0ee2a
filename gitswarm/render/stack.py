"""From a Tree at a revision to the exact stack that will be deployed (pure).

``render_stack`` is what the agent and the CLI call for one application in one
environment. The pipeline, each step collecting every problem it finds:

1. variables: the environment's ``.env`` (Docker's env-file syntax, render/envfile.py)
   plus gitswarm's own ``GITSWARM_ENV``, ``GITSWARM_APP``, ``GITSWARM_STACK``;
2. the application's compose files, merged and interpolated exactly as
   ``docker stack config`` does (render/compose.py);
3. checks: every service has a valid image, Swarm-valid names, every secret, config,
   network and volume a service uses is declared, no value that Docker's conversion to
   Swarm specs or the engine would refuse (render/swarmspec.py), no service name is taken
   by another application deployed to the same stack; nothing crosses environments: no
   external object (or named network/volume) whose name belongs to another environment's
   stack, no secret file from another environment's folder (stack names that collide
   across environments are refused by repo/config.py);
4. configs and secrets with ``file:`` become Swarm objects named ``<stack>_<key>_<hash>``
   (a content hash; for secrets a keyed hash, so names reveal nothing about values),
   declared ``external: true`` under that name — gitswarm creates them before deploying,
   so no secret is ever written to disk. Secrets must be ``*.age`` files, decrypted in
   memory with the environment's identity;
5. gitswarm's labels on every service (service labels, never container labels, so a
   new revision restarts nothing): owner, app, env, spec-hash (of the rendered service
   including the names of the config/secret versions it uses; the revision excluded),
   and the revision;
6. the file's ``version``: the lowest Compose version, not below the first file's (any
   if it names none), whose schema accepts the result (render/schema.py
   ``deployable_version``). A 3.0-3.4 file deploys as 3.5 once it has an external
   network, a config or a secret, because the result names them (``name:``), which
   only 3.5 allows; an unversioned file as the lowest version that fits, so that older
   Docker CLIs (which know neither 3.13 nor files without a version) deploy it too.
   The values are the same either way.

Variable precedence: gitswarm's own variables cannot be overridden (defining one in
``.env`` is an error); everything else comes from ``.env``. The agent's process
environment is never read, so a render depends on the commit alone.

Limits (bytes): compose files, ``.env`` and ``env_file`` 1 MiB each; a config or secret
file 1 MiB as read from Git, and under Swarm's 500 KiB once decrypted.

Why one file (over 450 lines): the steps above are one pipeline and its helpers, read
top to bottom.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitswarm.errors import (
    GitswarmError,
    InputError,
    InterpolationError,
    PathError,
    Problem,
    Reason,
    RenderError,
    SecretError,
    UsageError,
    ValidationError,
    YamlError,
)
from gitswarm.model.config import Application, Environment, RepoConfig
from gitswarm.model.position import problem_at
from gitswarm.model.stack import (
    LABEL_APP,
    LABEL_ENV,
    LABEL_OBJECT_KEY,
    LABEL_OWNER,
    LABEL_PROVIDER,
    LABEL_REVISION,
    LABEL_SPEC_HASH,
    LABEL_STACK,
    OWNER_VALUE,
    PROVIDER_FIELD,
    DesiredStack,
    ObjectMaterial,
    ProviderRef,
    SourceMap,
    provider_key_problem,
)
from gitswarm.model.tree import (
    RULE_MISSING,
    RULE_NOT_FILE,
    RULE_OUTSIDE,
    RULE_TOO_LARGE,
    Tree,
    normalize_path,
    rule_of,
)
from gitswarm.render import composetypes as ct
from gitswarm.render.compose import Merged, load_compose
from gitswarm.render.envfile import parse_env_file
from gitswarm.render.gotypes import zero
from gitswarm.render.names import (
    image_problem,
    object_name,
    service_name_problem,
    stack_name_problem,
)
from gitswarm.render.schema import deployable_version
from gitswarm.render.secrets import Identity, keyed_digest
from gitswarm.render.swarmspec import swarm_spec_problems
from gitswarm.repo.config import check_name
from gitswarm.repo.yamlsrc import parse_yaml

MAX_COMPOSE_BYTES = 1024 * 1024
MAX_ENV_BYTES = 1024 * 1024
MAX_OBJECT_FILE_BYTES = 1024 * 1024
MAX_OBJECT_DATA_BYTES = 500 * 1024  # Swarm refuses configs/secrets of 500 KiB or more
DIGEST_CHARS = 12
AGE_HEADERS = (b"age-encryption.org/v1\n", b"-----BEGIN AGE ENCRYPTED FILE-----")
RESERVED_VARIABLES = ("GITSWARM_ENV", "GITSWARM_APP", "GITSWARM_STACK")
RESERVED_LABEL_PREFIX = "io.gitswarm."

RULE_REFERENCE = "reference"
RULE_IMAGE = "image"
RULE_NAME = "name"
RULE_SECRET = "secret"  # noqa: S105 - a rule name, not a password
RULE_OBJECT = "config-secret"
RULE_LABEL = "reserved-label"
RULE_DUPLICATE = "duplicate-service"
RULE_CROSS_ENV = "cross-environment"

# Which error class (and so which stable reason) a render failure gets, by rule.
_ERROR_BY_RULE: dict[str, type[InputError]] = {
    "yaml": YamlError,
    "variable-unset": InterpolationError,
    "variable-required": InterpolationError,
    RULE_OUTSIDE: PathError,
    RULE_MISSING: RenderError,
    RULE_NOT_FILE: RenderError,
    RULE_TOO_LARGE: RenderError,
    RULE_SECRET: SecretError,
}


# What the name of a provider secret ends in when its value is not at hand (the CLI's
# pre-commit commands never run the operator's providers): never deployed.
UNRESOLVED = "unresolved"
# Provider values by (provider, key); None: not available here (placeholders).
Provided = Mapping[tuple[str, str], bytes]


class ProviderValuesNeeded(SecretError):
    """The render needs these provider values first (reconcile/rendering.py resolves them
    and renders again); only raised when nothing else is wrong with the stack."""

    reason = Reason.SECRET_PROVIDER_MISSING

    def __init__(self, refs: Sequence[ProviderRef]) -> None:
        names = ", ".join(f"{r.secret} ({r.provider}:{r.key})" for r in refs)
        super().__init__(f"the values of provider secrets {names} were not resolved")
        self.refs = tuple(refs)


@dataclass(frozen=True)
class _Context:
    config: RepoConfig
    app: Application
    env: Environment
    stack: str


def _fail(problems: Sequence[Problem], context: str) -> None:
    if not problems:
        return
    kinds = {_ERROR_BY_RULE.get(p.rule or "", ValidationError) for p in problems}
    if len(kinds) == 1:
        error: type[InputError] = kinds.pop()
    elif all(issubclass(k, RenderError) for k in kinds):
        error = RenderError
    else:
        error = ValidationError
    lines = "\n".join(f"  {p}" for p in problems)
    raise error(f"{context}: {len(problems)} problem(s):\n{lines}", problems=problems)


def _app_problem(app: Application, path: tuple[str | int, ...], message: str, rule: str) -> Problem:
    return problem_at(app.source, app.positions, path, message, rule)


def variables_for(tree: Tree, context: _Context, problems: list[Problem]) -> dict[str, str]:
    """The interpolation variables of one application in one environment."""
    own = {
        "GITSWARM_ENV": context.env.name,
        "GITSWARM_APP": context.app.name,
        "GITSWARM_STACK": context.stack,
    }
    variables: dict[str, str] = {}
    env_file = context.env.env_file
    if tree.exists(env_file):
        try:
            parsed = parse_env_file(tree.read(env_file, limit=MAX_ENV_BYTES), env_file)
        except GitswarmError as exc:
            problems.append(Problem(str(exc), file=env_file, rule=rule_of(exc)))
            return {**variables, **own}
        problems.extend(parsed.problems)
        for name in RESERVED_VARIABLES:
            if name in parsed.values:
                problems.append(
                    Problem(
                        f"{name} is set by gitswarm ({own[name]!r}) and cannot be defined here; "
                        "remove the line",
                        file=env_file,
                        line=parsed.lines[name],
                        rule="reserved-variable",
                    )
                )
        variables.update(parsed.values)
    variables.update(own)
    return variables


def _compose_sources(
    tree: Tree, context: _Context, problems: list[Problem]
) -> list[tuple[str, bytes]]:
    sources = []
    app = context.app
    for index, written in enumerate(app.files):
        path = written.replace("{env}", context.env.name).replace("{app}", app.name)
        where = ("files", index)
        try:
            clean = normalize_path(path)
        except PathError as exc:
            problems.append(
                _app_problem(app, where, f"application {app.name!r}: {exc}", "path-outside-repo")
            )
            continue
        if not tree.exists(clean):
            problems.append(
                _app_problem(
                    app,
                    where,
                    f"application {app.name!r} lists compose file {clean!r}, which does not "
                    f"exist{'' if tree.revision is None else ' in commit ' + tree.revision[:12]}; "
                    "create it or fix the files: list",
                    RULE_MISSING,
                )
            )
            continue
        try:
            sources.append((clean, tree.read(clean, limit=MAX_COMPOSE_BYTES)))
        except GitswarmError as exc:
            problems.append(_app_problem(app, where, f"compose file: {exc}", rule_of(exc)))
    return sources


def _check_services(merged: Merged, context: _Context, problems: list[Problem]) -> None:
    sections = merged.sections
    if not merged.services:
        problems.append(
            Problem(
                f"application {context.app.name!r} has no services in {context.env.name}",
                file=context.app.source,
                rule="no-services",
            )
        )
    lowered: dict[str, str] = {}
    for name in sorted(merged.services):
        service = merged.services[name]
        base = ("services", name)
        naming = service_name_problem(context.stack, name)
        if naming:
            problems.append(merged.problem(base, f"service {name}: {naming}", RULE_NAME))
        other = lowered.setdefault(name.lower(), name)
        if other != name:
            problems.append(
                merged.problem(
                    base,
                    f"services {other!r} and {name!r} differ only in case, and Swarm compares "
                    "service names without case: the second cannot be deployed; rename one",
                    RULE_NAME,
                )
            )
        image = service["image"]
        if not image:
            problems.append(
                merged.problem(
                    base,
                    f"service {name} has no image; every service of a stack needs `image:`",
                    RULE_IMAGE,
                )
            )
        else:
            why = image_problem(image)
            if why:
                problems.append(
                    merged.problem(
                        (*base, "image"), f"service {name}: image {image!r}: {why}", RULE_IMAGE
                    )
                )
        for kind in ("secrets", "configs"):
            declared = sections.get(kind) or {}
            for index, ref in enumerate(service[kind] or []):
                if ref["source"] not in declared:
                    problems.append(
                        merged.problem(
                            (*base, kind, index),
                            f"service {name} uses {kind[:-1]} {ref['source']!r}, which is not "
                            f"declared under the top-level {kind}:",
                            RULE_REFERENCE,
                        )
                    )
        networks = sections.get("networks") or {}
        for network in service["networks"] or {}:
            if network != "default" and network not in networks:
                problems.append(
                    merged.problem(
                        (*base, "networks", network),
                        f"service {name} uses network {network!r}, which is not declared under "
                        "the top-level networks:",
                        RULE_REFERENCE,
                    )
                )
        volumes = sections.get("volumes") or {}
        for index, mount in enumerate(service["volumes"] or []):
            if mount["type"] == "volume" and mount["source"] and mount["source"] not in volumes:
                problems.append(
                    merged.problem(
                        (*base, "volumes", index),
                        f"service {name} mounts volume {mount['source']!r}, which is not "
                        "declared under the top-level volumes:",
                        RULE_REFERENCE,
                    )
                )
        for label in service["deploy"]["labels"] or {}:
            if label.startswith(RESERVED_LABEL_PREFIX):
                problems.append(
                    merged.problem(
                        (*base, "deploy", "labels", label),
                        f"service {name}: the label {label!r} is reserved for gitswarm; remove it",
                        RULE_LABEL,
                    )
                )


def _check_shared_stack(
    tree: Tree, merged: Merged, context: _Context, problems: list[Problem]
) -> None:
    """Applications deployed to the same stack must not define the same service."""
    for other in context.config.apps_for(context.env.name):
        if other.name == context.app.name or other.stack_name(context.env.name) != context.stack:
            continue
        for written in other.files_for(context.env.name):
            try:
                path = normalize_path(written)
                doc = parse_yaml(tree.read(path, limit=MAX_COMPOSE_BYTES), path)
            except GitswarmError:
                continue  # the other application's own render reports its broken files
            services = doc.data.get("services") if isinstance(doc.data, dict) else None
            for name in services if isinstance(services, dict) else {}:
                if name in merged.services:
                    mine = merged.locate(("services", name))
                    here = f" (also defined in {mine.file}:{mine.line})" if mine else ""
                    problems.append(
                        doc.problem(
                            ("services", name),
                            f"service {name!r} of application {other.name!r} is also a service "
                            f"of application {context.app.name!r}{here}, and both deploy to "
                            f"stack {context.stack!r}; rename one of them",
                            RULE_DUPLICATE,
                        )
                    )


def _other_stacks(context: _Context) -> list[tuple[str, Application, Environment]]:
    """Every (stack, application, environment) deployed to another environment."""
    return [
        (app.stack_name(env.name), app, env)
        for env in context.config.environments
        if env.name != context.env.name
        for app in context.config.apps_for(env.name)
    ]


def _declared_name(kind: str, key: str, obj: dict[str, Any]) -> str | None:
    """The Swarm name a top-level object is declared under where the author chose it (an
    external object, or a network or volume with ``name:``); None where gitswarm or the
    stack namespace makes the name (``<stack>_<key>...``)."""
    external = obj.get("external") or {}
    if external.get("external"):
        # the loader puts the key, or the legacy `external: {name: x}`, into name
        return str(obj.get("name") or external.get("name") or key)
    if kind in ("networks", "volumes") and obj.get("name"):
        return str(obj["name"])
    return None


def _owner(name: str, stacks: Sequence[str]) -> str | None:
    """The stack whose objects ``name`` would be: the longest ``<stack>_`` prefix of it,
    compared without case (as Swarm compares names)."""
    lowered = name.lower()
    owners = [s for s in stacks if lowered.startswith(s.lower() + "_")]
    return max(owners, key=len) if owners else None


def _check_references(merged: Merged, context: _Context, problems: list[Problem]) -> None:
    """No object this stack uses by a name of its choosing belongs to another
    environment's stack: a development stack must not use production's secrets,
    configs, networks or volumes. Stacks of any target count, since a target's settings
    cannot prove two swarms apart (an alias, another URL of the same host)."""
    others: dict[str, tuple[str, Application, Environment]] = {}
    own: set[str] = set()
    for kind in ("secrets", "configs", "networks", "volumes"):
        for key, obj in sorted((merged.sections.get(kind) or {}).items()):
            name = _declared_name(kind, key, obj or {})
            if name is None:
                continue
            if not others and not own:  # only now: a repository of many stacks pays once
                others = {s.lower(): (s, a, e) for s, a, e in _other_stacks(context)}
                apps = context.config.apps_for(context.env.name)
                own = {a.stack_name(context.env.name).lower() for a in apps}
            owner = _owner(name, [*others, *own])
            if owner is None or owner.lower() in own:
                continue  # no stack's, or this environment's own
            stack, app, env = others[owner]
            written = [(kind, key, "name"), (kind, key, "external", "name")]
            path = next((p for p in written if p in merged.locations), (kind, key))
            noun = kind[:-1]
            problems.append(
                merged.problem(
                    path,
                    f"{noun} {key}: {name!r} belongs to stack {stack!r} of application "
                    f"{app.name!r} in environment {env.name!r}; a stack of "
                    f"{context.env.name!r} must not use another environment's {kind}. Declare "
                    f"the {noun} in this environment (secrets: an .age file encrypted to "
                    f"{context.env.name}'s recipients)",
                    RULE_CROSS_ENV,
                )
            )


def _secret_file_problem(path: str, context: _Context) -> str | None:
    """Why a secret file of this environment must not be used: it lies in another
    environment's folder (environments/<other>/). The environment's own folder and
    files outside environments/ (shared, e.g. base/) are fine."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "environments" or parts[1] == context.env.name:
        return None
    if parts[1] not in {e.name for e in context.config.environments}:
        return None
    return (
        f"{path} is a secret of environment {parts[1]!r} (in {'/'.join(parts[:2])}/), and "
        f"a stack of {context.env.name!r} uses only its own: environments/"
        f"{context.env.name}/ or shared files outside environments/, decrypted with "
        f"{context.env.name}'s identity. Encrypt the value for this environment with "
        f"`gitswarm secret encrypt --env {context.env.name} NAME`"
    )


def _objects(
    tree: Tree,
    merged: Merged,
    context: _Context,
    identity: Identity | None,
    problems: list[Problem],
    no_identity: str | None = None,
    provided: Provided | None = None,
    needed: list[ProviderRef] | None = None,
) -> list[ObjectMaterial]:
    materials: list[ObjectMaterial] = []
    seen: dict[tuple[str, str], ObjectMaterial] = {}
    for kind in ("configs", "secrets"):
        noun = kind[:-1]
        for key in sorted(merged.sections.get(kind) or {}):
            obj = merged.sections[kind][key]
            where = (kind, key)
            if obj["external"]["external"]:
                continue
            extras = obj.get("__extras__") or {}
            if kind == "secrets" and PROVIDER_FIELD in extras:
                material = _provider_secret(
                    merged, context, key, obj, identity, problems, no_identity, provided, needed
                )
                if material is not None:  # one object per name, without case (below)
                    found = seen.setdefault(("secret", material.name.lower()), material)
                    if found is material:
                        materials.append(material)
                    merged.sections[kind][key]["name"] = found.name
                continue
            if obj["driver"] or obj["template_driver"] or obj["driver_opts"]:
                problems.append(
                    merged.problem(
                        where,
                        f"{noun} {key}: driver, driver_opts and template_driver are not "
                        "supported by gitswarm (it creates the object itself); remove them",
                        RULE_OBJECT,
                    )
                )
                continue
            path = obj["file"]
            if kind == "secrets" and not path.endswith(".age"):
                problems.append(
                    merged.problem(
                        (*where, "file"),
                        f"secret {key}: {path} is not an age-encrypted file: secrets in Git "
                        f"must be *.age; encrypt it with `gitswarm secret encrypt --env "
                        f"{context.env.name} {key}` and point file: at the .age file",
                        RULE_SECRET,
                    )
                )
                continue
            elsewhere = _secret_file_problem(path, context) if kind == "secrets" else None
            if elsewhere is not None:
                problems.append(
                    merged.problem((*where, "file"), f"secret {key}: {elsewhere}", RULE_CROSS_ENV)
                )
                continue
            try:
                raw = tree.read(path, limit=MAX_OBJECT_FILE_BYTES)
            except GitswarmError as exc:
                problems.append(
                    merged.problem((*where, "file"), f"{noun} {key}: {exc}", rule_of(exc))
                )
                continue
            if kind == "secrets":
                if identity is None:
                    why = no_identity or (
                        f"no age identity for environment {context.env.name!r}; put the key "
                        "where `gitswarm secret keygen` writes it (README, Secrets)"
                    )
                    problems.append(
                        merged.problem(
                            (*where, "file"),
                            f"secret {key}: cannot decrypt {path}: {why}",
                            RULE_SECRET,
                        )
                    )
                    continue
                if not raw.startswith(AGE_HEADERS):
                    problems.append(
                        merged.problem(
                            (*where, "file"),
                            f"secret {key}: {path} is not an age-encrypted file (plaintext in "
                            f"Git?); encrypt the value with `gitswarm secret encrypt --env "
                            f"{context.env.name} {key}`",
                            RULE_SECRET,
                        )
                    )
                    continue
                try:
                    data = identity.decrypt(
                        raw,
                        source=path,
                        encrypt=f"gitswarm secret encrypt --env {context.env.name} {key}",
                    )
                except SecretError as exc:
                    problems.append(
                        merged.problem((*where, "file"), f"secret {key}: {exc}", RULE_SECRET)
                    )
                    continue
                digest = keyed_digest(identity.name_key(), data)
            else:
                data = raw
                digest = hashlib.sha256(data).hexdigest()
            if not 0 < len(data) < MAX_OBJECT_DATA_BYTES:
                size = "empty" if not data else f"{len(data)} bytes"
                problems.append(
                    merged.problem(
                        (*where, "file"),
                        f"{noun} {key}: {path} is {size}; Swarm needs more than 0 and less "
                        f"than {MAX_OBJECT_DATA_BYTES} bytes",
                        RULE_OBJECT,
                    )
                )
                continue
            name = object_name(context.stack, key, digest[:DIGEST_CHARS])
            if name is None:
                problems.append(
                    merged.problem(
                        where,
                        f"{noun} {key}: stack name {context.stack!r} leaves no room for a "
                        "valid Swarm object name (64 characters); shorten the stack name",
                        RULE_NAME,
                    )
                )
                continue
            labels = {
                **(obj["labels"] or {}),
                LABEL_OWNER: OWNER_VALUE,
                LABEL_APP: context.app.name,
                LABEL_ENV: context.env.name,
                LABEL_OBJECT_KEY: key,
                LABEL_STACK: context.stack,
            }
            material = ObjectMaterial(
                kind="secret" if kind == "secrets" else "config",
                key=key,
                name=name,
                data=data,
                source=path,
                labels=labels,
            )
            # Swarm compares names without case: keys that differ only in case, with the
            # same content (so the same digest), share one object; a second would conflict
            found = seen.setdefault((material.kind, name.lower()), material)
            if found is material:
                materials.append(material)
            name = found.name
            declared = zero(ct.FILE_OBJECT)
            declared["name"] = name
            declared["external"] = {"name": "", "external": True}
            merged.sections[kind][key] = declared
    return materials


def _provider_secret(
    merged: Merged,
    context: _Context,
    key: str,
    obj: dict[str, Any],
    identity: Identity | None,
    problems: list[Problem],
    no_identity: str | None,
    provided: Provided | None,
    needed: list[ProviderRef] | None,
) -> ObjectMaterial | None:
    """A secret whose value the operator's provider gives (source/providers.py): the
    reference checked here, the value passed in (``provided``), the name a keyed hash of
    it like any secret's. ``provided`` None: not at hand (a placeholder name)."""
    where = ("secrets", key, PROVIDER_FIELD)
    spec = (obj.get("__extras__") or {})[PROVIDER_FIELD]
    usage = f"write `{PROVIDER_FIELD}: {{name: PROVIDER, key: KEY}}`"
    if obj["file"]:
        problems.append(
            merged.problem(
                where,
                f"secret {key}: give either file: or {PROVIDER_FIELD}:, not both",
                RULE_SECRET,
            )
        )
        return None
    if isinstance(spec, dict) and set(spec) > {"name", "key"}:
        extra = ", ".join(sorted(str(k) for k in set(spec) - {"name", "key"}))
        problems.append(
            merged.problem(
                where,
                f"secret {key}: {PROVIDER_FIELD} takes only name and key, not {extra}: what a "
                "provider runs is the operator's, in the agent config's providers:; "
                f"{usage}",
                RULE_SECRET,
            )
        )
        return None
    if not isinstance(spec, dict) or set(spec) != {"name", "key"}:
        problems.append(merged.problem(where, f"secret {key}: {usage}", RULE_SECRET))
        return None
    provider, item = spec["name"], spec["key"]
    name_problem = check_name("provider", provider) if isinstance(provider, str) else usage
    key_problem = provider_key_problem(item)
    if name_problem or key_problem:
        problems.append(
            merged.problem(
                (*where, "name" if name_problem else "key"),
                f"secret {key}: {name_problem or key_problem} (not {item!r})",
                RULE_SECRET,
            )
        )
        return None
    located = merged.locate(where)
    ref = ProviderRef(
        provider,
        item,
        key,
        file=located.file if located else None,
        line=located.line if located else None,
        column=located.column if located else None,
    )
    labels = {
        **(obj["labels"] or {}),
        LABEL_OWNER: OWNER_VALUE,
        LABEL_APP: context.app.name,
        LABEL_ENV: context.env.name,
        LABEL_OBJECT_KEY: key,
        LABEL_STACK: context.stack,
        LABEL_PROVIDER: provider,
    }
    data = b""
    if provided is None:
        digest = UNRESOLVED
    elif (provider, item) not in provided:
        if needed is not None:
            needed.append(ref)
        return None
    else:
        data = provided[(provider, item)]
        if identity is None:
            why = no_identity or f"no age identity for environment {context.env.name!r}"
            problems.append(
                merged.problem(
                    where,
                    f"secret {key}: a provider secret is named by a hash of its value keyed "
                    f"with the environment's age identity, so that names reveal nothing; {why}. "
                    f"Create one with `gitswarm secret keygen --env {context.env.name}`",
                    RULE_SECRET,
                )
            )
            return None
        if not 0 < len(data) < MAX_OBJECT_DATA_BYTES:
            problems.append(
                merged.problem(
                    where,
                    f"secret {key}: provider {provider!r} gave {len(data)} bytes; Swarm needs "
                    f"more than 0 and less than {MAX_OBJECT_DATA_BYTES}",
                    RULE_OBJECT,
                )
            )
            return None
        digest = keyed_digest(identity.name_key(), data)
    name = object_name(context.stack, key, digest[:DIGEST_CHARS])
    if name is None:
        problems.append(
            merged.problem(
                ("secrets", key),
                f"secret {key}: stack name {context.stack!r} leaves no room for a valid Swarm "
                "object name (64 characters); shorten the stack name",
                RULE_NAME,
            )
        )
        return None
    declared = zero(ct.FILE_OBJECT)
    declared["name"] = name
    declared["external"] = {"name": "", "external": True}
    merged.sections["secrets"][key] = declared
    return ObjectMaterial(
        kind="secret",
        key=key,
        name=name,
        data=data,
        source=f"{PROVIDER_FIELD} {provider}:{item}",
        labels=labels,
    )


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _label_services(
    compose: dict[str, Any], context: _Context, revision: str | None
) -> dict[str, str]:
    hashes: dict[str, str] = {}
    objects = {
        kind: {k: v.get("name", k) for k, v in (compose.get(kind) or {}).items()}
        for kind in ("configs", "secrets")
    }
    for name, service in compose["services"].items():
        deploy = service.setdefault("deploy", {})
        labels = deploy.get("labels") or {}
        labels.update(
            {LABEL_OWNER: OWNER_VALUE, LABEL_APP: context.app.name, LABEL_ENV: context.env.name}
        )
        deploy["labels"] = dict(sorted(labels.items()))
        uses = {
            kind: sorted(objects[kind].get(ref["source"], "") for ref in service.get(kind) or [])
            for kind in ("configs", "secrets")
        }
        spec_hash = hashlib.sha256(_canonical({"service": service, "uses": uses})).hexdigest()
        hashes[name] = spec_hash
        labels[LABEL_SPEC_HASH] = spec_hash
        if revision is not None:
            labels[LABEL_REVISION] = revision
        deploy["labels"] = dict(sorted(labels.items()))
    return hashes


def _resolve(config: RepoConfig, app_name: str, env_name: str) -> _Context:
    for kind, name in (("environment", env_name), ("application", app_name)):
        message = check_name(kind, name)
        if message:
            raise UsageError(message)
    try:
        env = config.environment(env_name)
        app = config.application(app_name)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    if env.name not in app.environments:
        raise UsageError(
            f"application {app.name!r} is not deployed to environment {env.name!r} "
            f"(it is deployed to: {', '.join(app.environments) or 'none'})"
        )
    stack = app.stack_name(env.name)
    return _Context(config=config, app=app, env=env, stack=stack)


def render_stack(
    tree: Tree,
    config: RepoConfig,
    app_name: str,
    env_name: str,
    identity: Identity | None,
    *,
    no_identity: str | None = None,
    provided: Provided | None = None,
) -> DesiredStack:
    """The exact stack ``app_name`` deploys to ``env_name`` at the Tree's revision.
    ``identity`` is the environment's own (None: there is none, ``no_identity`` says why,
    for the problem of each secret that needs one). ``provided``: the values of the
    provider secrets (reconcile/rendering.py resolves what ProviderValuesNeeded names);
    None names them as placeholders, for commands that never deploy.

    Raises an InputError (RenderError, ValidationError, SecretError, ...) listing every
    problem with file:line when the input is bad; nothing partial is returned."""
    context = _resolve(config, app_name, env_name)
    label = f"{context.app.name} in {context.env.name}"
    problems: list[Problem] = []
    naming = stack_name_problem(context.stack)
    if naming:
        problems.append(_app_problem(context.app, ("stack",), naming, RULE_NAME))
    variables = variables_for(tree, context, problems)
    sources = _compose_sources(tree, context, problems)
    _fail(problems, f"cannot render {label}")

    def read(path: str) -> bytes:
        return tree.read(path, limit=MAX_ENV_BYTES)

    merged = load_compose(sources, variables, read)
    _fail(merged.problems, f"cannot render {label}")
    _check_services(merged, context, problems)
    problems.extend(swarm_spec_problems(merged))  # what `docker stack deploy` would refuse
    _check_shared_stack(tree, merged, context, problems)
    _check_references(merged, context, problems)
    needed: list[ProviderRef] = []
    materials = _objects(tree, merged, context, identity, problems, no_identity, provided, needed)
    _fail(problems, f"cannot render {label}")
    if needed:
        raise ProviderValuesNeeded(needed)

    compose = merged.to_data()
    service_hashes = _label_services(compose, context, tree.revision)
    compose["version"] = deployable_version(compose, merged.written_version)
    return DesiredStack(
        app=context.app.name,
        env=context.env.name,
        stack=context.stack,
        revision=tree.revision,
        compose=compose,
        objects=tuple(materials),
        service_hashes=service_hashes,
        files=tuple(path for path, _ in sources),
        source_map=SourceMap(dict(merged.locations)),
    )
