"""Swarm compares names without case (tests/integration/test_swarm_name_case.py shows
it): two services that differ only in case are refused at render, with file and line,
instead of failing ``docker stack deploy`` on every sync; two configs or secrets whose
keys differ only in case and whose content is the same share one object instead of a
second create that Swarm refuses. Found by test_render_properties.py."""

from __future__ import annotations

from gitswarm.errors import ValidationError
from gitswarm.render import to_yaml
from tests.unit.test_render_stack import render, render_error, repo_files
from tests.unit.test_render_trees import MemoryTree

TWO_CASES = """\
services:
  Web:
    image: nginx:1.25
  web:
    image: nginx:1.25
"""


def test_services_that_differ_only_in_case_are_refused() -> None:
    files = repo_files(**{"base/docker-compose.yml": TWO_CASES})
    files["environments/dev/docker-compose.yml"] = "services: {}\n"
    error = render_error(files)
    assert isinstance(error, ValidationError)
    (problem,) = error.problems
    assert str(problem) == (
        "base/docker-compose.yml:4:3: services 'Web' and 'web' differ only in case, and "
        "Swarm compares service names without case: the second cannot be deployed; "
        "rename one [name]"
    )


SAME_CONTENT = """\
services:
  api:
    image: nginx:1.25
    configs: [App, app]
configs:
  App: {file: ./app.yml}
  app: {file: ./app.yml}
"""


def test_configs_that_differ_only_in_case_share_one_object() -> None:
    files = repo_files(**{"base/docker-compose.yml": SAME_CONTENT, "base/app.yml": "a: 1\n"})
    files["environments/dev/docker-compose.yml"] = "services: {}\n"
    desired = render(MemoryTree(files))
    (material,) = desired.objects
    assert material.name.startswith("shop-dev_App_")
    configs = desired.compose["configs"]
    assert configs["App"]["name"] == configs["app"]["name"] == material.name
    assert to_yaml(desired).count(material.name) == 2
