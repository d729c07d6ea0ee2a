"""YAML is read the way the Docker CLI (Go's yaml.v3) reads it, with file:line:column."""

from __future__ import annotations

import math

import pytest

from gitswarm.errors import YamlError
from gitswarm.repo.yamlsrc import YamlTimestamp, is_plain_string, parse_yaml, resolve_plain


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("yes", "yes"),  # YAML 1.1 booleans are strings for yaml.v3 into interface{}
        ("on", "on"),
        ("y", "y"),
        ("~", None),
        ("null", None),
        ("", None),
        ("0400", 256),  # legacy octal, as yaml.v3 decodes it
        ("0o17", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("1_000", 1000),
        ("-12", -12),
        ("+7", 7),
        ("09", 9.0),  # not octal, so a float
        ("1e3", 1000.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1.0.0", "1.0.0"),
        ("12:30", "12:30"),  # no sexagesimal numbers in yaml.v3
        ("0.50", 0.5),
        ("<<", "<<"),
        ("nginx:1.25", "nginx:1.25"),
    ],
)
def test_plain_scalars_resolve_like_yaml_v3(text: str, value: object) -> None:
    got = resolve_plain(text)
    assert got == value and type(got) is type(value)


def test_unquoted_timestamps_are_go_times() -> None:
    date = resolve_plain("2001-12-14")
    assert isinstance(date, YamlTimestamp) and date == "2001-12-14"
    assert date.go_string() == "2001-12-14 00:00:00 +0000 UTC"  # what fmt.Sprint prints
    assert date.go_rfc3339() == "2001-12-14T00:00:00Z"  # what yaml.v3 writes back
    stamp = resolve_plain("2001-12-14t21:59:43.10-05:00")
    assert isinstance(stamp, YamlTimestamp)
    assert stamp.go_string() == "2001-12-14 21:59:43.1 -0500 -0500"
    assert type(resolve_plain("2001-13-14")) is str  # not a date: a string
    assert not is_plain_string("2001-12-14") and is_plain_string(date)


def test_special_floats() -> None:
    assert math.isnan(resolve_plain(".nan"))
    assert resolve_plain("-.inf") == -math.inf


def test_quoted_and_tagged_scalars() -> None:
    doc = parse_yaml(b"a: '0400'\nb: !!str 12\nc: !!float 3\nd: \"true\"\n", "f.yml")
    assert doc.data == {"a": "0400", "b": "12", "c": 3.0, "d": "true"}


def test_positions_of_keys_and_items() -> None:
    doc = parse_yaml(b"services:\n  web:\n    image: x\n    ports:\n      - 80\n", "c.yml")
    assert doc.positions[("services", "web", "image")] == (3, 5)
    assert doc.positions[("services", "web", "ports", 0)] == (5, 9)
    problem = doc.problem(("services", "web", "image", "deeper"), "bad", "rule")
    assert str(problem) == "c.yml:3:5: bad [rule]"


def test_merge_keys_explicit_keys_win_and_later_merges_override_earlier() -> None:
    doc = parse_yaml(
        b"a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 0\n", "m.yml"
    )
    assert doc.data["c"] == {"x": 0, "y": 2, "z": 2}
    assert doc.positions[("c", "x")] == (5, 3)  # the explicit key, not the anchor's


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (b"services:\n  web: [1, 2\n", "3:1", "flow sequence at line 2, column 8"),
        (b"a: 1\nb:\n  c: 1\n  c: 2\n", "4:3", "'c' already defined at line 3"),
        (b"a: *nope\n", "1:4", "unknown anchor"),
        (b"a: !!int abc\n", "1:4", "cannot decode"),
        (b"a: !custom x\n", "1:4", "unsupported YAML tag"),
        (b"? [1, 2]\n: x\n", "1:3", "must be a string"),
        (b"1: x\n", "1:1", "must be a string"),
        (b"a: 1\n---\nb: 2\n", "", "2 YAML documents"),
        (b"\xff\xfe", "", "not valid UTF-8"),
        (b"a: &x [*x]\n", "1:4", "contains an alias to itself"),
    ],
)
def test_errors_name_file_line_and_column(text: bytes, where: str, words: str) -> None:
    with pytest.raises(YamlError) as info:
        parse_yaml(text, "dir/file.yml")
    message = str(info.value)
    assert f"dir/file.yml:{where}" in message
    assert words in message
    assert info.value.problems[0].rule == "yaml"


def test_a_surrogate_escape_is_refused_like_yaml_v3_does() -> None:
    """``"\\ud83d"`` names half a UTF-16 pair, which no UTF-8 text holds: yaml.v3 (so
    ``docker stack config``) refuses it; gitswarm crashed hashing the service
    (UnicodeEncodeError) before. Found by test_render_properties.py."""
    text = b'services:\n  web:\n    image: nginx\n    environment:\n      A: "\\ud83d\\ude00"\n'
    with pytest.raises(YamlError) as info:
        parse_yaml(text, "base/docker-compose.yml")
    assert str(info.value) == (
        "base/docker-compose.yml:5:10: \\uD83D is half of a UTF-16 surrogate pair, not a "
        "character; write the character itself, or \\U and its 8 hex digits [yaml]"
    )
    key = b'"k\\udfff": 1\n'
    with pytest.raises(YamlError, match=r"^k.yml:1:1: \\uDFFF is half"):
        parse_yaml(key, "k.yml")
    assert parse_yaml(b'a: "\\U0001F600"\n', "ok.yml").data == {"a": "\U0001f600"}


def test_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(YamlError, match="expands to more than"):
        parse_yaml("\n".join(lines).encode(), "bomb.yml")


def test_empty_document_is_none() -> None:
    assert parse_yaml(b"# only a comment\n", "e.yml").data is None


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("hello", True),
        ("0400", False),
        ("true", False),
        ("1_000", False),
        ("yes", True),
        ("", False),
    ],
)
def test_which_strings_can_be_written_plain(text: str, plain: bool) -> None:
    assert is_plain_string(text) is plain
