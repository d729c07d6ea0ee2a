"""Loading the repository's settings: gitswarm.yml and applications/*.yml (pure).

``load_config(tree)`` is called by the CLI and the agent for every revision before
render/. It reads through the Tree only. Both files are checked against a JSON schema
(repo/gitswarm_schema.json) with jsonschema; every problem — unknown key, wrong type,
bad name, unknown environment or target — is collected and reported at once as a
ConfigError naming file:line.

    project: medianest
    application:                       # the default application (optional with applications/)
      name: medianest                  # default: the project
      stack: "medianest-{env}"         # default: "{app}-{env}"
      files: [base/docker-compose.yml, "environments/{env}/docker-compose.yml"]   # the default
      environments: [development, staging, production]    # default: all
      sync: {production: {automated: false}}               # per environment, over its sync
      depends_on: [database]           # applied after these have converged (model/order.py)
    targets:                           # names only (optional; `local` is implicit)
      local: {}                        # DOCKER_HOST or the default socket
      production-swarm: {}             # url and credentials: the agent config's targets:
    environments:                      # in promotion order
      development: {target: local, branch: main, sync: {...}, secrets: {...},
                    verify: {...}, policies: {...}, promotion: {...}}

``targets`` only declares the names environments may use (a typo is a reference error
here). Where a target is and the credentials that reach it (``url``, TLS files, ssh
identity and known_hosts) are the operator's, in the agent config (swarm/targets.py):
whoever can push could otherwise make the agent read any file of its host as a
certificate, or send an environment's secrets to an engine of their own. The retired
``url``/``tls`` keys are refused with a message that says where they live now.

``secrets`` holds only ``recipients`` (public age keys). Which identity decrypts is the
operator's choice, never the repository's (source/keys.py); the retired
``secrets.identity_file`` is refused with a message that says where identities live.

``policies`` and ``promotion`` are owned by policy/ and the promotion code: kept as mappings, with
the position of every node in ``Environment.positions``.

``verify`` (signed commits, checked by source/verify.py) names key *files on the agent's
host*, never key text and never files of this repository: whoever can push could change
gitswarm.yml or any file in it, and so trust their own key. Paths are absolute, ``~/...``,
or relative to the agent's trusted-keys directory (``$GITSWARM_KEYS_DIR``)::

      production: {verify: {mode: gpg, keys: [/etc/gitswarm/trusted/release.asc]}}
      staging:    {verify: {mode: ssh, allowed_signers: /etc/gitswarm/allowed_signers}}

Why one file (over 450 lines): one schema's loading and the cross-checks between its
sections (environments, targets, applications), which need each other.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, NoReturn

import jsonschema
from jsonschema.exceptions import ValidationError as SchemaViolation

from gitswarm.errors import ConfigError, GitswarmError, Problem, YamlError
from gitswarm.model.config import (
    Application,
    Environment,
    RepoConfig,
    SecretSettings,
    SyncPolicy,
    Target,
    VerifySettings,
    key_suffix,
)
from gitswarm.model.tree import RULE_MISSING, Tree, rule_of
from gitswarm.repo.depends import dependency_problems
from gitswarm.repo.yamlsrc import Document, parse_yaml

CONFIG_FILE = "gitswarm.yml"
APPLICATIONS_DIR = "applications"
MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_FILES = ("base/docker-compose.yml", "environments/{env}/docker-compose.yml")
DEFAULT_STACK = "{app}-{env}"
RULE = "config-schema"
RULE_REF = "config-reference"
RULE_NAME = "name"
RULE_VERIFY = "verify-keys"
RULE_CROSS_ENV = "cross-environment"

# Key text where a path belongs: an armored block, or an OpenSSH public key line.
_INLINE_KEY = re.compile(r"^\s*(-----BEGIN |(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+\s+AAAA)")

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?$")
NAME_HELP = (
    "use 1-40 lower-case letters, digits, '-' and '_', starting and ending with a letter or digit"
)


def check_name(kind: str, name: str) -> str | None:
    """A message if ``name`` is not a valid project/application/environment/target name."""
    if NAME_PATTERN.match(name):
        return None
    return f"{kind} name {name!r} is not valid: {NAME_HELP} (no '/', '.' or '..')"


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("gitswarm.repo").joinpath("gitswarm_schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _validator(definition: str | None) -> jsonschema.Draft7Validator:
    schema = _schema()
    if definition is not None:
        schema = {**schema["definitions"][definition], "definitions": schema["definitions"]}
    return jsonschema.Draft7Validator(schema)


def _schema_of(error: SchemaViolation) -> dict[str, Any]:
    return error.schema if isinstance(error.schema, dict) else {}


def _value_of(error: SchemaViolation) -> Any:
    value: Any = error.validator_value
    return value


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _kind_of(path: tuple[Any, ...]) -> str:
    """What kind of name sits at ``path`` (for messages)."""
    if path == ("project",):
        return "project"
    if path[:1] == ("targets",) or path[-1:] == ("target",):
        return "target"
    if "environments" in path or "sync" in path:
        return "environment"
    return "application"


def _schema_problems(doc: Document, data: Any, definition: str | None) -> list[Problem]:
    problems: list[Problem] = []
    errors = sorted(
        _validator(definition).iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]
    )
    for error in errors:
        problems.extend(_describe(doc, error))
    return problems


# What the patterns of gitswarm_schema.json mean, in words (a regex is no help to a user).
_PATTERN_HELP = {
    "^([a-zA-Z0-9_-]|\\{env\\}|\\{app\\})+$": (
        "a stack name uses letters, digits, '-' and '_', and the placeholders {env} and {app}"
    ),
}


def _describe(doc: Document, error: SchemaViolation) -> list[Problem]:
    path = tuple(error.absolute_path)
    where = _dotted(path) or "the top level"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(_schema_of(error).get("properties", {}))
        out = []
        for key in error.instance:
            if (
                key == "identity_file"
                and len(path) == 3
                and path[::2] == ("environments", "secrets")
            ):
                out.append(
                    doc.problem((*path, key), _identity_file_message(doc, str(path[1])), RULE)
                )
            elif len(path) == 2 and path[0] == "targets":
                out.append(doc.problem((*path, key), _target_key_message(str(path[1]), key), RULE))
            elif key not in known:
                allowed = ", ".join(sorted(known))
                out.append(
                    doc.problem(
                        (*path, key),
                        f"unknown key {key!r} in {where}; allowed: {allowed}",
                        RULE,
                    )
                )
        return out
    if error.validator == "pattern" and _schema_of(error).get("pattern") == NAME_PATTERN.pattern:
        name = str(error.instance)
        # a bad key (propertyNames) is located at the key itself
        target_path = (*path, name) if "propertyNames" in error.schema_path else path
        message = check_name(_kind_of(target_path), name)
        return [doc.problem(target_path, f"{_dotted(target_path)}: {message}", RULE_NAME)]
    if error.validator == "type":
        expected = _value_of(error)
        words = expected if isinstance(expected, str) else " or ".join(expected)
        words = words.replace("object", "mapping").replace("array", "list")
        message = f"{where} must be a {words}, not {json.dumps(error.instance, default=str)[:40]}"
    elif error.validator == "required":
        message = f"{where}: {error.message}"
    elif error.validator == "enum":
        allowed = ", ".join(repr(v) for v in _value_of(error))
        message = f"{where} must be one of {allowed}, not {error.instance!r}"
    elif error.validator == "pattern" and "age1" in str(_value_of(error)):
        message = f"{where}: {error.instance!r} is not an age public key (age1...)"
    elif error.validator == "pattern" and str(_value_of(error)) in _PATTERN_HELP:
        message = f"{where}: {error.instance!r} is not valid: {_PATTERN_HELP[_value_of(error)]}"
    else:
        message = f"{where}: {error.message}"
    return [doc.problem(path, message, RULE)]


def _identity_file_message(doc: Document, env: str) -> str:
    project = doc.data.get("project") if isinstance(doc.data, dict) else None
    suffix = key_suffix(env)
    return (
        f"environments.{env}.secrets.identity_file: gitswarm.yml does not choose which file "
        "decrypts (whoever can push could point the agent at any file of its host, or at "
        "another environment's key); remove it and put the identity where the operator "
        f"keeps identities: the agent config (`identities: {{{env}: /etc/gitswarm/keys/"
        f"{env}.key}}` in gitswarm serve --config), GITSWARM_AGE_KEY_FILE_{suffix} or "
        f"GITSWARM_AGE_KEY_{suffix}, or $GITSWARM_KEYS_DIR/{project or '<project>'}/{env}.key "
        "(see README, 'Secrets')"
    )


def _target_key_message(target: str, key: str) -> str:
    return (
        f"targets.{target}.{key}: gitswarm.yml only names targets; where a target is and "
        "the credentials that reach it (url, tls ca/cert/key, ssh identity and known_hosts) "
        "are the operator's, since whoever can push could otherwise make the agent read any "
        "file of its host or hand this environment's secrets to an engine of their choosing. "
        f"Remove {key!r} here (keep `{target}: {{}}`) and define the target in the agent "
        f"config: `targets: {{{target}: {{url: ..., tls: {{ca: ..., cert: ..., key: ...}}}}}}` "
        "in `gitswarm serve --config FILE` (the CLI reads the same file from --config or "
        "$GITSWARM_CONFIG; see README, 'Targets')"
    )


def _relative_positions(doc: Document, prefix: tuple[Any, ...]) -> dict[Any, tuple[int, int]]:
    n = len(prefix)
    return {p[n:]: pos for p, pos in doc.positions.items() if p[:n] == prefix}


def _sync(data: Mapping[str, Any] | None, base: SyncPolicy) -> SyncPolicy:
    if not data:
        return base
    return SyncPolicy(
        automated=bool(data.get("automated", base.automated)),
        prune=bool(data.get("prune", base.prune)),
        self_heal=bool(data.get("self_heal", base.self_heal)),
        auto_rollback=bool(data.get("auto_rollback", base.auto_rollback)),
        health_timeout=float(data.get("health_timeout", base.health_timeout)),
        resolve_image=data.get("resolve_image", base.resolve_image),
        keep_versions=int(data.get("keep_versions", base.keep_versions)),
    )


def _verify(
    doc: Document, tree: Tree, env: str, data: Mapping[str, Any] | None, problems: list[Problem]
) -> VerifySettings | None:
    """The environment's ``verify:`` settings; every problem at its line. Only paths are
    checked here (the files live on the agent's host; source/verify.py reads them)."""
    if data is None:
        return None
    at = ("environments", env, "verify")
    mode = data["mode"]
    keys = tuple(data.get("keys", ()))
    signers = data.get("allowed_signers")
    named: list[tuple[tuple[str | int, ...], str, str]] = [
        ((*at, "keys", i), f"keys[{i}]", key) for i, key in enumerate(keys)
    ]
    if signers is not None:
        named.append(((*at, "allowed_signers"), "allowed_signers", signers))
    for path, label, value in named:
        message = _key_path_problem(tree, value)
        if message is not None:
            problems.append(
                doc.problem(path, f"environments.{env}.verify.{label}: {message}", RULE_VERIFY)
            )
    for field_name, message in verify_rule_problems(mode, keys, signers):
        path = (*at, field_name) if field_name in data else at
        problems.append(doc.problem(path, f"environments.{env}.verify: {message}", RULE_VERIFY))
    return VerifySettings(mode=mode, keys=keys, allowed_signers=signers)


def verify_rule_problems(
    mode: str, keys: Sequence[str], signers: str | None
) -> list[tuple[str, str]]:
    """What the shape of ``verify:`` settings cannot say is wrong with them, as (field,
    message): for gitswarm.yml and for the agent's own pinned ``verify:`` alike."""
    out: list[tuple[str, str]] = []
    if mode == "gpg" and signers is not None:
        out.append((
            "allowed_signers",
            "allowed_signers is for mode: ssh; for mode: gpg, list the trusted public key "
            "files under keys:",
        ))  # fmt: skip
    if not keys and signers is None:
        need = (
            "keys: (the trusted public key files)"
            if mode == "gpg"
            else "keys: (public key files) or allowed_signers: (an ssh-keygen allowed signers file)"
        )
        out.append((
            "keys",
            f"mode: {mode} trusts no key; give {need}, as paths of files on the agent's host",
        ))  # fmt: skip
    return out


_WHY_UNTRUSTED = "whoever can push could change it and so trust their own key"
_WHERE_KEYS_GO = (
    "put the public key in a file on the agent's host, outside the repository, and give its "
    "path: absolute, ~/..., or relative to $GITSWARM_KEYS_DIR (see README, 'Signed commits')"
)


def _key_path_problem(tree: Tree, value: str) -> str | None:
    """Why ``value`` cannot name a trusted key file, if it cannot."""
    if _INLINE_KEY.match(value):
        return f"key text is not accepted in gitswarm.yml ({_WHY_UNTRUSTED}); {_WHERE_KEYS_GO}"
    if value.startswith(("/", "~")):
        return None
    if ".." in value.split("/"):
        return (
            f"{value!r} climbs out of the trusted-keys directory with '..'; give an absolute "
            "path or one inside $GITSWARM_KEYS_DIR"
        )
    try:
        in_repo = tree.exists(value)
    except GitswarmError:
        in_repo = False
    if in_repo:
        return (
            f"{value!r} is a file of this repository, and a key kept in the repository being "
            f"verified is never trusted ({_WHY_UNTRUSTED}); {_WHERE_KEYS_GO}. Relative paths "
            "are read from $GITSWARM_KEYS_DIR, not from the repository"
        )
    return None


def _shared_key_names(doc: Document, envs: Sequence[Environment]) -> list[Problem]:
    """Environments whose age identity would be looked up under the same names
    (``prod-a`` and ``prod_a`` both read GITSWARM_AGE_KEY_PROD_A): one could decrypt
    with the other's identity."""
    problems: list[Problem] = []
    first: dict[str, str] = {}
    for env in envs:
        suffix = key_suffix(env.name)
        if suffix in first:
            problems.append(
                doc.problem(
                    ("environments", env.name),
                    f"environment {env.name!r} would read its age identity from the same "
                    f"places as environment {first[suffix]!r} (GITSWARM_AGE_KEY_{suffix}, "
                    f"GITSWARM_AGE_KEY_FILE_{suffix}), so one could decrypt with the other's "
                    "key; rename one of them (names must differ in more than '-' and '_')",
                    RULE_NAME,
                )
            )
        else:
            first[suffix] = env.name
    return problems


def _endpoint(target: Target) -> str:
    """Which swarm a target is, as far as the repository can tell: its name (the
    endpoint is the operator's; two names the operator points at one swarm are beyond
    this check, and render/stack.py refuses cross-environment references by name on any
    target anyway)."""
    return target.name


def _stack_collisions(
    applications: Sequence[Application], envs: Sequence[Environment]
) -> list[Problem]:
    """No stack of one environment is, or nests in the names of (``a`` / ``a_b``), a
    stack of another environment on the same target: one's sync would replace the
    other's services, or an object ``<stack>_<name>`` of one could be taken for the
    other's (render/stack.py refuses references across environments by those names).
    Swarm compares names without regard to case; so does this."""
    seen: dict[tuple[str, str], tuple[str, Application, Environment]] = {}
    prefixes: dict[tuple[str, str], tuple[str, Application, Environment]] = {}
    problems: list[Problem] = []
    for env in envs:
        where = _endpoint(env.target)
        for app in applications:
            if env.name not in app.environments:
                continue
            stack = app.stack_name(env.name)
            lowered = stack.lower()
            parts = lowered.split("_")
            nested = ["_".join(parts[:i]) for i in range(1, len(parts))]
            found = seen.get((where, lowered))
            why = "so one environment's sync would replace the other's services"
            if found is None or found[2].name == env.name:
                found = next(
                    (seen[(where, p)] for p in nested if (where, p) in seen), None
                ) or prefixes.get((where, lowered))
                why = (
                    "and one name is the other's followed by '_', so the Swarm objects of one "
                    "(<stack>_<name>) could be taken for the other's"
                )
            if found is not None and found[2].name != env.name:
                pair = [(stack, app, env), found]
                for (one, one_app, one_env), (other, other_app, other_env) in (pair, pair[::-1]):
                    line, column = one_app.positions.get(
                        ("stack",), one_app.positions.get((), (None, None))
                    )
                    problems.append(
                        Problem(
                            f"application {one_app.name!r} deploys to stack {one!r} in "
                            f"environment {one_env.name!r}, and application "
                            f"{other_app.name!r} to stack {other!r} in environment "
                            f"{other_env.name!r} on the same target, {why}; give each "
                            'environment stacks of its own (e.g. stack: "{app}-{env}")',
                            file=one_app.source,
                            line=line,
                            column=column,
                            rule=RULE_CROSS_ENV,
                        )
                    )
                    if other_app is app:
                        break  # one application, one line: once is enough
            seen.setdefault((where, lowered), (stack, app, env))
            for prefix in nested:
                prefixes.setdefault((where, prefix), (stack, app, env))
    return problems


def _read(tree: Tree, path: str, problems: list[Problem]) -> Document | None:
    try:
        raw = tree.read(path, limit=MAX_CONFIG_BYTES)
        doc = parse_yaml(raw, path)
    except YamlError as exc:
        problems.extend(exc.problems)
        return None
    except GitswarmError as exc:
        problems.append(Problem(str(exc), file=path, rule=rule_of(exc)))
        return None
    if not isinstance(doc.data, dict):
        shape = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        problems.append(doc.problem((), f"must be a mapping of settings, but is {shape}", RULE))
        return None
    return doc


def _application(
    doc: Document,
    data: Mapping[str, Any],
    prefix: tuple[Any, ...],
    default_name: str,
    environments: tuple[Environment, ...],
    problems: list[Problem],
) -> Application | None:
    name = data.get("name", default_name)
    message = check_name("application", name)
    if message is not None:
        problems.append(
            doc.problem((*prefix, "name") if "name" in data else prefix, message, RULE_NAME)
        )
        return None
    known = {e.name: e for e in environments}
    envs = data.get("environments")
    if envs is None:
        envs = [e.name for e in environments]
    for index, env in enumerate(envs):
        if env not in known:
            problems.append(
                doc.problem(
                    (*prefix, "environments", index),
                    f"application {name!r} lists environment {env!r}, which gitswarm.yml "
                    f"does not declare (known: {', '.join(known)})",
                    RULE_REF,
                )
            )
    sync: dict[str, SyncPolicy] = {}
    for env, policy in (data.get("sync") or {}).items():
        if env not in known:
            problems.append(
                doc.problem(
                    (*prefix, "sync", env),
                    f"application {name!r} has a sync policy for environment {env!r}, which "
                    f"gitswarm.yml does not declare (known: {', '.join(known)})",
                    RULE_REF,
                )
            )
            continue
        sync[env] = _sync(policy, known[env].sync)
    ordered = tuple(e.name for e in environments if e.name in envs)
    return Application(
        name=name,
        stack=data.get("stack", DEFAULT_STACK),
        files=tuple(data.get("files", DEFAULT_FILES)),
        environments=ordered,
        sync=sync,
        source=doc.file,
        positions=_relative_positions(doc, prefix),
        depends_on=tuple(data.get("depends_on", ())),
    )


def load_config(tree: Tree) -> RepoConfig:
    """The repository's settings at the Tree's revision. Raises ConfigError listing every
    problem (file:line: message [rule])."""
    problems: list[Problem] = []
    if not tree.exists(CONFIG_FILE):
        raise ConfigError(
            f"{CONFIG_FILE} not found at the repository root; create one "
            "(`gitswarm init DIR` writes an example)",
            problems=[Problem(f"{CONFIG_FILE} is missing", file=CONFIG_FILE, rule=RULE_MISSING)],
        )
    doc = _read(tree, CONFIG_FILE, problems)
    if doc is None:
        _raise(problems)
    data: dict[str, Any] = doc.data
    problems.extend(_schema_problems(doc, data, None))
    if problems:
        _raise(problems)

    targets: dict[str, Target] = {"local": Target("local")}
    for name in data.get("targets") or {}:
        targets[name] = Target(name=name)

    environments: list[Environment] = []
    for order, (name, spec) in enumerate(data["environments"].items()):
        spec = spec or {}
        target = spec.get("target", "local")
        if target not in targets:
            problems.append(
                doc.problem(
                    ("environments", name, "target"),
                    f"environment {name!r} deploys to target {target!r}, which is not declared "
                    f"under targets: (known: {', '.join(sorted(targets))})",
                    RULE_REF,
                )
            )
            continue
        secrets = spec.get("secrets") or {}
        environments.append(
            Environment(
                name=name,
                order=order,
                target=targets[target],
                path=f"environments/{name}",
                sync=_sync(spec.get("sync"), SyncPolicy()),
                branch=spec.get("branch"),
                verify=_verify(doc, tree, name, spec.get("verify"), problems),
                secrets=SecretSettings(recipients=tuple(secrets.get("recipients", ()))),
                policies=dict(spec.get("policies") or {}),
                promotion=dict(spec.get("promotion") or {}),
                source=CONFIG_FILE,
                positions=_relative_positions(doc, ("environments", name)),
            )
        )
    envs = tuple(environments)
    problems.extend(_shared_key_names(doc, envs))

    applications: list[Application] = []
    if "application" in data:
        app = _application(
            doc, data["application"], ("application",), data["project"], envs, problems
        )
        if app is not None:
            applications.append(app)
    for entry in tree.listdir(APPLICATIONS_DIR):
        if not entry.endswith((".yml", ".yaml")) or entry.startswith("."):
            continue
        path = f"{APPLICATIONS_DIR}/{entry}"
        app_doc = _read(tree, path, problems)
        if app_doc is None:
            continue
        schema_problems = _schema_problems(app_doc, app_doc.data, "application")
        if schema_problems:
            problems.extend(schema_problems)
            continue
        stem = posixpath.splitext(entry)[0]
        if "name" not in app_doc.data and check_name("application", stem) is not None:
            problems.append(
                Problem(
                    f"{check_name('application', stem)}; rename the file or set name:",
                    file=path,
                    rule=RULE_NAME,
                )
            )
            continue
        app = _application(app_doc, app_doc.data, (), stem, envs, problems)
        if app is not None:
            applications.append(app)

    seen: dict[str, Application] = {}
    for app in applications:
        if app.name in seen:
            problems.append(
                Problem(
                    f"application {app.name!r} is declared twice: here and in "
                    f"{seen[app.name].source}; application names must be unique",
                    file=app.source,
                    line=app.positions.get((), (None, None))[0],
                    rule=RULE_REF,
                )
            )
        seen[app.name] = app
    problems.extend(_stack_collisions(applications, envs))
    problems.extend(dependency_problems(applications))
    if not applications and not problems:
        problems.append(
            doc.problem(
                (),
                "no application: add an `application:` section or a file in applications/",
                RULE_REF,
            )
        )
    if problems:
        _raise(problems)
    return RepoConfig(
        project=data["project"],
        environments=envs,
        applications=tuple(applications),
        targets={k: v for k, v in targets.items()},
    )


def _raise(problems: list[Problem]) -> NoReturn:
    lines = "\n".join(f"  {p}" for p in problems)
    raise ConfigError(f"the repository settings are not valid:\n{lines}", problems=problems)
