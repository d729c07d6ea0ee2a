"""One lookup of where a YAML node was written (model/position.py): a parsed file, the
merged compose model and the rendered stack's source map all answer "where is this
path?" the same way, falling back to the nearest written ancestor."""

from __future__ import annotations

from gitswarm.model.position import SourceLocation, nearest, problem_at
from gitswarm.model.stack import SourceMap
from gitswarm.render.compose import load_compose
from gitswarm.repo.yamlsrc import parse_yaml

COMPOSE = b"""\
services:
  web:
    image: nginx:1
    environment:
      A: "1"
  db:
    image: postgres:16
"""


def _no_reads(path: str) -> bytes:
    raise AssertionError(f"nothing to read, not {path}")


def test_nearest_is_the_path_itself_else_its_closest_ancestor() -> None:
    table = {(): "doc", ("services",): "s", ("services", "web"): "w"}
    assert nearest(table, ("services", "web")) == "w"
    assert nearest(table, ("services", "web", "image", 0)) == "w"
    assert nearest(table, ("services", "db")) == "s"
    assert nearest(table, ("volumes",)) == "doc"
    assert nearest({("services",): "s"}, ("volumes",)) is None


def test_a_problem_is_put_at_the_nearest_written_node() -> None:
    positions = {("services",): (1, 1), ("services", "web"): (2, 3)}
    problem = problem_at("base.yml", positions, ("services", "web", "user"), "no user", "r")
    assert (problem.file, problem.line, problem.column, problem.rule) == ("base.yml", 2, 3, "r")
    nowhere = problem_at("base.yml", {}, ("services",), "empty", "r")
    assert (nowhere.file, nowhere.line, nowhere.column) == ("base.yml", None, None)


def test_a_parsed_file_the_merged_model_and_the_source_map_agree() -> None:
    doc = parse_yaml(COMPOSE, "base/docker-compose.yml")
    merged = load_compose([("base/docker-compose.yml", COMPOSE)], {}, _no_reads)
    assert not merged.problems
    source_map = SourceMap(dict(merged.locations))
    for path, line in [
        (("services", "web", "image"), 3),
        (("services", "web", "environment", "A"), 5),
        (("services", "db", "image"), 7),
        (("services", "db", "user"), 6),  # never written: at its service
        (("services", "web", "deploy", "replicas"), 2),
    ]:
        position = doc.locate(path)
        assert position is not None and position[0] == line, path
        assert doc.problem(path, "m", "r").line == line
        where = merged.locate(path)
        assert where == source_map.locate(path)
        assert where is not None
        assert (where.file, where.line) == ("base/docker-compose.yml", line), path
    assert isinstance(source_map.locate(("services",)), SourceLocation)
