"""Work per app that must not grow with the number of apps (issue 18: 1,000 apps x 5
services on one swarm). bench/noop.py measures it on a real swarm; these pin down the
shapes that made a commit O(apps²) there."""

from __future__ import annotations

from collections.abc import Iterator

from gitswarm.model.config import Application, Environment, RepoConfig, Target


class CountedApps(tuple[Application, ...]):
    """A tuple of applications that counts how often it is walked."""

    walks = 0

    def __iter__(self) -> Iterator[Application]:
        CountedApps.walks += 1
        return super().__iter__()


def test_looking_up_an_app_and_its_dependencies_does_not_walk_every_app() -> None:
    """Each sync looks its app up a few times and asks for the dependencies of the
    app and of every app waiting on it: a walk of all apps each time made a commit to a
    repository of 1,000 apps spend most of its time there."""
    target = Target("local")
    envs = (
        Environment("dev", 0, target, "environments/dev"),
        Environment("prod", 1, target, "environments/prod"),
    )
    apps = [Application(f"a{i}", f"a{i}", (f"a{i}.yml",), ("dev", "prod")) for i in range(1000)]
    apps.append(Application("web", "web", ("web.yml",), ("dev",), depends_on=("a1", "a2")))
    apps.append(Application("api", "api", ("api.yml",), ("dev", "prod"), depends_on=("web",)))
    config = RepoConfig("p", envs, CountedApps(apps))
    CountedApps.walks = 0
    assert config.application("a999").name == "a999"
    assert config.dependencies("web", "dev") == ("a1", "a2")
    assert config.dependencies("api", "dev") == ("web",)
    assert config.dependencies("api", "prod") == ()  # web is not deployed there
    assert config.dependencies("web", "prod") == ()  # web itself is not deployed there
    assert config.dependencies("nobody", "dev") == ()
    assert CountedApps.walks == 0
