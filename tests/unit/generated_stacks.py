"""Hypothesis strategies for whole repositories that gitswarm renders: gitswarm.yml, one
or two compose files, the environment's .env, config files and age-encrypted secrets.

Every string the author writes is a ``Text``: what is written in the compose file
(``${VAR}``, ``$$``, ``${UNSET:-default}``) and what it means once interpolated (the
variable's value, one ``$``, the default). A ``Layout`` says how the same repository is
written out: the order of keys in every mapping, flow (JSON) or block YAML, list or
mapping form of ``environment``/``labels``, the order and line endings of ``.env``, the
order of files in the tree. None of these may change what gitswarm renders.

Used by test_render_properties.py and test_plan_properties.py.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hypothesis import strategies as st

from gitswarm.render.output import dump_yaml
from gitswarm.render.secrets import Identity, encrypt
from tests.unit.test_render_trees import MemoryTree

IDENTITY = Identity.generate()
COMPOSE_DIR = "stack"


@dataclass(frozen=True)
class Text:
    written: str  # in the compose file
    meant: str  # after interpolation: what must be deployed


@dataclass(frozen=True)
class Layout:
    seed: int | None = None  # None: keys in the order generated
    style: str = "flow"  # flow (JSON) | block
    list_form: bool = False  # environment, labels, deploy.labels as "KEY=value" lists
    crlf: bool = False  # .env line endings
    env_comments: bool = False  # comments and blank lines between .env lines
    reverse_files: bool = False  # the tree's files in the other order


@dataclass(frozen=True)
class GeneratedRepo:
    app: str
    env: str
    stack_template: str
    compose: tuple[tuple[str, dict[str, Any]], ...]  # (file name in COMPOSE_DIR, data)
    variables: Mapping[str, str]  # the .env
    files: Mapping[str, bytes] = field(default_factory=dict)  # configs and secrets

    @property
    def stack(self) -> str:
        return self.stack_template.replace("{env}", self.env).replace("{app}", self.app)

    def config(self) -> dict[str, Any]:
        return {
            "project": "gen",
            "application": {
                "name": self.app,
                "stack": self.stack_template,
                "files": [f"{COMPOSE_DIR}/{name}" for name, _ in self.compose],
            },
            "environments": {self.env: {"secrets": {"recipients": [IDENTITY.recipient]}}},
        }

    def tree(self, layout: Layout | None = None, revision: str | None = "r" * 40) -> MemoryTree:
        layout = layout or Layout()
        rnd = None if layout.seed is None else random.Random(layout.seed)
        files: dict[str, str | bytes] = {"gitswarm.yml": _dump(self.config(), layout, rnd)}
        for name, data in self.compose:
            files[f"{COMPOSE_DIR}/{name}"] = _dump(written(data, layout.list_form), layout, rnd)
        files[f"environments/{self.env}/.env"] = env_text(self.variables, layout, rnd)
        files.update(self.files)
        if layout.reverse_files:
            files = dict(reversed(files.items()))
        return MemoryTree(files, revision=revision)


def written(data: Any, list_form: bool = False, path: tuple[str, ...] = ()) -> Any:
    """The compose data as the author writes it."""
    if isinstance(data, Text):
        return data.written
    if isinstance(data, dict):
        if list_form and path[-1:] in (("environment",), ("labels",)):
            return [f"{k}={written(v)}" for k, v in data.items()]
        return {k: written(v, list_form, (*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [written(v, list_form, path) for v in data]
    return data


def meant(data: Any) -> Any:
    """The compose data as interpolation must leave it."""
    if isinstance(data, Text):
        return data.meant
    if isinstance(data, dict):
        return {k: meant(v) for k, v in data.items()}
    if isinstance(data, list):
        return [meant(v) for v in data]
    return data


def _shuffled(data: Any, rnd: random.Random | None) -> Any:
    if isinstance(data, dict):
        items = [(k, _shuffled(v, rnd)) for k, v in data.items()]
        if rnd is not None:
            rnd.shuffle(items)
        return dict(items)
    if isinstance(data, list):
        return [_shuffled(v, rnd) for v in data]
    return data


def _dump(data: Any, layout: Layout, rnd: random.Random | None) -> str:
    data = _shuffled(data, rnd)
    if layout.style == "block":
        return dump_yaml(data)
    return json.dumps(data, ensure_ascii=False, indent=1)


def env_text(variables: Mapping[str, str], layout: Layout, rnd: random.Random | None) -> str:
    lines = [f"{k}={v}" for k, v in variables.items()]
    if rnd is not None:
        rnd.shuffle(lines)
    if layout.env_comments:
        lines = [x for line in lines for x in ("# a comment", "", f"  {line}")]
    end = "\r\n" if layout.crlf else "\n"
    return "".join(line + end for line in lines)


# --- values -----------------------------------------------------------------------------

# Characters an author types, `$`, braces and operators included (no newline: .env
# values are single lines; no control characters).
_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")
) | st.sampled_from("${}:-?=#'\" \t/.,@")
LITERAL = st.text(_CHARS, max_size=8)
ENV_VALUE = st.text(_CHARS, max_size=10).map(str.rstrip).filter(lambda v: "\r" not in v)
VAR_NAME = st.from_regex(r"V[A-Z0-9_]{0,5}", fullmatch=True)
UNSET_NAME = st.from_regex(r"U[A-Z0-9_]{0,5}", fullmatch=True)
_DEFAULT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="$}\n\r"),
    max_size=6,
)


@st.composite
def text_parts(draw: st.DrawFn, variables: Mapping[str, str]) -> Text:
    """A value made of literals, ``$$``, ``${VAR}`` and defaults, with its meaning."""
    written_parts: list[str] = []
    meant_parts: list[str] = []
    names = sorted(variables)
    kinds = ["literal", "dollar", "unset-default"] + (["var", "var-default"] if names else [])
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(kinds))
        if kind == "literal":
            text = draw(LITERAL)
            written_parts.append(text.replace("$", "$$"))
            meant_parts.append(text)
        elif kind == "dollar":
            written_parts.append("$$")
            meant_parts.append("$")
        elif kind == "var":
            name = draw(st.sampled_from(names))
            written_parts.append(f"${{{name}}}")
            meant_parts.append(variables[name])
        elif kind == "var-default":
            name = draw(st.sampled_from(names))
            default = draw(_DEFAULT)
            soft = draw(st.booleans())
            written_parts.append(f"${{{name}{':-' if soft else '-'}{default}}}")
            value = variables[name]
            meant_parts.append(value if value or not soft else default)
        else:
            name = draw(UNSET_NAME)
            default = draw(_DEFAULT)
            written_parts.append(f"${{{name}:-{default}}}")
            meant_parts.append(default)
    return Text("".join(written_parts), "".join(meant_parts))


IMAGES = st.sampled_from(
    [
        Text("nginx:1.25", "nginx:1.25"),
        Text("registry.local:5000/team/api:2.0.1", "registry.local:5000/team/api:2.0.1"),
        Text("${IMG_REGISTRY}/web:${IMG_TAG}", "127.0.0.1:5000/web:1.0"),
        Text("busybox@sha256:" + "a" * 64, "busybox@sha256:" + "a" * 64),
        Text("local/busybox:${IMG_TAG:-latest}", "local/busybox:1.0"),
    ]
)
IMAGE_VARIABLES = {"IMG_REGISTRY": "127.0.0.1:5000", "IMG_TAG": "1.0"}

ENV_KEY = st.from_regex(r"E[A-Z0-9_]{0,5}", fullmatch=True)
LABEL_KEY = st.from_regex(r"[a-z]{1,5}(\.[a-z]{1,5})?", fullmatch=True)
OBJECT_KEY = st.from_regex(r"[a-z][a-z0-9_.-]{0,6}[a-z0-9]", fullmatch=True)
NAME = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)
DEFAULT_STACK = st.just("{app}-{env}")
DURATION = st.sampled_from(["0s", "5s", "1m30s", "250ms", "1h"])


def _mapping(keys: st.SearchStrategy[str], values: st.SearchStrategy[Any], n: int) -> Any:
    return st.dictionaries(keys, values, max_size=n)


@st.composite
def services(
    draw: st.DrawFn,
    variables: Mapping[str, str],
    configs: list[str],
    secrets: list[str],
    networks: list[str],
    ports: set[int],
) -> dict[str, Any]:
    text = text_parts(variables)
    service: dict[str, Any] = {"image": draw(IMAGES)}
    if draw(st.booleans()):
        service["environment"] = draw(_mapping(ENV_KEY, text, 4))
    if draw(st.booleans()):
        service["labels"] = draw(_mapping(LABEL_KEY, text, 3))
    if draw(st.booleans()):
        service["command"] = draw(st.lists(text, min_size=1, max_size=3))
    deploy: dict[str, Any] = {}
    if draw(st.booleans()):
        deploy["mode"] = "global"
    elif draw(st.booleans()):
        deploy["replicas"] = draw(st.integers(0, 3) | st.just(Text("${IMG_REPLICAS}", "2")))
    if draw(st.booleans()):
        deploy["labels"] = draw(_mapping(LABEL_KEY, text, 3))
    if draw(st.booleans()):
        deploy["update_config"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "parallelism": st.integers(0, 3),
                    "delay": DURATION,
                    "order": st.sampled_from(["start-first", "stop-first"]),
                    "failure_action": st.sampled_from(["pause", "continue", "rollback"]),
                    "monitor": DURATION,
                    "max_failure_ratio": st.sampled_from([0, 0.5, 1]),
                },
            )
        )
    if draw(st.booleans()):
        deploy["restart_policy"] = {
            "condition": draw(st.sampled_from(["none", "on-failure", "any"])),
            "max_attempts": draw(st.integers(0, 5)),
        }
    if draw(st.booleans()):
        deploy["resources"] = {
            "limits": {
                "cpus": draw(st.sampled_from(["0.5", "1", "0.25"])),
                "memory": draw(st.sampled_from(["64M", "1G", "512m"])),
            }
        }
    if deploy:
        service["deploy"] = deploy
    if draw(st.booleans()):
        chosen = draw(st.lists(st.integers(1024, 65000), max_size=2, unique=True))
        chosen = [p for p in chosen if p not in ports]
        ports.update(chosen)
        service["ports"] = [
            {
                "target": draw(st.integers(1, 65535)),
                "published": p,
                "protocol": draw(st.sampled_from(["tcp", "udp"])),
                "mode": "host",
            }
            for p in chosen
        ]
    if configs and draw(st.booleans()):
        used = draw(st.lists(st.sampled_from(configs), min_size=1, max_size=2, unique=True))
        service["configs"] = [
            {"source": key, "target": f"/etc/{key}"} if draw(st.booleans()) else key for key in used
        ]
    if secrets and draw(st.booleans()):
        used = draw(st.lists(st.sampled_from(secrets), min_size=1, max_size=2, unique=True))
        service["secrets"] = [{"source": key} if draw(st.booleans()) else key for key in used]
    if networks and draw(st.booleans()):
        service["networks"] = draw(st.lists(st.sampled_from(networks), min_size=1, unique=True))
    if draw(st.booleans()):
        service["healthcheck"] = {
            "test": ["CMD", "true"],
            "interval": draw(DURATION),
            "retries": draw(st.integers(1, 5)),
        }
    if draw(st.booleans()):
        service["stop_grace_period"] = draw(DURATION)
    return service


@cache
def _encrypted(plaintext: bytes) -> bytes:
    return encrypt(plaintext, [IDENTITY.recipient])


SECRET_VALUES = [b"s3cret", b"another-value", b"p@ss$word"]


@st.composite
def repos(
    draw: st.DrawFn,
    *,
    overlays: bool = True,
    app: st.SearchStrategy[str] = NAME,
    env: st.SearchStrategy[str] = NAME,
    stack_template: st.SearchStrategy[str] = DEFAULT_STACK,
    service_names: st.SearchStrategy[str] = NAME,
    object_keys: st.SearchStrategy[str] = OBJECT_KEY,
    max_services: int = 3,
) -> GeneratedRepo:
    """A repository of one application in one environment that renders (or, with
    unusual names, that fails with a clear error)."""
    variables = dict(draw(st.dictionaries(VAR_NAME, ENV_VALUE, max_size=4)))
    variables.update(IMAGE_VARIABLES)
    variables["IMG_REPLICAS"] = "2"
    configs = draw(st.lists(object_keys, max_size=2, unique=True))
    secrets = draw(st.lists(object_keys, max_size=2, unique=True))
    networks = draw(st.lists(NAME, max_size=2, unique=True))
    files: dict[str, bytes] = {}
    top: dict[str, Any] = {}
    for key in configs:
        content = draw(st.binary(min_size=1, max_size=40))
        files[f"{COMPOSE_DIR}/files/{key}.conf"] = content
        top.setdefault("configs", {})[key] = {"file": f"./files/{key}.conf"}
    for key in secrets:
        files[f"{COMPOSE_DIR}/files/{key}.age"] = _encrypted(draw(st.sampled_from(SECRET_VALUES)))
        top.setdefault("secrets", {})[key] = {"file": f"./files/{key}.age"}
    for net in networks:
        top.setdefault("networks", {})[net] = {"driver": "overlay"}
    ports: set[int] = set()
    names = draw(st.lists(service_names, min_size=1, max_size=max_services, unique=True))
    base = {
        "services": {
            name: draw(services(variables, configs, secrets, networks, ports)) for name in names
        },
        **top,
    }
    compose: list[tuple[str, dict[str, Any]]] = [("docker-compose.yml", base)]
    if overlays and draw(st.booleans()):
        overlay: dict[str, Any] = {}
        for name in draw(st.lists(st.sampled_from(names), unique=True)):
            over: dict[str, Any] = {}
            if draw(st.booleans()):
                over["image"] = draw(IMAGES)
            if draw(st.booleans()):
                over["environment"] = draw(_mapping(ENV_KEY, text_parts(variables), 2))
            if draw(st.booleans()):
                over["deploy"] = {"labels": draw(_mapping(LABEL_KEY, text_parts(variables), 2))}
            overlay[name] = over
        compose.append(("overlay.yml", {"services": overlay}))
    return GeneratedRepo(
        app=draw(app),
        env=draw(env),
        stack_template=draw(stack_template),
        compose=tuple(compose),
        variables=variables,
        files=files,
    )


layouts = st.builds(
    Layout,
    seed=st.none() | st.integers(0, 2**16),
    style=st.sampled_from(["flow", "block"]),
    list_form=st.booleans(),
    crlf=st.booleans(),
    env_comments=st.booleans(),
    reverse_files=st.booleans(),
)

ASCII_NAME_CHARS = string.ascii_letters + string.digits + "-_."
