"""Properties of render/ over generated repositories (Hypothesis; profiles in
tests/properties.py):

- the same repository renders the same bytes and service hashes however it is written
  (order of keys and files, flow or block YAML, list or mapping form, .env layout);
- interpolation means what the author wrote, exactly once: every generated value
  renders as its meaning, and the deployable file, read back as ``docker stack deploy``
  reads it, gives the render again (no ``$`` left for a second interpolation);
- the names gitswarm gives Swarm objects are within Swarm's limits, or the render
  fails with a clear InputError naming the file.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gitswarm.errors import InputError
from gitswarm.model.stack import LABEL_SPEC_HASH, DesiredStack
from gitswarm.render import render_stack, to_yaml
from gitswarm.render.interpolate import interpolate, substitute
from gitswarm.render.names import (
    MAX_OBJECT_NAME,
    MAX_SERVICE_NAME,
    OBJECT_NAME,
    SERVICE_NAME,
    object_name,
)
from gitswarm.render.output import escape_dollars
from gitswarm.repo import load_config
from gitswarm.repo.yamlsrc import parse_yaml
from tests.properties import examples
from tests.unit.generated_stacks import (
    IDENTITY,
    LITERAL,
    GeneratedRepo,
    Layout,
    layouts,
    meant,
    repos,
    text_parts,
)


def render(repo: GeneratedRepo, layout: Layout | None = None) -> DesiredStack:
    tree = repo.tree(layout)
    return render_stack(tree, load_config(tree), repo.app, repo.env, IDENTITY)


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


# --- determinism ----------------------------------------------------------------------------


@settings(max_examples=examples(30))
@given(repos(), layouts)
def test_render_is_the_same_however_the_repository_is_written(
    repo: GeneratedRepo, layout: Layout
) -> None:
    first = render(repo)
    other = render(repo, layout)
    assert to_yaml(other) == to_yaml(first)
    assert other.service_hashes == first.service_hashes
    assert [(o.kind, o.name, o.data) for o in other.objects] == [
        (o.kind, o.name, o.data) for o in first.objects
    ]
    again = render(repo)  # and twice the same tree: the same bytes
    assert to_yaml(again) == to_yaml(first)


# --- interpolation ------------------------------------------------------------------------


def _without_own_labels(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not k.startswith("io.gitswarm.")}


def _as_mapping(value: Any) -> Any:
    """A mapping the CLI prints from a list form: ``KEY=value`` items."""
    if isinstance(value, list):
        return dict(item.split("=", 1) for item in value)
    return value


@settings(max_examples=examples(40))
@given(repos(overlays=False), st.booleans())
def test_every_value_renders_as_the_author_meant_it(repo: GeneratedRepo, list_form: bool) -> None:
    desired = render(repo, Layout(list_form=list_form))
    (_, data), *_ = repo.compose
    for name, service in data["services"].items():
        want = meant(service)
        got = desired.services[name]
        assert got["image"] == want["image"]
        for key in ("environment", "labels", "command"):
            if want.get(key):  # an empty mapping is left out, as the CLI does
                assert got[key] == want[key], key
        deploy = want.get("deploy", {})
        if deploy.get("labels"):
            assert _without_own_labels(got["deploy"]["labels"]) == deploy["labels"]
        if "replicas" in deploy:
            assert got["deploy"]["replicas"] == int(deploy["replicas"])


@settings(max_examples=examples(40))
@given(repos())
def test_the_deployable_file_reads_back_as_the_render(repo: GeneratedRepo) -> None:
    """What ``docker stack deploy`` reads from gitswarm's file (interpolated once more,
    with no variables at all) is exactly the render: every ``$`` was escaped once."""
    desired = render(repo)
    text = to_yaml(desired)
    doc = parse_yaml(text, "stack.yml")
    back = interpolate(doc, {})
    assert back.problems == []
    assert plain(back.data) == plain(desired.compose)
    for value in _strings(back.data):
        assert "$" not in re.sub(r"\$\$", "", escape_dollars(value))


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return [data] if isinstance(data, str) else []


_TEMPLATE = st.text(st.sampled_from("$${}:-?abAB_1 x"), max_size=16)
_VARIABLES = st.dictionaries(st.sampled_from(["a", "A", "ab", "B", "_1"]), LITERAL, max_size=4)


@given(_TEMPLATE, _VARIABLES)
@example("$$$", {})
@example("${a:-$$}", {})
@example("$${a}", {"a": "x"})
def test_interpolation_leaves_nothing_for_a_second_one(
    template: str, variables: dict[str, str]
) -> None:
    """Whatever a template interpolates to, its escaped form interpolates to that very
    value again; or the template is refused (never half interpolated)."""
    value, errors = substitute(template, variables)
    if errors:
        return
    assert substitute(escape_dollars(value), {}) == (value, [])
    assert substitute(escape_dollars(value), variables) == (value, [])


@given(st.text(max_size=20), _VARIABLES)
def test_doubled_dollars_are_one_literal_dollar(text: str, variables: dict[str, str]) -> None:
    assert substitute(text.replace("$", "$$"), variables) == (text, [])


@given(st.data())
def test_interpolation_follows_the_compose_rules(data: st.DataObject) -> None:
    """A template built from literals, ``$$``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``
    and ``${UNSET:-d}`` interpolates to exactly the sum of its parts."""
    variables = data.draw(_VARIABLES.map(lambda v: {k.upper(): x for k, x in v.items()}))
    text = data.draw(text_parts({f"V{k}": v for k, v in variables.items()}))
    named = {f"V{k}": v for k, v in variables.items()}
    assert substitute(text.written, named) == (text.meant, [])


# --- names --------------------------------------------------------------------------------

_NAME_CHARS = st.sampled_from("abcXYZ019-_.")
_SERVICE = st.sampled_from(["web", "Web"]) | st.text(_NAME_CHARS, min_size=1, max_size=30)
_KEY = st.sampled_from(["conf", "Conf"]) | st.text(_NAME_CHARS, min_size=1, max_size=70)
_STACK_TEMPLATE = st.text(st.sampled_from("abZ09-_"), min_size=1, max_size=20).map(
    lambda t: t + "-{env}"
) | st.text(st.sampled_from("abZ09-_"), min_size=1, max_size=70)


@settings(max_examples=examples(60))
@given(
    repos(
        overlays=False,
        app=st.from_regex(r"[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?", fullmatch=True),
        env=st.from_regex(r"[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?", fullmatch=True),
        stack_template=_STACK_TEMPLATE,
        service_names=_SERVICE,
        object_keys=_KEY,
        max_services=2,
    )
)
def test_swarm_names_are_within_limits_or_refused_clearly(repo: GeneratedRepo) -> None:
    try:
        desired = render(repo)
    except InputError as exc:
        assert exc.problems, str(exc)
        for problem in exc.problems:
            assert problem.file is not None, str(problem)
            assert problem.message and "Traceback" not in problem.message
        return
    for name in desired.services:
        full = f"{desired.stack}_{name}"
        assert SERVICE_NAME.match(full) and len(full) <= MAX_SERVICE_NAME, full
    # Swarm compares names without case: no two may differ only in case
    assert len({n.lower() for n in desired.services}) == len(desired.services)
    for kind in ("config", "secret"):
        names = [o.name for o in desired.objects if o.kind == kind]
        assert len({n.lower() for n in names}) == len(names), names
    for material in desired.objects:
        assert OBJECT_NAME.match(material.name), material.name
        assert len(material.name) <= MAX_OBJECT_NAME, material.name
        assert material.name.startswith(f"{desired.stack}_")
    for service in desired.services.values():
        assert LABEL_SPEC_HASH in service["deploy"]["labels"]


@given(
    st.text(st.sampled_from("abZ09-_"), min_size=1, max_size=70),
    st.text(_NAME_CHARS, min_size=1, max_size=80),
    st.text(st.sampled_from("0123456789abcdef"), min_size=12, max_size=12),
)
def test_object_names_fit_swarm_or_are_none(stack: str, key: str, digest: str) -> None:
    name = object_name(stack, key, digest)
    if name is not None:
        assert OBJECT_NAME.match(name) and len(name) <= MAX_OBJECT_NAME
        assert name.startswith(f"{stack}_") and name.endswith(f"_{digest}")
