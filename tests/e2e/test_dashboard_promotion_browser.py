"""Promotion from the dashboard in a real browser (Debian's Chromium, headless, driven by
Playwright) against a real agent on the real swarm, with the example repository of
`gitswarm init` on a served Git remote (staging -> production, one approval):

- a deployer of production promotes staging -> production from the page, after the dry
  run; the promotion waits for approval and the overview badges it;
- the requester sees no approve button on it; an approver (another user) rejects it
  with a reason: nothing is committed;
- promoted again, the approver approves it from the page: the commit lands in the Git
  remote (Approved-By), production converges to the promoted tag, and the deployer's
  open page shows the new Git head and the deploy without a reload, long before the
  agent's next poll (300 s here: the agent looked at Git when the promotion committed),
  and the promotion no longer waiting there;
- a viewer of production sees no promote, approve or reject button, and each endpoint
  answers 403 (audited);
- no page or answer of the run holds one of the example's secret values;
- no browser process is left behind.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from gitswarm.api import create_app, serve_in_thread, settings_from_mapping
from gitswarm.cli.serve import look_at_git
from gitswarm.promote.pipeline import Promoter
from gitswarm.promote.service import PromotionService
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.render.secrets import Identity
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from harness.gitserve import GitRemote
from tests.conftest import Cleaner, SwarmUnderTest
from tests.e2e.test_dashboard_browser import CHROMIUM, _account, _browsers_with, _sign_in
from tests.gitops import Cli
from tests.integration.agent_rig import wait_for
from tests.integration.promotion_rig import ExampleRemote, example_remote, remove_stacks
from tests.integration.swarm_helpers import image_of

pytestmark = [pytest.mark.swarm, pytest.mark.browser]

APP = "medianest"
PASSWORDS = {
    "dora": "dora-deploys-production",
    "alice": "alice-approves-production",
    "pete": "pete-views-production",
}
PROD = f"/ui/apps/{APP}/envs/production"


@pytest.fixture()
def example(
    cli: Cli, git_remote: GitRemote, tmp_path: Path, stack_name: str, cleaner: Cleaner,
    registry: str,
) -> Iterator[ExampleRemote]:  # fmt: skip
    rig = example_remote(cli, git_remote, tmp_path, stack_name)
    try:
        yield rig
    finally:
        remove_stacks(cleaner, stack_name)


def _prepare(example: ExampleRemote) -> None:
    """Staging and production only (no development stack to wait for); staging runs
    1.1.0, production 1.0.0; production needs one approval and no soak."""
    from ruamel.yaml import YAML

    yaml = YAML()
    path = example.wc.path / "gitswarm.yml"
    settings = yaml.load(path.read_text())
    settings["application"]["environments"] = ["staging", "production"]
    settings["environments"]["production"]["promotion"] = {
        "approvals": 1,
        "gates": {"policy": True, "window": True},
    }
    with path.open("w") as fh:
        yaml.dump(settings, fh)
    env = example.wc.path / "environments/staging/.env"
    env.write_text(env.read_text().replace("APP_VERSION=1.0.0", "APP_VERSION=1.1.0"))
    example.commit_push("browser test: staging runs 1.1.0, production needs one approval")


def _secrets(tmp_path: Path, example: ExampleRemote) -> list[str]:
    values = []
    for env in ("staging", "production"):
        identity = Identity((tmp_path / f"keys/medianest/{env}.key").read_text())
        for path in sorted((example.wc.path / "environments" / env / "secrets").glob("*.age")):
            values.append(identity.decrypt(path.read_bytes(), source="t").decode())
    assert values and all(len(v) >= 16 for v in values)
    return values


def _users(cli: Cli) -> None:
    for user, role in (("dora", "deployer"), ("alice", "approver"), ("pete", "viewer")):
        args = ["user", "add", user, "--role", role, "--env", "production"]
        if user != "pete":
            args += ["--grant", "viewer"]  # they see staging too
        _account(cli, *args, "--password-stdin", stdin=PASSWORDS[user])


def _pending_id(page: Any) -> int:
    text = page.locator("ul.promotions li").first.get_attribute("id") or ""
    return int(text.removeprefix("promotion-"))


def test_promotion_from_the_dashboard_in_a_browser(
    swarm: SwarmUnderTest,
    cli: Cli,
    example: ExampleRemote,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Every assertion waits up to 30 s, not Playwright's 5: Chromium on a loaded 2-core
    # machine is slow, not wrong (the live updates name their own, tighter, waits).
    expect.set_options(timeout=30_000)
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (scripts/bootstrap installs it)")
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("GITSWARM_CACHE", str(tmp_path / "cache"))
    _prepare(example)
    secrets = _secrets(tmp_path, example)
    _users(cli)
    token = _account(cli, "token", "create", "--user", "pete", "--role", "viewer")

    store = Store(str(cli.state))
    source = RepoSource.open(example.url)
    reconciler = Reconciler(source, store, SwarmPool())
    agent = Agent(
        source=source,
        store=store,
        reconciler=reconciler,
        settings=AgentSettings(poll_interval=300, drift_interval=5),
    )
    service = PromotionService(Promoter(reconciler), committed=lambda o: look_at_git(agent, o))
    api = replace(settings_from_mapping({}, audit=store.audit, accounts=store), sse_interval=0.25)
    handle = serve_in_thread(
        create_app(agent, api, promotions=service, records=store), "127.0.0.1", 0
    )
    base = handle.url
    marker = f"--gitswarm-test-browser={uuid.uuid4().hex}"
    seen: list[str] = []  # every page and answer of the run, for the secret grep
    timings: dict[str, float] = {}
    agent.start()
    try:
        assert agent.wait_leader(10)
        wait_for(agent.idle, 180)
        for env in ("staging", "production"):
            status = store.get_status(APP, env)
            assert status is not None and status.health == "Healthy", (env, status)
        before = example.remote_git("rev-parse", "HEAD")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[marker])
            assert _browsers_with(marker)
            try:
                dora = browser.new_context(viewport={"width": 1280, "height": 800})
                page = dora.new_page()
                _sign_in(page, base, "dora", PASSWORDS["dora"])
                expect(page.get_by_role("heading", name="Applications")).to_be_visible()

                # From staging's page: the dry run, then the request.
                page.goto(f"{base}/ui/apps/{APP}/envs/staging")
                page.get_by_role("link", name="Promote to production…").click()
                expect(page.get_by_role("heading", name=re.compile("Dry run"))).to_be_visible()
                expect(page.locator("pre.edit")).to_contain_text("+APP_VERSION=1.1.0")
                expect(page.locator("ul.gates")).to_contain_text("source-healthy")
                seen.append(page.content())
                page.get_by_role("button", name="Promote to production").click()
                expect(page.get_by_role("status")).to_contain_text("waits for approval")
                first = _pending_id(page)
                expect(page.get_by_role("button", name=f"Approve #{first}")).to_have_count(0)
                expect(page.locator(f"#promotion-{first}")).to_contain_text("You requested it")
                seen.append(page.content())
                page.goto(f"{base}/ui/")
                expect(page.locator(f"#cell-{APP}--production")).to_contain_text(
                    "1 waiting for approval"
                )
                seen.append(page.content())

                # The approver rejects it from the promotions list: nothing committed.
                alice = browser.new_context().new_page()
                _sign_in(alice, base, "alice", PASSWORDS["alice"])
                alice.goto(f"{base}/ui/promotions")
                seen.append(alice.content())
                alice.locator(f"#rj-{first}").fill("release notes first")
                alice.get_by_role("button", name=f"Reject #{first}").click()
                expect(alice.get_by_role("status")).to_contain_text("Rejected")
                assert store.get_promotion(first).status == "rejected"
                assert example.remote_git("rev-parse", "HEAD") == before

                # Promoted again from production's page; approved from production's page.
                page.goto(f"{base}{PROD}")
                page.get_by_role("link", name="Promote from staging…").click()
                page.get_by_role("button", name="Promote to production").click()
                expect(page.get_by_role("status")).to_contain_text("waits for approval")
                second = _pending_id(page)
                watcher = dora.new_page()  # production's page stays open, never reloaded
                watcher.goto(f"{base}{PROD}")
                watcher.evaluate("window.__notReloaded = true")
                summary = watcher.locator("#summary")
                expect(summary).to_contain_text(before[:7])
                expect(watcher.locator(f"#promotion-{second}")).to_contain_text("You requested it")

                alice.goto(f"{base}{PROD}")
                alice.locator(f"#ap-{second}").fill("staging looks good")
                started = time.monotonic()
                alice.get_by_role("button", name=f"Approve #{second}").click()
                expect(alice.get_by_role("status")).to_contain_text("Promotion committed")
                seen.append(alice.content())
                commit = example.remote_git("rev-parse", "HEAD")
                assert commit != before
                trailers = example.remote_git(
                    "log", "-1", "--format=%(trailers:key=Approved-By,valueonly)"
                )
                assert trailers.split() == ["alice"]
                assert "APP_VERSION=1.1.0" in example.remote_git(
                    "show", f"{commit}:environments/production/.env"
                )

                # The open page shows the new head and then the deploy of it, live.
                expect(summary).to_contain_text(commit[:7], timeout=30_000)
                expect(watcher.locator(f"#promotion-{second}")).to_have_count(0)  # not waiting
                timings["new head on the page"] = time.monotonic() - started
                wait_for(
                    lambda: (
                        (s := store.get_status(APP, "production")) is not None
                        and s.revision == commit
                        and s.health == "Healthy"
                    ),
                    120,
                )
                expect(summary).to_contain_text("Healthy", timeout=30_000)
                expect(summary).not_to_contain_text("newer than deployed", timeout=30_000)
                timings["production converged on the page"] = time.monotonic() - started
                assert watcher.evaluate("window.__notReloaded") is True
                app_image = image_of(
                    docker_client, f"{example.stack_of('production')}_medianest-app"
                )
                assert ":1.1.0" in app_image
                seen.append(watcher.content())

                # A viewer of production: no button, and 403 (audited) from each endpoint.
                pete = browser.new_context().new_page()
                _sign_in(pete, base, "pete", PASSWORDS["pete"])
                pete.goto(f"{base}{PROD}")
                expect(
                    pete.get_by_role("heading", name=re.compile("in production"))
                ).to_be_visible()
                for name in ("Promote from staging…", "Promote to production…"):
                    expect(pete.get_by_role("link", name=name)).to_have_count(0)
                expect(pete.get_by_role("button", name=re.compile("Approve|Reject"))).to_have_count(
                    0
                )
                seen.append(pete.content())
                pete.goto(f"{base}/ui/promotions")
                expect(pete.get_by_role("button", name=re.compile("Approve|Reject"))).to_have_count(
                    0
                )
                seen.append(pete.content())
                csrf = pete.locator('input[name="csrf"]').first.get_attribute("value") or ""
                refused = pete.goto(f"{base}{PROD}/promote")
                assert refused is not None and refused.status == 403
                for path, fields in (
                    (f"{PROD}/promote", {"images": "127.0.0.1:5000/medianest/app:1.1.0"}),
                    (f"/ui/promotions/{first}/approve", {}),
                    (f"/ui/promotions/{first}/reject", {"reason": "mine"}),
                ):
                    answer = pete.request.post(f"{base}{path}", form={"csrf": csrf, **fields})
                    assert answer.status == 403, path
                refusals = {
                    e.action
                    for e in store.audit_events(limit=None, actor="pete")
                    if e.details.get("result") == "forbidden"
                }
                assert refusals >= {"promote", "approve", "reject"}
                assert example.remote_git("rev-parse", "HEAD") == commit
                cookies = {c["name"]: c["value"] for c in dora.cookies()}
            finally:
                browser.close()
        assert wait_for(lambda: not _browsers_with(marker), 10) >= 0

        # The promotion pages and answers once more, for the grep.
        with httpx.Client(base_url=base, timeout=30) as client:
            auth = {"Authorization": f"Bearer {token}"}
            for path in (
                "/api/v1/promotions?all=true",
                f"/api/v1/promotions/{second}",
                f"/api/v1/apps/{APP}/envs/production",
                "/api/v1/history?env=production",
            ):
                r = client.get(path, headers=auth)
                assert r.status_code == 200, (path, r.text[:300])
                seen.append(r.text)
            client.cookies.update(cookies)
            for path in ("/ui/", PROD, f"/ui/apps/{APP}/envs/staging", "/ui/promotions"):
                r = client.get(path)
                assert r.status_code == 200, (path, r.text[:300])
                seen.append(r.text)
            r = client.get(f"/ui/apps/{APP}/envs/production/promote")  # nothing left to promote
            assert r.status_code == 200 and "already runs these tags" in r.text, r.text[:300]
            seen.append(r.text)
            with client.stream("GET", f"/ui/events?app={APP}&env=production") as events:
                chunks = []
                for chunk in events.iter_text():
                    chunks.append(chunk)
                    if "event: timeline" in "".join(chunks):
                        break
                seen.append("".join(chunks))
    finally:
        handle.stop()
        agent.stop(timeout=30)
        store.close()

    leaks = [i for i, text in enumerate(seen) for value in secrets if value in text]
    assert leaks == [], f"a secret value is in answers {leaks}"
    print(f"\npromotion timings: {timings}")
