"""A commit renders only the apps whose inputs changed (issue 18): each render notes the
files it read (render/inputs.py) — compose files and their shared bases, .env, config
files, policies — and the settings it was given; an app whose inputs are the same at the
new head is not synced (no render, no Docker call, no operation) and its status moves to
the head. On the fake swarm with a real Git repository; bench/noop.py measures the same
at 1,000 apps on a real swarm."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import gitswarm.reconcile.settings as settings_module
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import Application, Environment, RepoConfig, Target
from gitswarm.model.tree import Tree
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.apply import Clock
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.rendering import settings_digest
from gitswarm.reconcile.sync import Reconciler, Rendered
from gitswarm.render.inputs import RecordingTree
from gitswarm.repo import load_config
from gitswarm.source.repo import RepoSource
from gitswarm.source.tree import GitTree
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, _dump, service

IMAGE = "127.0.0.1:5000/busybox:1"
APPS = ("app", "other", "third")


@dataclass
class CountingReconciler(Reconciler):
    rendered: list[str] = field(default_factory=list)

    def render(self, app_name: str, env_name: str, revision: str | None, **kw: object) -> Rendered:
        self.rendered.append(app_name)
        return super().render(app_name, env_name, revision, **kw)  # type: ignore[arg-type]


@dataclass
class Rig:
    repo: GitOpsRepo
    swarm: FakeSwarm
    store: Store
    agent: Agent
    reconciler: CountingReconciler
    metrics: Metrics
    clock: Clock

    def restart(self) -> None:
        """A new agent on the same store, repository and swarm (after a restart, a
        kill -9, a new leader): it remembers no render."""
        source = RepoSource.open(str(self.repo.path))
        self.metrics = Metrics()
        self.reconciler = CountingReconciler(
            source, self.store, lambda _t: self.swarm, clock=self.clock
        )
        self.agent = Agent(
            source=source,
            store=self.store,
            reconciler=self.reconciler,
            settings=AgentSettings(events=False, poll_interval=300, drift_interval=300),
            metrics=self.metrics,
        )

    def poll(self, message: str | None = None, files: dict[str, str] | None = None) -> list[str]:
        """Commit ``files`` (when a message is given) and let the agent see the head, with
        no assertion on the outcome; the apps it rendered."""
        if message is not None:
            for path, text in (files or {}).items():
                self.repo.write(path, text)
            self.repo.commit(message)
        self.reconciler.rendered.clear()
        self.agent.enqueue(("git",), TriggerRequest("poll"))
        self.agent.run_pending()
        return sorted(self.reconciler.rendered)

    def commit(self, message: str, files: dict[str, str]) -> list[str]:
        """Commit ``files``, let the agent see it; the apps it rendered, in order."""
        for path, text in files.items():
            self.repo.write(path, text)
        head = self.repo.commit(message)
        self.reconciler.rendered.clear()
        self.agent.enqueue(("git",), TriggerRequest("poll"))
        self.agent.run_pending()
        for app in APPS:
            status = self.store.get_status(app, "dev")
            assert status is not None and status.revision == head, (app, status)
            assert (status.sync, status.health) == ("Synced", "Healthy"), (app, status)
        return sorted(self.reconciler.rendered)

    def operations(self, app: str) -> int:
        return len(self.store.history(app=app, env="dev", limit=100))


def app_file(name: str, *files: str) -> str:
    return _dump({"stack": f"st-{name}", "files": list(files)})


@pytest.fixture()
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Rig]]:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    stores: list[Store] = []

    def build(clock: Clock | None = None, **env_extra: object) -> Rig:
        repo = GitOpsRepo(tmp_path / "repo", "st-app")
        if env_extra:
            repo.write_settings(**env_extra)
        repo.compose({"web": service(IMAGE)})
        repo.write("environments/dev/.env", "LEVEL=info\n")
        # other and third share base/shared.yml; third also has a config file
        repo.write("base/shared.yml", _dump({"services": {"db": service(IMAGE)}}))
        repo.write(
            "applications/other.yml", app_file("other", "base/shared.yml", "stacks/other.yml")
        )
        repo.write("stacks/other.yml", _dump({"services": {"api": service(IMAGE)}}))
        repo.write(
            "applications/third.yml", app_file("third", "base/shared.yml", "stacks/third.yml")
        )
        repo.write(
            "stacks/third.yml",
            _dump(
                {
                    "services": {
                        "job": service(IMAGE, configs=[{"source": "c", "target": "/etc/c"}])
                    },
                    "configs": {"c": {"file": "./third.conf"}},
                }
            ),
        )
        repo.write("base/third.conf", "v1\n")  # relative to the first file
        repo.commit("three apps")
        swarm = FakeSwarm()
        store = Store(str(tmp_path / "state.db"))
        stores.append(store)
        source = RepoSource.open(str(repo.path))
        metrics = Metrics()
        clock = clock or Clock()
        reconciler = CountingReconciler(source, store, lambda _t: swarm, clock=clock)
        agent = Agent(
            source=source,
            store=store,
            reconciler=reconciler,
            settings=AgentSettings(events=False, poll_interval=300, drift_interval=300),
            metrics=metrics,
        )
        rig = Rig(repo, swarm, store, agent, reconciler, metrics, clock)
        agent.enqueue(("git",), TriggerRequest("poll"))
        agent.run_pending()
        assert sorted(reconciler.rendered) == sorted(APPS)  # the first commit: all of them
        return rig

    yield build
    for store in stores:
        store.close()


def test_a_commit_to_one_app_renders_and_deploys_only_that_app(make: Callable[..., Rig]) -> None:
    rig = make()
    ops = {app: rig.operations(app) for app in APPS}
    writes = rig.swarm.writes
    changed = _dump({"services": {"api": service("127.0.0.1:5000/busybox:2")}})
    assert rig.commit("other: busybox 2", {"stacks/other.yml": changed}) == ["other"]
    assert rig.swarm.writes > writes  # other deployed
    assert [s.image for s in rig.swarm.services("st-other") if s.compose_name == "api"] == [
        "127.0.0.1:5000/busybox:2"
    ]
    assert rig.operations("other") == ops["other"] + 1
    assert rig.operations("app") == ops["app"] and rig.operations("third") == ops["third"]
    skipped = rig.metrics.registry.get_sample_value("gitswarm_syncs_skipped_total", {})
    assert skipped == 2
    status = rig.store.get_status("third", "dev")
    assert status is not None and "inputs unchanged" in status.message


def test_a_commit_outside_every_app_renders_nothing_and_writes_nothing(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    writes = rig.swarm.writes
    assert rig.commit("docs", {"README.md": "hello\n"}) == []
    assert rig.commit("docs again", {"README.md": "hello again\n"}) == []  # from the moved ones
    assert rig.swarm.writes == writes
    # The drift round after it uses the renders it kept: nothing is rendered again.
    rig.agent.enqueue(("drift-all",), TriggerRequest("agent"))
    rig.agent.run_pending()
    assert rig.reconciler.rendered == []


@pytest.mark.parametrize(
    ("files", "rendered"),
    [
        ({"base/shared.yml": _dump({"services": {"db": service(IMAGE, user="1000")}})},
         ["other", "third"]),  # a shared base: every app that uses it
        ({"base/third.conf": "v2\n"}, ["third"]),  # a config file
        ({"environments/dev/.env": "LEVEL=debug\n"}, list(APPS)),  # the environment's .env
        ({"applications/other.yml": app_file("other", "stacks/other.yml")}, ["other"]),
        ({"policies/extra.rego": "package extra\n\nimport rego.v1\n\ndeny := set()\n"},
         list(APPS)),  # policies: inputs of every app
    ],
    ids=["shared-base", "config-file", "env-file", "app-definition", "policies"],
)  # fmt: skip
def test_each_kind_of_input_re_renders_the_apps_that_read_it(
    make: Callable[..., Rig], files: dict[str, str], rendered: list[str]
) -> None:
    rig = make()
    assert rig.commit("change", files) == sorted(rendered)
    assert rig.commit("docs", {"README.md": "x\n"}) == []  # and then they are skipped again


def test_gitswarm_yml_is_an_input_of_every_app(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.repo.sync = {"prune": False, "health_timeout": 60}
    rig.repo.write_settings()
    assert rig.commit("settings", {}) == sorted(APPS)


def test_a_policy_that_reads_the_commit_makes_every_commit_an_input(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rego = (
        "package commits\n\nimport rego.v1\n\n"
        'deny contains "no WIP" if contains(input.commit.message, "WIP")\n'
    )
    assert rig.commit("a policy", {"policies/commits.rego": rego}) == sorted(APPS)
    assert rig.commit("docs", {"README.md": "x\n"}) == sorted(APPS)  # its verdict may change


def test_an_app_whose_last_sync_failed_is_synced_again(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.store.set_status("third", "dev", last_result="Failed", sync="OutOfSync")
    assert rig.commit("docs", {"README.md": "x\n"}) == ["third"]


def test_an_environment_whose_commits_the_agent_verifies_renders_every_commit(
    make: Callable[..., Rig],
) -> None:
    """No skip where each new commit must be checked (the agent's pinned verify)."""
    rig = make()
    rig.reconciler.pinned_verify = {"dev": None}  # type: ignore[dict-item]
    assert rig.commit("docs", {"README.md": "x\n"}) == sorted(APPS)


# --- an app whose deployed revision is behind is never skipped ----------------------------


def test_an_app_held_by_a_closed_window_is_synced_at_every_commit_until_it_deploys(
    make: Callable[..., Rig],
) -> None:
    """Its render at the new head equals its render at the held commit, but what is
    deployed is older: it is tried again (and held again), and deploys once the window
    opens — also at a commit that touched nothing of it."""
    now = [dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)]  # a Monday: open
    window = {"mode": "enforce", "timezone": "UTC", "allow": ["Mon-Fri 09:00-17:00"]}
    rig = make(Clock(now=lambda: now[0]), policies={"deployment_windows": window})
    now[0] = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)  # Saturday: closed
    changed = _dump({"services": {"api": service("127.0.0.1:5000/busybox:2")}})
    assert rig.poll("other: busybox 2", {"stacks/other.yml": changed}) == ["other"]
    held = rig.store.get_status("other", "dev")
    assert held is not None and held.reason == "DeploymentWindowClosed", held
    assert rig.poll("docs", {"README.md": "x\n"}) == ["other"]  # still behind: tried again
    now[0] = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)  # Monday
    assert rig.poll("docs again", {"README.md": "y\n"}) == ["other"]
    status = rig.store.get_status("other", "dev")
    assert status is not None and (status.sync, status.revision) == ("Synced", rig.repo.git(
        "rev-parse", "HEAD"))  # fmt: skip
    images = [s.image for s in rig.swarm.services("st-other") if s.compose_name == "api"]
    assert images == ["127.0.0.1:5000/busybox:2"]


def test_an_app_rolled_back_is_synced_at_the_next_commit(make: Callable[..., Rig]) -> None:
    rig = make()
    first = rig.store.get_status("third", "dev")
    assert first is not None
    rig.store.set_status("third", "dev", last_result="RolledBack", sync="OutOfSync")
    assert rig.commit("docs", {"README.md": "x\n"}) == ["third"]


def test_an_app_deployed_at_an_older_revision_by_hand_is_synced_at_the_next_commit(
    make: Callable[..., Rig],
) -> None:
    """`gitswarm sync --revision OLD` (another process): the store says OLD is deployed,
    so the agent compares the head with OLD, not with what it deployed itself."""
    from gitswarm.reconcile.sync import Reconciler, SyncRequest

    rig = make()
    old = rig.repo.git("rev-parse", "HEAD")
    changed = _dump({"services": {"api": service("127.0.0.1:5000/busybox:2")}})
    assert rig.commit("other: busybox 2", {"stacks/other.yml": changed}) == ["other"]
    cli = Reconciler(RepoSource.open(str(rig.repo.path)), rig.store, lambda _t: rig.swarm)
    assert cli.sync(SyncRequest("other", "dev", revision=old)).result == "Succeeded"
    for agent in ("running", "restarted"):
        if agent == "restarted":
            rig.restart()
        assert rig.poll("docs", {"README.md": f"{agent}\n"}) == ["other"], agent
        assert cli.sync(SyncRequest("other", "dev", revision=old)).result == "Succeeded"


# --- after a restart: the store says what was deployed from which inputs ------------------


def test_a_new_agent_skips_the_apps_whose_inputs_the_store_says_are_unchanged(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.restart()
    writes = rig.swarm.writes
    assert rig.poll() == []  # the same head: nothing rendered, nothing deployed
    assert rig.swarm.writes == writes
    changed = _dump({"services": {"api": service("127.0.0.1:5000/busybox:2")}})
    assert rig.commit("other: busybox 2", {"stacks/other.yml": changed}) == ["other"]
    rig.restart()
    assert rig.commit("docs", {"README.md": "x\n"}) == []
    skipped = rig.metrics.registry.get_sample_value("gitswarm_syncs_skipped_total", {})
    assert skipped == 3


def test_a_new_agent_syncs_an_app_whose_last_operation_was_interrupted(
    make: Callable[..., Rig],
) -> None:
    """A kill -9 in the middle of a deploy at the deployed revision (an API sync, a
    provider's new secret value): the store's digest is the same, but that operation
    must be done again."""
    rig = make()
    op = rig.store.start_operation("sync", "third", "dev", holder="dead", trigger="api")
    rig.store.finish_operation(op, "Interrupted")
    rig.restart()
    assert rig.poll() == ["third"]


def test_a_new_agent_does_not_trust_a_digest_of_another_gitswarm_version(
    make: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new gitswarm may render the same files differently: its first round renders."""
    import gitswarm

    rig = make()
    monkeypatch.setattr(gitswarm, "__version__", "99.0.0")
    rig.restart()
    assert rig.poll() == sorted(APPS)


# --- the digest itself ---------------------------------------------------------------------


def _config(b_files: tuple[str, ...], b_stack: str) -> RepoConfig:
    env = Environment("dev", 0, Target("local"), "environments/dev")
    apps = (
        Application("a", "shared", ("a.yml",), ("dev",)),
        Application("b", b_stack, b_files, ("dev",)),
    )
    return RepoConfig("p", (env,), apps)


def test_another_app_s_files_are_an_input_only_where_it_shares_the_stack() -> None:
    """Apps deploying to one stack check each other's services (render/stack.py)."""

    def digest(files: tuple[str, ...], stack: str) -> str:
        config = _config(files, stack)
        return settings_digest(config, config.application("a"), config.environment("dev"))

    assert digest(("b.yml",), "shared") != digest(("b2.yml",), "shared")
    assert digest(("b.yml",), "own") == digest(("b2.yml",), "own")
    assert digest(("b.yml",), "own") != digest(("b.yml",), "other")  # stack names count


def test_the_same_content_at_two_commits_is_the_same_input(tmp_path: Path) -> None:
    repo = GitOpsRepo(tmp_path / "repo", "s")
    repo.write("base/a.yml", "x: 1\n")
    repo.write("base/b.yml", "y: 1\n")
    (repo.path / "base/link.yml").symlink_to("a.yml")
    first = repo.commit("one")
    repo.write("README.md", "docs\n")
    same = repo.commit("two")
    (repo.path / "base/link.yml").unlink()
    (repo.path / "base/link.yml").symlink_to("b.yml")
    moved = repo.commit("three")
    recording = RecordingTree(GitTree(repo.path, first))
    recording.read("base/link.yml", limit=100)
    recording.exists("base/none.yml")
    recording.listdir("base")
    inputs = recording.inputs()
    at = {rev: inputs.digest(GitTree(repo.path, rev)) for rev in (first, same, moved)}
    assert at[first] == at[same] != at[moved]


def test_the_settings_are_read_again_only_when_their_files_change(
    make: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading gitswarm.yml and applications/*.yml is 1,000 files at 1,000 apps: a commit
    that leaves them as they were reuses the settings read before (issue 18)."""
    rig = make()
    loads: list[str | None] = []

    def counted(tree: Tree) -> RepoConfig:
        loads.append(tree.revision)
        return load_config(tree)

    monkeypatch.setattr(settings_module, "load_config", counted)
    changed = _dump({"services": {"api": service("127.0.0.1:5000/busybox:2")}})
    assert rig.commit("other: busybox 2", {"stacks/other.yml": changed}) == ["other"]
    assert rig.commit("docs", {"README.md": "x\n"}) == []
    assert loads == []
    definition = app_file("other", "base/shared.yml", "stacks/other.yml", "stacks/more.yml")
    more = _dump({"services": {"more": service(IMAGE)}})
    files = {"applications/other.yml": definition, "stacks/more.yml": more}
    assert rig.commit("other's definition", files) == ["other"]
    assert loads == [rig.agent.head]
    config = rig.agent.config
    assert config is not None and config.application("other").files[-1] == "stacks/more.yml"


def test_the_apps_a_commit_touched_are_queued_before_the_others_are_checked(
    make: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 1,000 apps, checking the other 999 for unchanged inputs takes a second or
    more: the sync of the app that changed does not wait for it."""
    rig = make()
    seen: list[bool] = []
    advance = rig.store.advance_revisions

    def spied(moves: Any, revision: str, message: str) -> set[tuple[str, str]]:
        queue = rig.agent.state.queue
        seen.append(("sync", "other", "dev") in queue.pending)
        return advance(moves, revision, message)

    monkeypatch.setattr(rig.store, "advance_revisions", spied)
    changed = _dump({"services": {"api": service("127.0.0.1:5000/busybox:2")}})
    assert rig.commit("other: busybox 2", {"stacks/other.yml": changed}) == ["other"]
    assert seen == [True]


def test_a_broken_gitswarm_yml_is_recorded_for_every_app_not_skipped(
    make: Callable[..., Rig],
) -> None:
    """Settings that do not load leave nothing to compare inputs with: every app syncs,
    so the error is in each status (and nothing is applied)."""
    rig = make()
    writes = rig.swarm.writes
    rig.repo.write("gitswarm.yml", "project: [unclosed\n")
    head = rig.repo.commit("broken settings")
    rig.agent.enqueue(("git",), TriggerRequest("poll"))
    rig.agent.run_pending()
    assert rig.swarm.writes == writes
    for app in APPS:
        status = rig.store.get_status(app, "dev")
        assert status is not None and status.revision != head, (app, status)
        assert status.last_result == "Failed" and "gitswarm.yml" in status.message, status
