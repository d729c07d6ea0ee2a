"""YAML that would exhaust the agent is refused at once with file:line: nesting deeper
than MAX_DEPTH (written, or through aliases and merge keys) and alias bombs — in compose
files, gitswarm.yml and applications/*.yml, through render, validate and policy check."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.errors import YamlError
from gitswarm.repo.yamlsrc import MAX_DEPTH, MAX_NODES, parse_yaml

TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels; flatten this part of the file [yaml]"
TOO_DEEP_EXPANDED = (
    f"nested deeper than {MAX_DEPTH} levels once aliases and merge keys (<<) are expanded; "
    "flatten it [yaml]"
)
TOO_BIG = (
    f"the document expands to more than {MAX_NODES} nodes (each alias *name repeats its "
    "anchor's value); use fewer aliases or split the file [yaml]"
)


def _error(text: str) -> str:
    with pytest.raises(YamlError) as info:
        parse_yaml(text, "f.yml")
    (problem,) = info.value.problems
    return str(problem)


def block_mappings(levels: int) -> str:
    """``levels`` mappings inside each other, the document's own mapping included."""
    lines = [f"{'  ' * i}k{i}:" for i in range(levels - 1)]
    return "\n".join(lines) + f"\n{'  ' * (levels - 1)}k: v\n"


def block_lists(levels: int) -> str:
    return "- " * levels + "x\n"


def flow_lists(levels: int) -> str:
    return "x: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"


def flow_mappings(levels: int) -> str:
    return "{a: " * levels + "1" + "}" * levels + "\n"


# (shape, where the collection one level too deep starts)
SHAPES: list[tuple[Callable[[int], str], str]] = [
    (block_mappings, f"{MAX_DEPTH + 1}:{2 * MAX_DEPTH + 1}"),
    (block_lists, f"1:{2 * MAX_DEPTH + 1}"),
    (flow_lists, f"1:{3 + MAX_DEPTH}"),
    (flow_mappings, f"1:{4 * MAX_DEPTH + 1}"),
]


@pytest.mark.parametrize(("shape", "where"), SHAPES, ids=[s.__name__ for s, _ in SHAPES])
def test_nesting_one_level_too_deep_is_refused_where_it_starts(
    shape: Callable[[int], str], where: str
) -> None:
    assert parse_yaml(shape(MAX_DEPTH), "f.yml").data  # the limit itself is fine
    assert _error(shape(MAX_DEPTH + 1)) == f"f.yml:{where}: {TOO_DEEP}"


@pytest.mark.parametrize(("shape", "where"), SHAPES, ids=[s.__name__ for s, _ in SHAPES])
def test_thousands_of_levels_fail_the_same_way_not_with_recursion(
    shape: Callable[[int], str], where: str
) -> None:
    """These took 1-20 s and then ended in RecursionError; ruamel's scanner looks ahead
    along a line of ``[`` at a cost growing with the nesting, so it is bounded there too.
    (The bound is only a hang guard, far above the ~0.05 s this takes quietly: a timed
    unit test must not fail on a loaded machine; the cost itself belongs in bench/.)"""
    started = time.monotonic()
    assert _error(shape(5000)) == f"f.yml:{where}: {TOO_DEEP}"
    assert time.monotonic() - started < 30


def test_a_one_megabyte_line_of_brackets() -> None:
    started = time.monotonic()
    assert _error("[" * (1 << 20)) == f"f.yml:1:{MAX_DEPTH + 1}: {TOO_DEEP}"
    assert time.monotonic() - started < 2  # a hang guard: this was quadratic


def test_aliases_cannot_nest_past_the_limit() -> None:
    half = MAX_DEPTH // 2 + 1
    text = f"a: &a {'[' * half}1{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    assert _error(text) == f"f.yml:1:{7 + MAX_DEPTH - half - 1}: {TOO_DEEP_EXPANDED}"


def test_a_chain_of_merge_keys_cannot_recurse_past_the_limit() -> None:
    lines = ["m0: &m0 {k: v}"]
    lines += [f"m{i}: &m{i} {{<<: *m{i - 1}}}" for i in range(1, MAX_DEPTH + 5)]
    assert _error("\n".join(lines)) == f"f.yml:1:5: {TOO_DEEP_EXPANDED}"


def test_a_merge_key_merging_its_own_mapping() -> None:
    assert (
        _error("x: &a {<<: *a}\n")
        == "f.yml:1:4: an anchor's value contains an alias to itself [yaml]"
    )


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    started = time.monotonic()
    assert _error("\n".join(lines)) == f"f.yml:6:5: {TOO_BIG}"
    assert time.monotonic() - started < 2  # a hang guard: expanding it took 1.5 s


# --- through the command line -------------------------------------------------------------


@pytest.fixture()
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    assert CliRunner().invoke(cli, ["init", str(repo)]).exit_code == 0
    return repo


def _append(repo: Path, path: str, text: str) -> int:
    """Append ``text`` to a file; returns the line number it starts on."""
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.read_text() if target.exists() else ""
    target.write_text(old + text)
    return old.count("\n") + 1


def _run(*args: str) -> tuple[int, str, str]:
    # catch_exceptions=False: a RecursionError would fail the test, not become exit 1
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


GITSWARM = str(Path(sys.executable).with_name("gitswarm"))  # the venv's entry point
DEEP = "x-deep: " + "[" * 600 + "]" * 600 + "\n"  # 2 + 99 brackets reach the limit
DEEP_COLUMN = 9 + MAX_DEPTH - 1


@pytest.mark.parametrize(
    "path",
    ["base/docker-compose.yml", "environments/development/docker-compose.yml"],
)
def test_a_deep_compose_file_exits_2_with_file_and_line(example: Path, path: str) -> None:
    line = _append(example, path, DEEP)
    expected = f"{path}:{line}:{DEEP_COLUMN}: {TOO_DEEP}"
    for args in (
        ["render", "--env", "development"],
        ["validate", "--env", "development"],
        ["policy", "check", "--env", "development"],
    ):
        code, out, err = _run(*args, "--repo", str(example))
        assert code == 2, (args, out, err)
        assert expected in out + err, (args, out, err)


def test_a_deep_gitswarm_yml_exits_2_with_file_and_line(example: Path) -> None:
    line = _append(example, "gitswarm.yml", DEEP)
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 2
    assert f"gitswarm.yml:{line}:{DEEP_COLUMN}: {TOO_DEEP}" in out
    for args in (["render", "--env", "development"], ["policy", "check", "--env", "development"]):
        code, out, _ = _run(*args, "--repo", str(example), "--json")
        assert code == 2
        (problem,) = json.loads(out)["error"]["problems"]
        assert (problem["file"], problem["line"], problem["column"]) == (
            "gitswarm.yml",
            line,
            DEEP_COLUMN,
        )
        assert f"{problem['message']} [{problem['rule']}]" == TOO_DEEP


def test_a_deep_application_file_exits_2_with_file_and_line(example: Path) -> None:
    line = _append(example, "applications/tools.yml", "files: [base/docker-compose.yml]\n" + DEEP)
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 2
    assert f"applications/tools.yml:{line + 1}:{DEEP_COLUMN}: {TOO_DEEP}" in out


def test_no_traceback_from_the_real_command(example: Path) -> None:
    """The command as users run it: exit 2, one clear line, no traceback."""
    line = _append(example, "base/docker-compose.yml", DEEP)
    done = subprocess.run(
        [GITSWARM, "render", "--env", "development", "--repo", str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"base/docker-compose.yml:{line}:{DEEP_COLUMN}: {TOO_DEEP}" in done.stderr
