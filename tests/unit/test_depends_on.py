"""Ordered applications (``depends_on``): the pure order, the settings that declare it,
every bad declaration at its file:line, and ``sync --env`` / ``bootstrap`` applying
the applications of an environment in that order, holding back the dependents of one
that did not converge. (The agent's queue: tests/unit/test_agent_depends_on.py; on the
real swarm: tests/integration/test_depends_on_swarm.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.errors import ConfigError
from gitswarm.model.order import apply_order, find_cycles
from gitswarm.reconcile.bootstrap import BootstrapRequest, bootstrap
from gitswarm.reconcile.sync import Reconciler
from gitswarm.repo import load_config
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service
from tests.unit.test_render_trees import MemoryTree

# --- the pure order -------------------------------------------------------------------


def test_without_dependencies_the_order_is_the_declaration_order() -> None:
    assert apply_order(["c", "a", "b"], {}) == ["c", "a", "b"]


def test_each_comes_after_what_it_depends_on_and_otherwise_as_declared() -> None:
    names = ["web", "worker", "db", "cache", "proxy"]
    deps = {"web": ["db", "cache"], "worker": ["db"], "proxy": ["web"]}
    assert apply_order(names, deps) == ["db", "worker", "cache", "web", "proxy"]


def test_dependencies_outside_the_names_are_left_out() -> None:
    # An environment's order: what is not deployed there does not hold anything back.
    assert apply_order(["web"], {"web": ["db"]}) == ["web"]


def test_a_long_chain_orders_without_recursion() -> None:
    names = [f"a{i}" for i in range(5000)]
    deps = {names[i]: [names[i + 1]] for i in range(len(names) - 1)}
    assert apply_order(names, deps) == names[::-1]
    assert find_cycles(names, deps) == []


def test_a_cycle_cannot_be_ordered() -> None:
    with pytest.raises(ValueError, match="dependency cycle among a, b"):
        apply_order(["a", "b", "c"], {"a": ["b"], "b": ["a"]})


def test_each_cycle_is_found_once_from_its_first_declared_member() -> None:
    names = ["e", "a", "b", "c", "d", "f"]
    deps = {"a": ["b"], "b": ["c", "a"], "c": ["a"], "d": ["d"], "e": ["a"], "f": []}
    # a -> b -> a is the shortest way back; the group {a, b, c} is reported once
    assert find_cycles(names, deps) == [["a", "b", "a"], ["d", "d"]]


# --- the settings ---------------------------------------------------------------------

SETTINGS = "project: shop\nenvironments:\n  dev: {}\n  prod: {}\n"


def _files(**apps: str) -> dict[str, str]:
    files = {"gitswarm.yml": SETTINGS}
    for name, text in apps.items():
        files[f"applications/{name}.yml"] = f"stack: {name}-{{env}}\n{text}"
    return files


def _problems(files: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(MemoryTree(files))
    assert (info.value.exit_code, info.value.reason) == (2, "ConfigInvalid")
    return [str(p) for p in info.value.problems]


def test_depends_on_is_read_and_orders_every_environment() -> None:
    config = load_config(
        MemoryTree(_files(web="depends_on: [db]\n", db="", api="depends_on: [web, db]\n"))
    )
    assert config.application("web").depends_on == ("db",)
    # applications/ is read in name order: api, db, web
    assert [a.name for a in config.apps_for("dev")] == ["db", "web", "api"]
    assert config.dependencies("api", "prod") == ("web", "db")
    assert config.dependencies("db", "prod") == ()


def test_depends_on_in_the_default_application_of_gitswarm_yml() -> None:
    files = _files(db="")
    files["gitswarm.yml"] = SETTINGS + "application:\n  name: web\n  depends_on: [db]\n"
    config = load_config(MemoryTree(files))
    assert [a.name for a in config.apps_for("dev")] == ["db", "web"]


def test_an_unknown_application_is_named_at_its_line() -> None:
    assert _problems(_files(web="depends_on:\n  - db\n  - dbb\n", db="")) == [
        "applications/web.yml:4:5: application 'web' depends on 'dbb', which is not "
        "declared (other applications: db); name an application of gitswarm.yml or "
        "applications/, or remove the entry [depends-on]"
    ]


def test_a_dependency_not_deployed_to_an_environment_of_its_dependent() -> None:
    assert _problems(_files(web="depends_on: [db]\n", db="environments: [dev]\n")) == [
        "applications/web.yml:2:14: application 'web' depends on 'db', which is not "
        "deployed to environment 'prod' (it is deployed to: dev), so 'web' would wait "
        "there for ever; add 'prod' to the environments of 'db', or remove 'prod' from "
        "those of 'web' [depends-on]"
    ]


def test_a_cycle_is_a_validation_error_naming_each_edge() -> None:
    files = _files(
        a="depends_on: [b]\n", b="depends_on:\n  - c\n", c="environments: [dev]\ndepends_on: [a]\n"
    )
    files["applications/a.yml"] = "stack: a-{env}\nenvironments: [dev]\ndepends_on: [b]\n"
    files["applications/b.yml"] = "stack: b-{env}\nenvironments: [dev]\ndepends_on:\n  - c\n"
    assert _problems(files) == [
        "applications/a.yml:3:14: the applications 'a', 'b', 'c' depend on each other in a "
        "cycle, so none of them could be applied first: a -> b (applications/a.yml:3) -> c "
        "(applications/b.yml:4) -> a (applications/c.yml:3); remove one of these "
        "depends_on entries [depends-on]"
    ]


def test_an_application_that_depends_on_itself() -> None:
    assert _problems(_files(web="depends_on: [web]\n")) == [
        "applications/web.yml:2:14: application 'web' depends on itself; remove the entry "
        "[depends-on]"
    ]


def test_depends_on_must_be_a_list_of_names() -> None:
    assert _problems(_files(web="depends_on: db\n", db="")) == [
        'applications/web.yml:2:1: depends_on must be a list, not "db" [config-schema]'
    ]
    assert _problems(_files(web="depends_on: [db, db]\n", db="")) == [
        "applications/web.yml:2:1: depends_on: ['db', 'db'] has non-unique elements [config-schema]"
    ]


def test_validate_reports_a_cycle_at_file_and_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    assert CliRunner().invoke(cli, ["init", str(repo)]).exit_code == 0
    settings = repo / "gitswarm.yml"
    text = settings.read_text()
    settings.write_text(
        text.replace("  name: medianest\n", "  name: medianest\n  depends_on: [db]\n", 1)
    )
    (repo / "applications").mkdir()
    (repo / "applications/db.yml").write_text(
        "stack: medianest-db-{env}\nfiles: [base/docker-compose.yml]\ndepends_on: [medianest]\n"
    )
    line = text.splitlines().index("  name: medianest") + 2

    result = CliRunner().invoke(cli, ["validate", "--env", "development", "--repo", str(repo)])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert (
        f"gitswarm.yml:{line}:16: the applications 'medianest', 'db' depend on each other "
        f"in a cycle, so none of them could be applied first: medianest -> db "
        f"(gitswarm.yml:{line}) -> medianest (applications/db.yml:3); remove one of these "
        "depends_on entries [depends-on]"
    ) in result.stdout.splitlines()


# --- sync --env and bootstrap apply in that order ------------------------------------


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitOpsRepo:
    """app (gitswarm.yml) depends on db; cache depends on nothing: declared app, cache, db."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    settings = (repo.path / "gitswarm.yml").read_text()
    repo.write(
        "gitswarm.yml", settings.replace("application:\n", "application:\n  depends_on: [db]\n")
    )
    repo.compose({"web": service()})
    repo.write("applications/db.yml", "stack: shop-db\nfiles: [db/docker-compose.yml]\n")
    repo.write("applications/cache.yml", "stack: shop-cache\nfiles: [cache/docker-compose.yml]\n")
    repo.write("db/docker-compose.yml", "services:\n  main:\n    image: 127.0.0.1:5000/db:1\n")
    repo.write("cache/docker-compose.yml", "services:\n  main:\n    image: 127.0.0.1:5000/c:1\n")
    return repo


@pytest.fixture()
def swarm() -> FakeSwarm:
    return FakeSwarm()


@pytest.fixture()
def reconciler(repo: GitOpsRepo, swarm: FakeSwarm, tmp_path: Path) -> Iterator[Reconciler]:
    store = Store(str(tmp_path / "state.db"))
    try:
        yield Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
    finally:
        store.close()


def _deploys(swarm: FakeSwarm) -> list[str]:
    return [line.split()[1] for line in swarm.log if line.startswith("deploy ")]


def test_the_fixture_declares_the_dependency(repo: GitOpsRepo, reconciler: Reconciler) -> None:
    config = reconciler.config_at(repo.commit("apps"))
    assert config.application("app").depends_on == ("db",)
    assert [a.name for a in config.apps_for("dev")] == ["cache", "db", "app"]


def test_bootstrap_restores_in_dependency_order(
    repo: GitOpsRepo, swarm: FakeSwarm, reconciler: Reconciler
) -> None:
    repo.commit("apps")
    report = bootstrap(reconciler, BootstrapRequest("dev"))
    assert report.exit_code == 0, report.as_dict()
    assert list(report.order) == ["cache", "db", "app"]
    assert _deploys(swarm) == ["shop-cache_main", "shop-db_main", "shop_web"]
    ops = sorted(reconciler.store.history(env="dev", limit=10), key=lambda o: o.id)
    assert [o.app for o in ops] == ["cache", "db", "app"]


def test_bootstrap_holds_the_dependents_of_one_that_does_not_converge(
    repo: GitOpsRepo, swarm: FakeSwarm, reconciler: Reconciler
) -> None:
    repo.commit("apps")
    swarm.failing_images.add("127.0.0.1:5000/db:1")
    report = bootstrap(reconciler, BootstrapRequest("dev"))
    assert report.exit_code == 1
    assert [(r.app, r.outcome.result, r.outcome.reason, r.ok) for r in report.results] == [
        ("cache", "Succeeded", None, True),
        ("db", "Failed", "TasksFailing", False),
        ("app", "Skipped", "DependencyNotReady", False),
    ]
    assert report.results[2].outcome.message == (
        "not applied: it depends on 'db', which did not converge; fix it first"
    )
    assert report.message == "2 of 3 application(s) not restored: db, app"
    assert not swarm.services("shop")  # the dependent was never deployed
    assert "app" not in {o.app for o in reconciler.store.history(env="dev", limit=10)}


def _cli_sync(repo: GitOpsRepo, tmp_path: Path, *args: str) -> tuple[int, dict[str, object]]:
    """The real `gitswarm sync` command, against the fake swarm of this test."""
    result = CliRunner().invoke(
        cli,
        ["sync", "--env", "dev", "--repo", str(repo.path), "--json", *args],
        env={"GITSWARM_STATE": str(tmp_path / "cli.db")},
    )
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def test_sync_env_applies_in_order_and_holds_dependents(
    repo: GitOpsRepo, swarm: FakeSwarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitswarm.swarm import pool

    monkeypatch.setattr(pool.SwarmPool, "__call__", lambda _self, _target: swarm)
    repo.commit("apps")
    swarm.failing_images.add("127.0.0.1:5000/db:1")

    code, out = _cli_sync(repo, tmp_path)

    assert code == 1
    results = out["results"]
    assert isinstance(results, list)
    assert [(r["app"], r["result"], r["reason"]) for r in results] == [
        ("cache", "Succeeded", None),
        ("db", "Failed", "TasksFailing"),
        ("app", "Skipped", "DependencyNotReady"),
    ]
    assert out["ok"] is False
    assert _deploys(swarm) == ["shop-cache_main", "shop-db_main"]

    # A fixed db: --no-wait or not, what app depends on is waited for before app goes.
    repo.write("db/docker-compose.yml", "services:\n  main:\n    image: 127.0.0.1:5000/db:2\n")
    repo.commit("db 2")
    code, out = _cli_sync(repo, tmp_path, "--no-wait")
    assert code == 0, [(r["app"], r["result"], r["message"]) for r in out["results"]]  # type: ignore[attr-defined]
    assert _deploys(swarm)[2:] == ["shop-db_main", "shop_web"]
    db, app = out["results"][1:]  # type: ignore[index]
    assert (db["app"], db["health"] is not None, app["health"]) == ("db", True, None)


def test_sync_of_one_app_is_not_held_by_its_dependencies(
    repo: GitOpsRepo, swarm: FakeSwarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitswarm.swarm import pool

    monkeypatch.setattr(pool.SwarmPool, "__call__", lambda _self, _target: swarm)
    repo.commit("apps")
    code, out = _cli_sync(repo, tmp_path, "--app", "app")
    assert code == 0, out
    assert _deploys(swarm) == ["shop_web"]


def test_the_order_is_that_of_the_revision_synced(
    repo: GitOpsRepo, swarm: FakeSwarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitswarm.swarm import pool

    monkeypatch.setattr(pool.SwarmPool, "__call__", lambda _self, _target: swarm)
    old = repo.commit("app depends on db")
    settings = (repo.path / "gitswarm.yml").read_text()
    repo.write("gitswarm.yml", settings.replace("  depends_on: [db]\n", ""))
    repo.write(
        "applications/cache.yml",
        "stack: shop-cache\nfiles: [cache/docker-compose.yml]\ndepends_on: [app]\n",
    )
    repo.commit("cache depends on app now")
    code, out = _cli_sync(repo, tmp_path, "--revision", old, "--dry-run")
    assert code == 0, out
    results = out["results"]
    assert isinstance(results, list)
    assert [r["app"] for r in results] == ["cache", "db", "app"]
    code, out = _cli_sync(repo, tmp_path, "--dry-run")
    results = out["results"]
    assert isinstance(results, list)
    assert [r["app"] for r in results] == ["app", "cache", "db"]
