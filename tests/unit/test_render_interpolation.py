"""${VAR} interpolation and .env files: the CLI's forms, plus gitswarm's safer errors."""

from __future__ import annotations

import pytest

from gitswarm.render.envfile import parse_env_file
from gitswarm.render.interpolate import interpolate, substitute
from gitswarm.repo.yamlsrc import parse_yaml

VARS = {"TAG": "1.2", "EMPTY": "", "HOME": "/root"}


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("app:${TAG}", "app:1.2"),
        ("app:$TAG", "app:1.2"),
        ("${MISSING:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${MISSING-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${TAG:?needed}", "1.2"),
        ("${EMPTY?needed}", ""),
        ("$$HOME and $${X}", "$HOME and ${X}"),
        ("price: $$5", "price: $5"),
        ("no variables", "no variables"),
        ("${TAG}-alpine", "1.2-alpine"),
    ],
)
def test_forms(template: str, value: str) -> None:
    out, errors = substitute(template, VARS)
    assert errors == []
    assert out == value


def test_a_default_is_not_nested() -> None:
    out, errors = substitute("${MISSING:-${TAG}}", VARS)
    assert errors == [] and out == "${TAG}"  # default text is "${TAG", then a literal "}"


@pytest.mark.parametrize(
    ("template", "words", "rule"),
    [
        ("app:${NOPE}", "variable NOPE is not set", "variable-unset"),
        ("app:$NOPE", "variable NOPE is not set", "variable-unset"),
        (
            "${NOPE:?give a tag}",
            "required variable NOPE is not set: give a tag",
            "variable-required",
        ),
        (
            "${EMPTY:?must-be-set}",
            "required variable EMPTY is empty: must-be-set",
            "variable-required",
        ),
        ("${NOPE?x}", "required variable NOPE is not set", "variable-required"),
        ("cost $5", "invalid interpolation", "interpolation-syntax"),
        ("${}", "invalid interpolation", "interpolation-syntax"),
        ("$TAG-alpine", "ambiguous", "interpolation-syntax"),
    ],
)
def test_errors(template: str, words: str, rule: str) -> None:
    _, errors = substitute(template, VARS)
    assert len(errors) == 1
    assert words in str(errors[0])
    assert errors[0].rule == rule


def test_every_unset_variable_is_reported_with_file_and_line() -> None:
    doc = parse_yaml(
        b"services:\n  web:\n    image: ${REG}/web:${TAG}\n    environment:\n      A: $MISSING\n",
        "base/docker-compose.yml",
    )
    result = interpolate(doc, {"TAG": "1"})
    messages = [str(p) for p in result.problems]
    assert messages[0].startswith("base/docker-compose.yml:3:5: services.web.image: variable REG")
    assert messages[1].startswith("base/docker-compose.yml:5:7: services.web.environment.A:")
    assert "MISSING" in messages[1]


def test_changed_values_are_cast_where_the_cli_casts_them() -> None:
    doc = parse_yaml(
        b"services:\n  web:\n    deploy: {replicas: '${N}'}\n    read_only: ${RO}\n"
        b"    environment: {N: '${N}'}\n",
        "c.yml",
    )
    data = interpolate(doc, {"N": "3", "RO": "yes"}).data
    web = data["services"]["web"]
    assert web["deploy"]["replicas"] == 3
    assert web["read_only"] is True
    assert web["environment"]["N"] == "3"  # not a cast path


def test_a_failed_cast_names_the_value() -> None:
    doc = parse_yaml(b"services:\n  web:\n    deploy:\n      replicas: ${N}\n", "c.yml")
    result = interpolate(doc, {"N": "three"})
    assert "c.yml:4:7" in str(result.problems[0])
    assert "'three' after interpolation is not a valid int" in str(result.problems[0])


def test_keys_are_not_interpolated() -> None:
    doc = parse_yaml(b"services:\n  ${X}:\n    image: a\n", "c.yml")
    assert interpolate(doc, {}).data == {"services": {"${X}": {"image": "a"}}}


# --- .env files ---------------------------------------------------------------------------


def test_env_file_syntax() -> None:
    text = b'\xef\xbb\xbf# comment\n  A=1\nB="quoted"\nC=\nD=x=y\nE=trailing  \r\n\n'
    parsed = parse_env_file(text, "environments/dev/.env")
    assert parsed.problems == []
    assert parsed.values == {"A": "1", "B": '"quoted"', "C": "", "D": "x=y", "E": "trailing  "}
    assert parsed.lines["B"] == 3


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"A B=1\n", "contains whitespace"),
        (b"=1\n", "no variable name"),
        (b"JUSTKEY\n", "JUSTKEY has no value"),
        (b"A=\xff\n", "not valid UTF-8"),
    ],
)
def test_env_file_errors_name_the_line(text: bytes, words: str) -> None:
    parsed = parse_env_file(b"OK=1\n" + text, "environments/dev/.env")
    assert len(parsed.problems) == 1
    assert str(parsed.problems[0]).startswith("environments/dev/.env:2: ")
    assert words in str(parsed.problems[0])


def test_env_file_bare_keys_use_the_lookup() -> None:
    parsed = parse_env_file(b"A\nB\n", "svc.env", lookup={"A": "from-vars"}.get)
    assert parsed.values == {"A": "from-vars"}
    assert parsed.problems == []
