"""Writing new tags into an environment's files: only the tag changes, byte for byte."""

from __future__ import annotations

import difflib

import pytest

from gitswarm.errors import PromotionError
from gitswarm.promote.core.edits import plan_edits, set_env_values
from gitswarm.render import render_stack
from gitswarm.repo import load_config
from tests.unit.test_render_trees import MemoryTree

CONFIG = """\
project: shop
application:
  name: web
  stack: "shop-{env}"
environments:
  dev: {}
  prod: {}
"""
BASE = """\
services:
  api:
    image: ${REGISTRY}/api:${TAG}
  worker:
    image: ${REGISTRY}/worker:${TAG}
"""
# Comments, odd spacing, quoting, flow style, CRLF-free but a missing final newline.
PROD_OVERLAY = """\
# production overlay: keep this comment
services:
  cache:
    image:   "registry.local:5000/cache:7.0"   # pinned by hand
    deploy: {replicas: 2,   labels: {a: b}}
  proxy:
    image: 'registry.local:5000/proxy:2.1'
"""
ENV = "# the tag of api and worker\nREGISTRY=registry.local:5000\n\n  TAG=0.9\nOTHER=x"


def tree(**files: str) -> MemoryTree:
    base = {
        "gitswarm.yml": CONFIG,
        "base/docker-compose.yml": BASE,
        "environments/dev/docker-compose.yml": "services: {}\n",
        "environments/dev/.env": "REGISTRY=registry.local:5000\nTAG=1.0\n",
        "environments/prod/docker-compose.yml": PROD_OVERLAY,
        "environments/prod/.env": ENV,
    }
    base.update(files)
    return MemoryTree(base)


def edits_for(t: MemoryTree, images: dict[str, str], env: str = "prod") -> dict[str, bytes]:
    config = load_config(t)
    desired = render_stack(t, config, "web", env, None)
    plan = plan_edits(
        desired, config.environment(env), images, lambda p: t.read(p, limit=1 << 20)
        if t.exists(p) else None
    )  # fmt: skip
    return {e.path: e.after for e in plan.edits}


def diff(before: str, after: bytes) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(
            before.splitlines(keepends=True), after.decode().splitlines(keepends=True), n=0
        )
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_a_tag_variable_is_edited_in_the_env_file_and_nothing_else() -> None:
    out = edits_for(tree(), {"registry.local:5000/api": "1.0", "registry.local:5000/worker": "1.0"})
    assert list(out) == ["environments/prod/.env"]
    assert diff(ENV, out["environments/prod/.env"]) == ["-  TAG=0.9\n", "+  TAG=1.0\n"]
    # No final newline before, none after; every other byte is where it was.
    assert out["environments/prod/.env"].endswith(b"OTHER=x")


def test_a_written_tag_is_spliced_in_its_quoting_keeping_comments_and_layout() -> None:
    out = edits_for(
        tree(),
        {"registry.local:5000/cache": "7.2", "registry.local:5000/proxy": "2.2"},
    )
    after = out["environments/prod/docker-compose.yml"]
    assert diff(PROD_OVERLAY, after) == [
        '-    image:   "registry.local:5000/cache:7.0"   # pinned by hand\n',
        '+    image:   "registry.local:5000/cache:7.2"   # pinned by hand\n',
        "-    image: 'registry.local:5000/proxy:2.1'\n",
        "+    image: 'registry.local:5000/proxy:2.2'\n",
    ]
    assert after == (
        PROD_OVERLAY.replace("cache:7.0", "cache:7.2").replace("proxy:2.1", "proxy:2.2").encode()
    )


def test_crlf_env_files_keep_their_line_endings() -> None:
    text = "REGISTRY=registry.local:5000\r\nTAG=0.9\r\n# end\r\n"
    out = set_env_values(text, {"TAG": "1.1"}, "environments/prod/.env")
    assert out == "REGISTRY=registry.local:5000\r\nTAG=1.1\r\n# end\r\n"


def test_a_tag_written_in_the_shared_base_is_refused() -> None:
    t = tree(**{"base/docker-compose.yml": "services:\n  api:\n    image: reg.io/api:1.0\n"})
    with pytest.raises(PromotionError) as info:
        edits_for(t, {"reg.io/api": "2.0"})
    assert "base/docker-compose.yml:3" in info.value.message
    assert "every environment shares" in info.value.message


def test_a_variable_shared_with_an_image_not_promoted_is_refused() -> None:
    with pytest.raises(PromotionError) as info:
        edits_for(tree(), {"registry.local:5000/api": "1.0"})
    assert "variable TAG is the tag of images that would not all get the same new tag" in (
        info.value.message
    )
    assert "worker (registry.local:5000/worker)" in info.value.message


def test_a_tag_with_a_newline_cannot_add_a_line() -> None:
    with pytest.raises(PromotionError) as info:
        edits_for(tree(), {"registry.local:5000/cache": "7.2\nEVIL=1"})
    assert "is not a valid image tag" in info.value.message


def test_nothing_to_change_is_an_empty_plan() -> None:
    assert edits_for(tree(), {"registry.local:5000/cache": "7.0"}) == {}
