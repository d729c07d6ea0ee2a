"""``gitswarm bootstrap``: an environment rebuilt from Git alone on an empty swarm, in
order, after a preflight that deploys nothing when something is missing (the fake swarm
here; tests/integration/test_bootstrap_swarm.py does it on the real one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.model.stack import DesiredStack, ObjectMaterial
from gitswarm.plan.external import ExternalNeed, external_needs
from gitswarm.reconcile.bootstrap import BootstrapRequest, bootstrap, bootstrap_order
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitOpsRepo:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    repo.write("applications/db.yml", "stack: shop-db\nfiles: [db/docker-compose.yml]\n")
    repo.write("applications/cache.yml", "stack: shop-cache\nfiles: [db/docker-compose.yml]\n")
    repo.write("db/docker-compose.yml", "services:\n  main:\n    image: 127.0.0.1:5000/busybox:1\n")
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


def test_every_application_is_restored_in_order_on_an_empty_swarm(
    repo: GitOpsRepo, swarm: FakeSwarm, reconciler: Reconciler
) -> None:
    head = repo.commit("three apps")
    config = reconciler.config_at(head)
    # No depends_on here: the declaration order (gitswarm.yml's app first,
    # then applications/ as listed).
    order = [a.name for a in bootstrap_order(config, "dev")]
    assert order[0] == "app" and sorted(order[1:]) == ["cache", "db"]

    report = bootstrap(reconciler, BootstrapRequest("dev"))

    assert (report.exit_code, report.revision, list(report.order)) == (0, head, order)
    assert [r.app for r in report.results] == order
    assert [(r.status.sync, r.status.health) for r in report.results if r.status] == [
        ("Synced", "Healthy")
    ] * 3
    assert report.message == "dev restored: 3 application(s) Synced and Healthy"
    assert {s.name for s in swarm.services("shop")} == {"shop_web"}
    assert {s.name for s in swarm.services("shop-db")} == {"shop-db_main"}
    assert {s.name for s in swarm.services("shop-cache")} == {"shop-cache_main"}
    ops = reconciler.store.history(env="dev", limit=10)
    assert sorted(o.app for o in ops) == ["app", "cache", "db"]
    assert {o.message for o in ops} == {"bootstrap: deployed: main; removed: none"} | {
        "bootstrap: deployed: web; removed: none"
    }


def test_whatever_the_swarm_lacks_is_listed_first_and_nothing_is_deployed(
    repo: GitOpsRepo, swarm: FakeSwarm, reconciler: Reconciler
) -> None:
    repo.compose(
        {"web": service(networks=["proxy"], secrets=["tls"], volumes=["media:/media"])},
        networks={"proxy": {"external": True, "name": "edge-proxy"}},
        secrets={"tls": {"external": True}},
        volumes={"media": {"external": True}},
    )
    repo.commit("externals")

    report = bootstrap(reconciler, BootstrapRequest("dev"))

    assert report.exit_code == 1
    assert [str(m) for m in report.missing] == [
        "app: external network 'edge-proxy' is missing (used by web); create it: "
        "docker network create --driver overlay --attachable edge-proxy",
        "app: external volume 'media' is missing (used by web); create it: "
        "docker volume create media  (on every node that runs a task using it)",
        "app: external secret 'tls' is missing (used by web); create it: "
        "docker secret create tls FILE",
    ]
    assert report.message == "nothing was deployed: 3 problem(s) to fix first"
    assert (swarm.writes, report.results) == (0, ())

    swarm.external |= {("network", "edge-proxy"), ("volume", "media"), ("secret", "tls")}
    assert bootstrap(reconciler, BootstrapRequest("dev")).exit_code == 0


def test_a_target_that_is_not_a_swarm_manager_is_said_before_any_write(
    repo: GitOpsRepo, swarm: FakeSwarm, reconciler: Reconciler
) -> None:
    repo.commit("apps")
    swarm.manager = False
    report = bootstrap(reconciler, BootstrapRequest("dev"))
    assert report.exit_code == 1
    assert report.problems == (
        "[SwarmFailed] fake swarm is not a manager: run `docker swarm init` there",
    )
    assert swarm.writes == 0


def test_a_revision_that_does_not_render_is_bad_input_and_deploys_nothing(
    repo: GitOpsRepo, swarm: FakeSwarm, reconciler: Reconciler
) -> None:
    repo.compose({"web": service(image="127.0.0.1:5000/busybox:${TAG}")})
    repo.commit("no TAG")
    report = bootstrap(reconciler, BootstrapRequest("dev"))
    assert report.exit_code == 2
    assert report.problems == (
        "app: [VariableUnset] cannot render app in dev: 1 problem(s):\n"
        "  base/docker-compose.yml:3:5: services.web.image: variable TAG is not set; define "
        "it in the environment's .env or give a default: ${TAG:-default} [variable-unset]",
    )
    assert swarm.writes == 0


def test_a_rolled_back_revision_is_not_restored_the_healthy_one_is(
    repo: GitOpsRepo, swarm: FakeSwarm, reconciler: Reconciler
) -> None:
    good = repo.commit("good")
    assert reconciler.sync(SyncRequest("app", "dev")).ok
    repo.compose({"web": service(image="127.0.0.1:5000/busybox:2")})
    bad = repo.commit("bad")
    reconciler.store.mark_bad("app", "dev", bad, "HealthTimeout", "did not converge")
    swarm.remove_service(swarm.services("shop")[0].id)  # the swarm is emptied

    report = bootstrap(reconciler, BootstrapRequest("dev"))

    result = report.results[0]
    assert (result.app, result.outcome.revision, result.ok) == ("app", good, True)
    assert result.note == (
        f"{bad[:12]} was rolled back and is marked bad; restored the healthy {good[:12]} instead"
    )
    assert "busybox:1" in swarm.services("shop")[0].spec["TaskTemplate"]["ContainerSpec"]["Image"]


def test_external_needs_leave_out_what_gitswarm_creates_and_the_engines_networks() -> None:
    desired = DesiredStack(
        app="a",
        env="dev",
        stack="s",
        revision="r",
        compose={
            "services": {
                "web": {
                    "networks": {"edge": {}, "hostnet": {}},
                    "secrets": [{"source": "tls"}, {"source": "own"}],
                    "volumes": [
                        {"type": "volume", "source": "media", "target": "/m"},
                        {"type": "bind", "source": "/srv", "target": "/srv"},
                    ],
                },
                "job": {"configs": ["cfg"]},
            },
            "networks": {
                "edge": {"external": True, "name": "edge-proxy"},
                "hostnet": {"external": True, "name": "host"},
                "inner": {"driver": "overlay"},
            },
            "secrets": {
                "tls": {"external": True},
                "own": {"external": True, "name": "s_own_abc123"},
            },
            "volumes": {"media": {"external": True, "name": "media"}},
            "configs": {"cfg": {"external": True, "name": "shared-cfg"}},
        },
        objects=(ObjectMaterial("secret", "own", "s_own_abc123", b"x"),),
    )
    assert external_needs(desired) == (
        ExternalNeed("network", "edge-proxy", "edge", ("web",)),
        ExternalNeed("volume", "media", "media", ("web",)),
        ExternalNeed("secret", "tls", "tls", ("web",)),
        ExternalNeed("config", "shared-cfg", "cfg", ("job",)),
    )


def test_the_command_refuses_an_unknown_environment_with_exit_2(
    repo: GitOpsRepo, tmp_path: Path
) -> None:
    repo.commit("apps")
    result = CliRunner().invoke(
        cli,
        ["bootstrap", "--env", "nosuch", "--repo", str(repo.path)],
        env={"GITSWARM_STATE": str(tmp_path / "cli.db"), "DOCKER_HOST": "unix:///nonexistent"},
    )
    assert result.exit_code == 2, result.output
    assert "unknown environment 'nosuch' (known: dev)" in result.output
    assert "Traceback" not in result.output
