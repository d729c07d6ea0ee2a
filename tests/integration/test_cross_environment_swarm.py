"""On the real swarm: a development stack cannot use production's secret (issue 11).

Production is deployed with its own content-addressed secret. A push gives development's
overlay that secret as ``external``, by the name production's stack gave it. `gitswarm
sync --env dev` refuses it with the line that wrote it, and nothing of development is
deployed. With the check taken out, the very same commit deploys, and development's
service mounts production's secret: the reference is real on this swarm, and only the
check stops it.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from gitswarm.render import stack as render_stack_module
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.source.keys import write_identity
from tests.conftest import Cleaner
from tests.gitops import Cli, GitOpsRepo, service
from tests.integration.swarm_helpers import object_names

pytestmark = pytest.mark.swarm


def _secret_names(client: docker.DockerClient, name: str) -> list[str]:
    spec = client.api.inspect_service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]
    return sorted(ref["SecretName"] for ref in spec.get("Secrets", []))


def test_a_development_stack_cannot_mount_production_s_secret(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    cleaner: Cleaner,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
    registry: str,
) -> None:
    dev_stack, prod_stack = f"{stack_name}-dev", f"{stack_name}-prod"
    try:
        ids = {env: Identity.generate() for env in ("dev", "prod")}
        for env, identity in ids.items():
            write_identity(cli.keys / "t" / f"{env}.key", identity)
        repo = GitOpsRepo(tmp_path / "repo", stack_name)
        repo.write(
            "gitswarm.yml",
            "project: t\n"
            f"application: {{name: app, stack: '{stack_name}-{{env}}'}}\n"
            "environments:\n"
            + "".join(
                f"  {env}: {{sync: {{health_timeout: 60}}, "
                f"secrets: {{recipients: ['{identity.recipient}']}}}}\n"
                for env, identity in ids.items()
            ),
        )
        repo.compose(
            {"web": service(secrets=["token"])},
            secrets={"token": {"file": "../environments/${GITSWARM_ENV}/secrets/token.age"}},
        )
        for env, identity in ids.items():
            repo.write(f"environments/{env}/docker-compose.yml", "services: {}\n")
            (repo.path / "environments" / env / "secrets").mkdir(parents=True)
            (repo.path / "environments" / env / "secrets" / "token.age").write_bytes(
                encrypt(f"{env}-token".encode(), [identity.recipient])
            )
        repo.commit("two environments with a secret each")
        result = cli("sync", "--env", "prod", "--repo", str(repo.path))
        assert result.exit_code == 0, result.output
        (prod_secret,) = object_names(docker_client, prod_stack, "secret")
        assert prod_secret.startswith(f"{prod_stack}_token_")

        repo.write(
            "environments/dev/docker-compose.yml",
            "services:\n"
            "  web:\n"
            "    secrets: [token, stolen]\n"
            "secrets:\n"
            "  stolen:\n"
            "    external: true\n"
            f"    name: {prod_secret}\n",
        )
        repo.commit("development mounts production's secret")
        answer = cli.json("sync", "--env", "dev", "--repo", str(repo.path))
        assert answer["_exit_code"] == 2
        (outcome,) = answer["results"]
        assert (outcome["result"], outcome["reason"]) == ("Failed", "ValidationFailed")
        assert [str(p["file"]) + f":{p['line']}:{p['column']}" for p in outcome["problems"]] == [
            "environments/dev/docker-compose.yml:7:5"
        ]
        assert outcome["problems"][0]["message"] == (
            f"secret stolen: {prod_secret!r} belongs to stack {prod_stack!r} of application "
            "'app' in environment 'prod'; a stack of 'dev' must not use another environment's "
            "secrets. Declare the secret in this environment (secrets: an .age file encrypted "
            "to dev's recipients)"
        )
        assert outcome["problems"][0]["rule"] == "cross-environment"
        assert not docker_client.api.services(
            filters={"label": f"com.docker.stack.namespace={dev_stack}"}
        )
        assert not object_names(docker_client, dev_stack, "secret")

        # The control: without the check the same commit deploys, and development's
        # service mounts production's secret.
        monkeypatch.setattr(render_stack_module, "_check_references", lambda *_a: None)
        result = cli("sync", "--env", "dev", "--repo", str(repo.path))
        assert result.exit_code == 0, result.output
        (dev_secret,) = object_names(docker_client, dev_stack, "secret")
        assert _secret_names(docker_client, f"{dev_stack}_web") == sorted([dev_secret, prod_secret])
    finally:
        cleaner.submit(dev_stack)
        cleaner.submit(prod_stack)
