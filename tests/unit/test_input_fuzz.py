"""Fuzzing the inputs a commit controls: compose files (YAML text through the whole
render) and ``.env`` files. Whatever a commit holds, render gives a stack or an
InputError naming the file — never another exception, never a RecursionError, never a
hang: each example runs under a time bound (tests/properties.py).

Inputs are arbitrary text and bytes, valid files mutated (characters inserted, deleted
and replaced, lines repeated, indented or cut), and documents shaped by the Compose
schema with values of every type in every field, over one or two files (the merge).
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from functools import cache
from importlib import resources
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gitswarm.errors import InputError
from gitswarm.model.stack import DesiredStack
from gitswarm.render import render_stack, to_yaml
from gitswarm.render.envfile import parse_env_file
from gitswarm.render.interpolate import interpolate
from gitswarm.render.output import dump_yaml
from gitswarm.repo import load_config
from gitswarm.repo.yamlsrc import parse_yaml
from tests.properties import ExampleTimedOut, examples, time_bound
from tests.unit.generated_stacks import IDENTITY, Layout, repos
from tests.unit.test_render_trees import MemoryTree

BOUND = 10.0  # seconds for one example: a render takes milliseconds

CONFIG = (
    '{"project": "fuzz", "application": {"name": "app", "stack": "fz-{env}", '
    '"files": ["stack/base.yml", "stack/over.yml"]}, "environments": {"dev": '
    '{"secrets": {"recipients": ["' + IDENTITY.recipient + '"]}}}}'
)
GOOD_BASE = """\
services:
  web:
    image: ${REGISTRY}/web:${TAG:-1}
    environment: [A=1, "PRICE=$$5"]
    ports: ["8080:80", {target: 443, published: 8443, mode: host}]
    configs: [{source: conf, target: /etc/app.yml}]
    secrets: [pw]
    deploy: {replicas: 2, labels: {team: core}, update_config: {order: start-first}}
    healthcheck: {test: [CMD, "true"], interval: 5s}
  worker:
    image: nginx:1.25
    command: sleep 10
    env_file: ./app.env
configs:
  conf: {file: ./conf.yml}
secrets:
  pw: {file: ./pw.age}
"""
GOOD_OVERLAY = "services:\n  web:\n    environment: {B: two}\n    deploy: {replicas: 0}\n"


@cache
def _secret() -> bytes:
    from gitswarm.render.secrets import encrypt

    return encrypt(b"pw", [IDENTITY.recipient])


def tree(
    base: str | bytes = GOOD_BASE,
    overlay: str | bytes = GOOD_OVERLAY,
    env: str | bytes = "REGISTRY=127.0.0.1:5000\nTAG=2\n",
    app_env: str | bytes = "X=1\n",
) -> MemoryTree:
    return MemoryTree(
        {
            "gitswarm.yml": CONFIG,
            "stack/base.yml": base,
            "stack/over.yml": overlay,
            "stack/conf.yml": "a: 1\n",
            "stack/pw.age": _secret(),
            "stack/app.env": app_env,
            "environments/dev/.env": env,
        },
        revision="f" * 40,
    )


def render_or_input_error(files: MemoryTree, bound: float = BOUND) -> DesiredStack | InputError:
    """The render, or its InputError; any other exception fails the example."""
    with time_bound(bound):
        try:
            desired = render_stack(files, load_config(files), "app", "dev", IDENTITY)
        except InputError as exc:
            assert exc.problems or str(exc), "an InputError says what is wrong"
            for problem in exc.problems:
                assert problem.message
            return exc
        # the deployable file reads back, as docker stack deploy reads it, as the render
        back = interpolate(parse_yaml(to_yaml(desired), "deployable.yml"), {})
        assert back.problems == []
        assert _plain(back.data) == _plain(desired.compose)
        return desired


def _plain(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)  # NaN equals NaN here


def test_the_fuzzed_files_render_as_they_are() -> None:
    assert isinstance(render_or_input_error(tree()), DesiredStack)


# --- .env ----------------------------------------------------------------------------------

_ENV_CHARS = st.sampled_from([*"AZaz09_=#\"' \t$\r\n{}-.", "\ufeff", "\x00", "é"])
_ENV_TEXT = st.text(_ENV_CHARS, max_size=80).map(str.encode)


@given(st.binary(max_size=200) | _ENV_TEXT, st.booleans())
@example(b"\xef\xbb\xbfA=1\r\n", False)
@example(b"\xff\xfe=\n", True)
@example(b"A\n", False)
def test_the_env_parser_gives_values_or_problems(data: bytes, lookup: bool) -> None:
    with time_bound(BOUND):
        parsed = parse_env_file(data, "dev/.env", lookup=(lambda k: "v") if lookup else None)
    lines = data.count(b"\n") + 1
    for key, value in parsed.values.items():
        assert key and not any(c in key for c in " \t") and isinstance(value, str)
        assert 1 <= parsed.lines[key] <= lines
    for problem in parsed.problems:
        assert problem.file == "dev/.env" and problem.line is not None
        assert 1 <= problem.line <= lines and problem.rule == "env-file"


@settings(max_examples=examples(50))
@given(st.binary(max_size=120) | _ENV_TEXT, st.binary(max_size=120) | _ENV_TEXT)
def test_any_env_file_renders_or_is_refused(env: bytes, app_env: bytes) -> None:
    render_or_input_error(tree(env=env, app_env=app_env))


# --- compose: arbitrary and mutated text -------------------------------------------------

_YAML_CHARS = st.sampled_from([*"abAZ09:-[]{},&*!|>'\"%@`#?$ \t\n.~=/", "\ufeff", "\x85"])


@settings(max_examples=examples(100))
@given(st.text(_YAML_CHARS, max_size=120) | st.binary(max_size=60))
@example("[" * 5 + "]" * 5)
@example("a: &x [*x]")
@example('services: {a: {image: "\\ud800"}}')
def test_any_text_as_a_compose_file_renders_or_is_refused(text: str | bytes) -> None:
    render_or_input_error(tree(base=text))


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    lines = text.split("\n")
    for kind, where, chars in edits:
        if kind == 0:  # insert characters
            at = where % (len(text) + 1)
            text = text[:at] + chars + text[at:]
        elif kind == 1:  # delete a few characters
            at = where % (len(text) + 1)
            text = text[:at] + text[at + 1 + len(chars) :]
        elif kind == 2:  # replace one character
            at = where % max(len(text), 1)
            text = text[:at] + chars[:1] + text[at + 1 :]
        else:
            lines = text.split("\n")
            i = where % len(lines)
            if kind == 3:  # repeat a line
                lines.insert(i, lines[i])
            elif kind == 4:  # indent a line
                lines[i] = "  " + lines[i]
            elif kind == 5:  # dedent a line
                lines[i] = lines[i].lstrip()
            else:  # cut the file here
                lines = lines[: i + 1]
            text = "\n".join(lines)
    return text


_EDITS = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 10_000), st.text(_YAML_CHARS, max_size=3)),
    min_size=1,
    max_size=6,
)


@cache
def _seeds() -> tuple[str, ...]:
    example = resources.files("gitswarm") / "example"
    files = [
        example / "base/docker-compose.yml",
        *(example / "environments" / env / "docker-compose.yml" for env in ("development",)),
    ]
    return (GOOD_BASE, *(f.read_text() for f in files))


@settings(max_examples=examples(100))
@given(st.integers(0, 2), _EDITS, st.booleans())
def test_mutated_compose_files_render_or_are_refused(
    seed: int, edits: list[tuple[int, int, str]], overlay: bool
) -> None:
    text = _mutate(_seeds()[seed], edits)
    if overlay:
        render_or_input_error(tree(overlay=text))
    else:
        render_or_input_error(tree(base=text))


@settings(max_examples=examples(15))
@given(repos(), _EDITS)
def test_mutated_generated_stacks_render_or_are_refused(repo: Any, edits: Any) -> None:
    files = repo.tree(Layout(style="block"))
    path = next(p for p in files.files if p.endswith("docker-compose.yml"))
    files.files[path] = _mutate(files.files[path].decode(), edits).encode()
    with time_bound(BOUND), contextlib.suppress(InputError):
        render_stack(files, load_config(files), repo.app, repo.env, IDENTITY)


# --- compose: shaped by the schema, any value in any field -------------------------------

_TRICKY = st.sampled_from(
    [
        "", "0", "-1", "1.5", "1e400", "0x10", "0o7", "08", "1_0", "yes", "~", "null", "true",
        "${A}", "${A:-x}", "$$", "$", "${", "${A:?err}", "${UNSET}", "$A-b", "10s", "1m",
        "-5s", "1.5h", "1h2m3.5s", "64M", "1.5g", "-1k", "0b", "80:80", "8080:80/udp",
        "127.0.0.1:8080:80", "1-3:80-82", "[::1]:80:80", "65536:80", "a=b", "=", "a=",
        "/x:/y:ro", "./rel:/x", "~/x:/y", "vol:/data:nocopy", "/a:/b:/c:/d", "0400", "\t",
        "a\nb", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "CMD true", "host:127.0.0.1", "2001:db8::1", "nginx:1.25", "UPPER:tag", "a" * 300,
        "node.role == manager", "x-ext", "conf", "pw", "web", "..", "../../etc/passwd",
        "/abs", "./app.env", "./missing", "host", "none", "overlay", "global", "replicated",
    ]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _TRICKY
    | st.text(max_size=8)
)


@cache
def _schema() -> dict[str, Any]:
    text = (resources.files("gitswarm.render") / "schemas/config_schema_v3.13.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = _schema()["definitions"][name]
    return node


_TYPED: dict[str, st.SearchStrategy[Any]] = {
    "string": _TRICKY | st.text(max_size=8),
    "number": st.integers(-5, 70_000) | st.floats(allow_nan=True, allow_infinity=True),
    "integer": st.integers(-5, 70_000) | st.integers(-(2**70), 2**70),
    "boolean": st.booleans(),
    "null": st.none(),
}
_NAMES = ["web", "worker", "conf", "pw", "x-ext", "default"]


def _mapping(properties: dict[str, Any], depth: int, most: int) -> st.SearchStrategy[Any]:
    keys = sorted(properties)

    def chosen(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({k: shaped(properties[k], depth + 1) for k in names})

    return st.lists(st.sampled_from(keys), max_size=most, unique=True).flatmap(chosen)


def shaped(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of the type and shape the schema gives at ``node``, so that most get past
    validation into decoding, merging and checks (strings of every kind: durations,
    sizes, ports, variables; numbers past every range)."""
    node = _resolve(node)
    if depth > 6:
        return _SCALARS
    options: list[st.SearchStrategy[Any]] = []
    for alternative in node.get("oneOf", []) + node.get("anyOf", []):
        options.append(st.deferred(lambda a=alternative: shaped(a, depth + 1)))
    if "enum" in node:
        options.append(st.sampled_from(node["enum"]))
    kinds = node.get("type", [])
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind == "object":
            properties = dict(node.get("properties", {}))
            for pattern, sub in node.get("patternProperties", {}).items():
                for name in _NAMES if pattern.startswith("^[") else ["x-a", "b"]:
                    properties.setdefault(name, sub)
            if properties:
                options.append(_mapping(properties, depth, 4))
            else:
                options.append(st.dictionaries(_TRICKY, _SCALARS, max_size=3))
        elif kind == "array":
            items = node.get("items")
            item = shaped(items, depth + 1) if isinstance(items, dict) else _SCALARS
            options.append(st.lists(item, max_size=3))
        elif kind in _TYPED:
            options.append(_TYPED[kind])
    if not options:
        return _SCALARS
    return st.one_of(*options)


def _document() -> st.SearchStrategy[Any]:
    """A compose file: services (each with an image, mostly valid) and the other
    top-level sections, their fields shaped by the schema."""
    definitions = _schema()["definitions"]
    service = _mapping(definitions["service"]["properties"], 1, 5)
    image = st.sampled_from(["nginx:1.25", "${REGISTRY}/a:${TAG}"]) | _TRICKY

    def with_image(fields: dict[str, Any], img: Any) -> dict[str, Any]:
        return {"image": img, **fields}

    services = st.dictionaries(
        st.sampled_from(_NAMES), st.builds(with_image, service, image), min_size=1, max_size=2
    )
    top = {k: v for k, v in _schema()["properties"].items() if k not in ("services", "version")}
    version = st.sampled_from(["3.8", "3", "3.13", "3.0", "3.3"])  # others: text above
    return st.builds(
        lambda s, v, rest: {"services": s, **({} if v is None else {"version": v}), **rest},
        services,
        st.none() | version,
        _mapping(top, 0, 3),
    )


@settings(max_examples=examples(60))
@given(st.deferred(_document), st.none() | st.deferred(_document))
def test_compose_documents_of_any_shape_render_or_are_refused(base: Any, overlay: Any) -> None:
    over = parse_yaml(GOOD_OVERLAY, "o.yml").data if overlay is None else overlay
    over.pop("version", None)
    if "version" in base:  # all files of a stack have the same version (else: refused early)
        over["version"] = base["version"]
    render_or_input_error(tree(base=dump_yaml(base), overlay=dump_yaml(over)))


class Overflowed(Exception):
    """A RecursionError, re-raised without its traceback: pytest's report of a traceback
    that deep can itself fail (a frame without a line number), ending the whole run."""


@pytest.mark.parametrize("depth", [150, 1000, 2500])
@pytest.mark.parametrize("opener", ["[", "{a: ", "- ", "block"])
def test_deep_nesting_is_refused_not_a_recursion_error(opener: str, depth: int) -> None:
    if opener == "block":
        text = "".join(f"{' ' * i}a:\n" for i in range(depth)) + " " * depth + "x\n"
    else:
        text = opener * depth + "x"
    try:
        result = render_or_input_error(tree(base=text), bound=4)  # milliseconds, once bounded
    except RecursionError:
        raise Overflowed(f"RecursionError at {depth} levels of {opener!r}") from None
    assert isinstance(result, InputError)


def test_the_time_bound_stops_a_hang_and_gives_pytest_timeout_its_alarm_back() -> None:
    handler = signal.getsignal(signal.SIGALRM)
    remaining = signal.getitimer(signal.ITIMER_REAL)[0]  # pytest-timeout's, if it set one
    started = time.monotonic()
    with pytest.raises(ExampleTimedOut), time_bound(0.2):
        while True:
            time.sleep(0.01)
    assert time.monotonic() - started < 2
    assert signal.getsignal(signal.SIGALRM) is handler
    if remaining > 0:
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= remaining
