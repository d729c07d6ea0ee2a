"""The Go routines the compose loader relies on, reproduced exactly."""

from __future__ import annotations

import pytest

from gitswarm.render.composetypes import parse_port_spec, parse_volume
from gitswarm.render.golang import (
    GoError,
    atoi,
    format_duration,
    format_float,
    parse_duration,
    parse_go_bool,
    ram_in_bytes,
    shlex_split,
    sprint,
)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("5s", "5s"),
        ("90s", "1m30s"),
        ("1h", "1h0m0s"),
        ("1.5s", "1.5s"),
        ("500ms", "500ms"),
        ("1us", "1µs"),
        ("1µs", "1µs"),
        ("2h45m30.5s", "2h45m30.5s"),
        ("-1.5h", "-1h30m0s"),
        ("0", "0s"),
        (".5s", "500ms"),
        ("100ns", "100ns"),
    ],
)
def test_durations(text: str, shown: str) -> None:
    assert format_duration(parse_duration(text)) == shown


@pytest.mark.parametrize(
    ("text", "words"),
    [("10", "missing unit"), ("5x", 'unknown unit "x"'), ("", "invalid"), ("s", "invalid")],
)
def test_bad_durations(text: str, words: str) -> None:
    with pytest.raises(GoError, match=words):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64M", 64 * 1024**2),
        ("1000", 1000),
        ("1.5g", int(1.5 * 1024**3)),
        ("10kb", 10240),
        ("1KiB", 1024),
        ("3 m", 3 * 1024**2),
        ("512b", 512),
    ],
)
def test_memory_sizes(text: str, size: int) -> None:
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize("text", ["x", "1mbb", "1q", "-1m", "1.2.3m"])
def test_bad_memory_sizes(text: str) -> None:
    with pytest.raises(GoError):
        ram_in_bytes(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('echo hi "there x"', ["echo", "hi", "there x"]),
        ("sh -c 'a; b'", ["sh", "-c", "a; b"]),
        (r"a\ b", ["a b"]),
        (r'"\a\""', ['a"']),
        ("''", [""]),
        ("x#y #comment here", ["x#y"]),
        ("a\n# c\nb", ["a", "b"]),
    ],
)
def test_shell_words_like_google_shlex(text: str, words: list[str]) -> None:
    assert shlex_split(text) == words


def test_unclosed_quote() -> None:
    with pytest.raises(GoError, match="closing quote"):
        shlex_split("echo 'x")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.5, "0.5"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1e-5, "1e-05"),
        (True, "true"),
        (None, "<nil>"),
        (42, "42"),
    ],
)
def test_sprint(value: object, text: str) -> None:
    assert sprint(value) == text
    if isinstance(value, float):
        assert format_float(value) == text


def test_atoi_and_bool_casts() -> None:
    assert atoi("0400") == 400  # decimal, unlike YAML
    assert atoi("+3") == 3
    with pytest.raises(GoError):
        atoi("three")
    assert parse_go_bool("On") is True and parse_go_bool("no") is False
    with pytest.raises(GoError):
        parse_go_bool("maybe")


def test_port_specs() -> None:
    assert parse_port_spec("80") == [("80/tcp", "", "")]
    assert parse_port_spec("127.0.0.1:8080:80/udp") == [("80/udp", "127.0.0.1", "8080")]
    assert parse_port_spec("8000-8001:9000-9001") == [
        ("9000/tcp", "", "8000"),
        ("9001/tcp", "", "8001"),
    ]
    for bad in ("abc", "1:2:3:4/xyz", "70000"):
        with pytest.raises(GoError):
            parse_port_spec(bad)


def test_volume_specs() -> None:
    assert parse_volume("data:/var/lib:ro") == {
        "type": "volume",
        "source": "data",
        "target": "/var/lib",
        "read_only": True,
    }
    assert parse_volume("/host:/c:rslave")["bind"] == {"propagation": "rslave"}
    assert parse_volume("/anon")["type"] == "volume"
    assert parse_volume("./rel:/x")["type"] == "bind"
    with pytest.raises(GoError, match="too many colons"):
        parse_volume("aa:/b:ro:x")
