"""Compose merge rules as ``docker stack config`` applies them (each rule here is also
checked against the real CLI by tests/integration/test_render_parity.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gitswarm.errors import PathError
from gitswarm.render.compose import Merged, load_compose


def _load(
    *files: str, variables: dict[str, str] | None = None, extra: dict[str, str] | None = None
) -> Merged:
    sources = [(f"dir{i}/c{i}.yml", text.encode()) for i, text in enumerate(files)]
    store = {k: v.encode() for k, v in (extra or {}).items()}

    def read(path: str) -> bytes:
        if path not in store:
            raise PathError(f"{path} does not exist")
        return store[path]

    return load_compose(sources, variables or {}, read)


def _merge(*files: str, **kw: Any) -> dict[str, Any]:
    merged = _load(*files, **kw)
    assert merged.problems == [], [str(p) for p in merged.problems]
    return merged.to_data()


def test_services_merge_by_name_and_scalars_override() -> None:
    out = _merge(
        "services:\n  a: {image: x:1, user: '1'}\n  b: {image: b}\n",
        "services:\n  a: {image: x:2}\n  c: {image: c}\n",
    )
    assert out["services"]["a"]["image"] == "x:2"
    assert out["services"]["a"]["user"] == "1"
    assert sorted(out["services"]) == ["a", "b", "c"]
    assert out["version"] == "3.13"


def test_empty_values_never_override() -> None:
    out = _merge(
        "services:\n  a:\n    image: x\n    init: true\n    read_only: true\n"
        "    environment: {A: '1', B: '2'}\n    deploy: {replicas: 2}\n",
        "services:\n  a:\n    init: false\n    read_only: false\n"
        "    environment: {A: '', C: '3'}\n",
    )
    a = out["services"]["a"]
    assert a["init"] is True and a["read_only"] is True
    assert a["environment"] == {"A": "1", "B": "2", "C": "3"}
    assert a["deploy"]["replicas"] == 2


def test_replicas_zero_does_override() -> None:
    out = _merge(
        "services:\n  a: {image: x, deploy: {replicas: 3}}\n",
        "services:\n  a: {deploy: {replicas: 0}}\n",
    )
    assert out["services"]["a"]["deploy"]["replicas"] == 0


def test_keyed_lists_merge_by_key_and_come_out_sorted() -> None:
    out = _merge(
        "services:\n  a:\n    image: x\n    ports: ['90:90', '80:80']\n"
        "    volumes: ['dd:/data', 'ee:/etc/e']\n    secrets: [s2, s1]\n",
        "services:\n  a:\n    ports: [{target: 8080, published: 80}]\n    volumes: ['ff:/data']\n"
        "    secrets: [{source: s1, target: /run/one}]\n",
    )
    a = out["services"]["a"]
    assert [(p["published"], p["target"]) for p in a["ports"]] == [(80, 8080), (90, 90)]
    assert [(v["source"], v["target"]) for v in a["volumes"]] == [("ff", "/data"), ("ee", "/etc/e")]
    assert a["secrets"] == [{"source": "s1", "target": "/run/one"}, {"source": "s2"}]


def test_other_lists_are_concatenated_even_healthcheck_test() -> None:
    out = _merge(
        "services:\n  a:\n    image: x\n    cap_add: [A]\n    command: [one]\n"
        "    healthcheck: {test: [CMD, a]}\n    deploy: {placement: {constraints: [x==1]}}\n",
        "services:\n  a:\n    cap_add: [B]\n    command: two three\n"
        "    healthcheck: {test: [CMD, b]}\n    deploy: {placement: {constraints: [y==2]}}\n",
    )
    a = out["services"]["a"]
    assert a["cap_add"] == ["A", "B"]
    assert a["command"] == ["two", "three"]
    assert a["healthcheck"]["test"] == ["CMD", "a", "CMD", "b"]
    assert a["deploy"]["placement"]["constraints"] == ["x==1", "y==2"]


def test_top_level_objects_are_replaced_per_name_and_extras_come_from_the_first_file() -> None:
    out = _merge(
        "services:\n  a: {image: x}\nnetworks:\n  n: {driver: overlay, attachable: true}\nx-a: 1\n",
        "services: {}\nnetworks:\n  n: {driver: bridge}\nx-b: 2\n",
    )
    assert out["networks"] == {"n": {"driver": "bridge"}}
    assert out["x-a"] == 1 and "x-b" not in out


def test_file_paths_resolve_from_the_first_files_folder() -> None:
    out = _merge(
        "services:\n  a: {image: x}\n",
        "configs:\n  c: {file: ./conf/c.txt}\nsecrets:\n  s: {file: ../dir1/s.age}\n",
    )
    assert out["configs"]["c"]["file"] == "dir0/conf/c.txt"
    assert out["secrets"]["s"]["file"] == "dir1/s.age"


def test_env_file_is_resolved_into_environment_and_dropped() -> None:
    out = _merge(
        "services:\n  a:\n    image: x\n    env_file: [app.env]\n    environment: {B: override}\n",
        variables={"FROMVARS": "v"},
        extra={"dir0/app.env": "A=1\nB=2\nFROMVARS\n"},
    )
    assert out["services"]["a"]["environment"] == {"A": "1", "B": "override", "FROMVARS": "v"}
    assert "env_file" not in out["services"]["a"]


@pytest.mark.parametrize(
    ("text", "words", "rule"),
    [
        (
            "- a\n- b\n",
            "must be a mapping (services:, networks:, ...), but this one is a list",
            "compose-shape",
        ),
        ("just a string\n", "a single string", "compose-shape"),
        ("services:\n  a:\n    image: x\n    deploy: {replicas: three}\n", ":4:", "compose-schema"),
        (
            "services:\n  a: {image: x}\nbogus: 1\n",
            "unknown key 'bogus' at the top level",
            "compose-schema",
        ),
        (
            "services:\n  a: {image: x, volumes: ['./data:/data']}\n",
            "relative to the checkout",
            "bind-mount-relative",
        ),
        (
            "services:\n  a: {image: x}\nconfigs:\n  c: {file: /etc/shadow}\n",
            "absolute path",
            "path-outside-repo",
        ),
        (
            "services:\n  a: {image: x}\nconfigs:\n  c: {file: ../../outside}\n",
            "leaves the repository",
            "path-outside-repo",
        ),
        ("services:\n  a: {image: x}\nsecrets:\n  s: {}\n", "needs `file:`", "compose-value"),
        (
            "services:\n  a: {image: x, env_file: missing.env}\n",
            "does not exist",
            "file-missing",
        ),
        (
            "version: '2.4'\nservices: {}\n",
            "unsupported Compose file version '2.4'",
            "compose-schema",
        ),
    ],
)
def test_bad_files_name_file_line_and_problem(text: str, words: str, rule: str) -> None:
    merged = _load(text)
    assert merged.problems, "expected a problem"
    problem = merged.problems[0]
    assert problem.file == "dir0/c0.yml"
    assert words in str(problem), str(problem)
    assert problem.rule == rule


def test_replicas_three_is_a_schema_error_at_its_line() -> None:
    merged = _load('services:\n  a:\n    image: x\n    deploy:\n      replicas: "three"\n')
    assert [str(p) for p in merged.problems] == [
        "dir0/c0.yml:5:7: services.a.deploy.replicas must be an integer, "
        'not "three" [compose-schema]'
    ]


@pytest.mark.parametrize("version", ["9" * 300, "3.8\\0", "3.8/../3.9", "../../x"])
def test_a_version_that_names_no_schema_is_a_problem_not_an_oserror(version: str) -> None:
    """The version became a file name as written: 300 characters raised OSError (file
    name too long), a traceback instead of a problem. Found by
    tests/unit/test_input_fuzz.py."""
    merged = _load(f'version: "{version}"\nservices: {{}}\n')
    (problem,) = merged.problems
    assert (problem.file, problem.line, problem.rule) == ("dir0/c0.yml", 1, "compose-schema")
    assert str(problem).startswith("dir0/c0.yml:1:1: unsupported Compose file version ")
    assert "use one of 3.0, 3.1," in str(problem)


def test_versions_must_agree() -> None:
    merged = _load("version: '3.8'\nservices: {}\n", "services: {}\n")
    assert "version 3.13 differs from the first compose file's 3.8" in str(merged.problems[0])
    assert merged.problems[0].file == "dir1/c1.yml"


def test_every_problem_of_every_file_at_once() -> None:
    merged = _load(
        "services:\n  a: {image: '${A}'}\n  b: {image: x, bogus: 1}\n",
        "services:\n  c: {image: '${C}'}\n",
    )
    text = "\n".join(str(p) for p in merged.problems)
    assert "dir0/c0.yml:2:7" in text and "variable A is not set" in text
    assert "dir0/c0.yml:3:17: unknown key 'bogus'" in text
    assert "dir1/c1.yml:2:7" in text and "variable C is not set" in text


def test_source_locations_follow_the_last_file_that_wrote_a_value() -> None:
    merged = _load(
        "services:\n  a:\n    image: x\n    environment: [A=1]\n",
        "services:\n  a:\n    image: y\n",
    )
    assert merged.locate(("services", "a", "image")).file == "dir1/c1.yml"  # type: ignore[union-attr]
    where = merged.locate(("services", "a", "environment", "A"))
    assert where is not None and (where.file, where.line) == ("dir0/c0.yml", 4)


def test_versions_are_compared_even_when_the_first_file_has_other_problems() -> None:
    merged = _load("version: '3.8'\nservices:\n  a: {image: '${X}'}\n", "services: {}\n")
    text = "\n".join(str(p) for p in merged.problems)
    assert "variable X is not set" in text and "differs from the first compose file's 3.8" in text
