"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright)
against a real agent on the real swarm, with the example repository of `gitswarm init`:

- sign in; the overview grid shows the example's application;
- a sync started from the dashboard (dry run first, then confirmed) changes the page
  live, without a reload, "Git head" included (not at the agent's next poll); so does a
  `gitswarm sync` run in a terminal;
- a manual `docker service scale` shows up as drift on the overview and the app page;
- a viewer of production sees no sync button there, and the endpoint answers 403;
- a form posted without the session's CSRF token is refused;
- after five failed sign-ins the right password is refused too;
- no page, fragment or API answer of the run holds one of the example's secret values;
- no browser process is left behind.

Screenshots of the overview and of the application page are written to tmp_path, and
to docs/ when GITSWARM_SCREENSHOTS=docs (how docs/dashboard-*.png were made).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from gitswarm.api import create_app, serve_in_thread, settings_from_mapping
from gitswarm.cli.main import cli as gitswarm_cli
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.render.secrets import Identity
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from tests.conftest import Cleaner, SwarmUnderTest
from tests.gitops import Cli
from tests.integration.agent_rig import wait_for

pytestmark = [pytest.mark.swarm, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"
PASSWORDS = {"dora": "dora-deploys-dev", "pete": "pete-views-prod"}
APP = "medianest"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=Ada Lovelace",
            "-c",
            "user.email=ada@example.org",
            *args,
        ],
        check=True,
    )


def _example(cli: Cli, repo: Path, stack: str) -> None:
    assert cli("init", str(repo)).exit_code == 0
    yaml = YAML()
    settings = yaml.load((repo / "gitswarm.yml").read_text())
    settings["application"]["stack"] = f"{stack}-{{env}}"
    settings["application"]["environments"] = ["development", "production"]
    settings["environments"]["development"]["sync"]["self_heal"] = False  # drift stays
    settings["environments"]["production"]["sync"]["automated"] = False  # never deployed
    with (repo / "gitswarm.yml").open("w") as fh:
        yaml.dump(settings, fh)
    _git(repo, "commit", "-qam", "dashboard test: two environments")


def _account(cli: Cli, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(gitswarm_cli, list(args), env=cli.env(), input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _secrets(tmp_path: Path, repo: Path) -> list[str]:
    values = []
    for env in ("development", "production"):
        identity = Identity((tmp_path / f"keys/medianest/{env}.key").read_text())
        for path in sorted((repo / "environments" / env / "secrets").glob("*.age")):
            values.append(identity.decrypt(path.read_bytes(), source="t").decode())
    assert values and all(len(v) >= 16 for v in values)
    return values


def _sign_in(page: Any, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/ui/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _browsers_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _deploys(store: Store) -> int:
    """The syncs and rollbacks of the app in development the store has recorded."""
    history = store.history(app=APP, env="development", limit=1000)
    return sum(1 for op in history if op.kind in ("sync", "rollback"))


def test_the_dashboard_in_a_browser(
    swarm: SwarmUnderTest,
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    registry: str,
    cleaner: Cleaner,
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
    repo = tmp_path / "repo"
    _example(cli, repo, stack_name)
    secrets = _secrets(tmp_path, repo)
    dev_stack = f"{stack_name}-development"
    _account(
        cli,
        "user",
        "add",
        "dora",
        "--role",
        "deployer",
        "--env",
        "development",
        "--grant",
        "viewer",
        "--password-stdin",
        stdin=PASSWORDS["dora"],
    )
    _account(
        cli,
        "user",
        "add",
        "pete",
        "--role",
        "viewer",
        "--env",
        "production",
        "--password-stdin",
        stdin=PASSWORDS["pete"],
    )
    token = _account(cli, "token", "create", "--user", "dora", "--role", "viewer")

    store = Store(str(cli.state))
    source = RepoSource.open(str(repo))
    agent = Agent(
        source=source,
        store=store,
        reconciler=Reconciler(source, store, SwarmPool()),
        settings=AgentSettings(poll_interval=300, drift_interval=2),
    )
    api = replace(settings_from_mapping({}, audit=store.audit, accounts=store), sse_interval=0.25)
    handle = serve_in_thread(create_app(agent, api, records=store), "127.0.0.1", 0)
    base = handle.url
    marker = f"--gitswarm-test-browser={uuid.uuid4().hex}"
    seen: list[str] = []  # every page and answer of the run, for the secret grep
    timings: dict[str, float] = {}
    agent.start()
    try:
        assert agent.wait_leader(10)
        wait_for(agent.idle, 120)
        assert store.get_status(APP, "development").health == "Healthy"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[marker])
            assert _browsers_with(marker)
            try:
                dora = browser.new_context(viewport={"width": 1280, "height": 800})
                page = dora.new_page()
                _sign_in(page, base, "dora", PASSWORDS["dora"])
                expect(page.get_by_role("heading", name="Applications")).to_be_visible()
                cell = page.locator(f"#cell-{APP}--development")
                expect(cell).to_contain_text("Synced")
                expect(cell).to_contain_text("Healthy")
                seen.append(page.content())

                # A commit, then a sync from the dashboard: the dry run shows the field.
                overlay = repo / "environments/development/docker-compose.yml"
                overlay.write_text(
                    overlay.read_text().replace("LOG_LEVEL: debug", "LOG_LEVEL: trace")
                )
                _git(repo, "commit", "-qam", "development: trace logging")
                head = subprocess.run(
                    ["git", "-C", str(repo), "rev-parse", "HEAD"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                watcher = dora.new_page()  # the overview stays open, never reloaded
                watcher.goto(f"{base}/ui/")
                watcher.evaluate("window.__notReloaded = true")
                page.goto(f"{base}/ui/apps/{APP}/envs/development")
                page.get_by_role("link", name="Sync…").click()
                expect(page.get_by_role("heading", name=re.compile("Dry run"))).to_be_visible()
                expect(page.locator("ul.plan")).to_contain_text("LOG_LEVEL")
                seen.append(page.content())
                page.get_by_label("Reason (goes into the audit trail)").fill("trace logging")
                page.get_by_role("button", name="Sync now").click()
                expect(page.get_by_role("status")).to_contain_text("Sync queued")
                page.evaluate("window.__notReloaded = true")
                summary = page.locator("#summary")
                expect(summary).to_contain_text(head[:7], timeout=90_000)
                expect(summary).to_contain_text("Succeeded", timeout=90_000)
                # "Git head" is the commit just deployed, not the one the agent's last
                # poll saw (it polls every 300 s here): it looked at Git after the sync.
                git_head = summary.locator("div", has_text="Git head")
                expect(git_head).to_contain_text(head[:7], timeout=10_000)
                expect(summary).not_to_contain_text("newer than deployed")
                expect(watcher.locator(f"#cell-{APP}--development")).to_contain_text(
                    head[:7], timeout=30_000
                )
                assert page.evaluate("window.__notReloaded") is True
                assert watcher.evaluate("window.__notReloaded") is True
                seen.append(page.content())

                # A sync from a terminal shows on the open overview within a second or so.
                before = store.latest_operations()[(APP, "development")].id
                terminal = cli.subprocess("sync", "--env", "development", "--repo", str(repo))
                wait_for(lambda: store.latest_operations()[(APP, "development")].id != before, 60)
                started = time.monotonic()
                newest = store.latest_operations()[(APP, "development")].id
                expect(
                    watcher.locator(f'#cell-{APP}--development [data-op="{newest}"]')
                ).to_be_attached(timeout=10_000)
                timings["terminal sync on the page"] = time.monotonic() - started
                _, err = terminal.communicate(timeout=120)  # closes its pipes too
                assert terminal.returncode == 0, err
                assert watcher.evaluate("window.__notReloaded") is True

                # A manual scale is drift, on the overview and on the app page.
                subprocess.run(
                    ["docker", "service", "scale", "-d", f"{dev_stack}_medianest-worker=2"],
                    check=True,
                    capture_output=True,
                )
                started = time.monotonic()
                expect(watcher.locator(f"#cell-{APP}--development")).to_contain_text(
                    "Drift: 1 service", timeout=30_000
                )
                timings["manual scale as drift on the page"] = time.monotonic() - started
                assert watcher.evaluate("window.__notReloaded") is True
                page.goto(f"{base}/ui/apps/{APP}/envs/development")
                drift = page.locator("section.drift")
                expect(drift).to_contain_text("medianest-worker")
                expect(drift).to_contain_text("replicas")
                expect(page.locator("table.tasks")).to_contain_text("medianest-app")
                seen.append(page.content())
                page.screenshot(path=str(tmp_path / "dashboard-app.png"), full_page=True)
                watcher.screenshot(path=str(tmp_path / "dashboard-overview.png"))
                seen.append(watcher.content())

                # A form without the session's CSRF token is refused; nothing is queued.
                # (Drift records keep coming while the worker stays scaled: count what a
                # sync request would start, not every record.)
                ops = _deploys(store)
                refused = page.request.post(
                    f"{base}/ui/apps/{APP}/envs/development/sync", form={"reason": "forged"}
                )
                assert refused.status == 403
                assert "did not come from your dashboard session" in refused.text()
                time.sleep(1)
                assert _deploys(store) == ops

                # A viewer of production: no sync button there, and 403 from the endpoint.
                pete = browser.new_context()
                ppage = pete.new_page()
                _sign_in(ppage, base, "pete", PASSWORDS["pete"])
                expect(ppage.get_by_role("heading", name="Applications")).to_be_visible()
                ppage.goto(f"{base}/ui/apps/{APP}/envs/production")
                expect(
                    ppage.get_by_role("heading", name=re.compile("in production"))
                ).to_be_visible()
                expect(ppage.get_by_role("link", name="Sync…")).to_have_count(0)
                expect(ppage.get_by_role("button", name="Roll back")).to_have_count(0)
                seen.append(ppage.content())
                csrf = ppage.locator('input[name="csrf"]').first.get_attribute("value")
                answer = ppage.request.post(
                    f"{base}/ui/apps/{APP}/envs/production/sync",
                    form={"csrf": csrf or "", "reason": "let me"},
                )
                assert answer.status == 403
                assert ppage.goto(f"{base}/ui/apps/{APP}/envs/development").status == 403
                refusals = [
                    e
                    for e in store.audit_events(limit=None, actor="pete")
                    if e.details.get("result") == "forbidden"
                ]
                assert {e.target for e in refusals} >= {f"{APP}/production", f"{APP}/development"}

                # Five failed sign-ins, then the right password is refused too.
                intruder = browser.new_context().new_page()
                for _ in range(5):
                    _sign_in(intruder, base, "pete", "not-the-password")
                    expect(intruder.get_by_role("alert")).to_contain_text("Wrong user name")
                _sign_in(intruder, base, "pete", PASSWORDS["pete"])
                expect(intruder.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
                assert "/ui/login" in intruder.url
                seen.append(intruder.content())

                cookies = {c["name"]: c["value"] for c in dora.cookies()}
            finally:
                browser.close()
        assert wait_for(lambda: not _browsers_with(marker), 10) >= 0

        # What the API and the pages answer, fetched once more for the grep.
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=30) as client:
            for path in (
                "/api/v1/status",
                f"/api/v1/apps/{APP}/envs/development",
                f"/api/v1/apps/{APP}/envs/development/diff",
                f"/api/v1/apps/{APP}/envs/production",
                "/api/v1/history?env=development",
                "/api/v1/dora?env=development",
                f"/api/v1/operations/{newest}",
                "/metrics",
            ):
                r = client.get(path, headers=auth)
                assert r.status_code == 200, (path, r.text[:300])
                seen.append(r.text)
            client.cookies.update(cookies)
            for path in (
                "/ui/",
                f"/ui/apps/{APP}/envs/development",
                f"/ui/apps/{APP}/envs/development/sync",
                f"/ui/apps/{APP}/envs/production",
                f"/ui/operations/{newest}",
                "/ui/dora?env=development",
                "/ui/promotions",
            ):
                r = client.get(path)
                assert r.status_code == 200, (path, r.text[:300])
                seen.append(r.text)
            with client.stream("GET", f"/ui/events?app={APP}&env=development") as events:
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
        for env in ("development", "production"):
            cleaner.submit(f"{stack_name}-{env}")

    assert any("gitswarm_login_failures_total" in s for s in seen)
    leaks = [i for i, text in enumerate(seen) for value in secrets if value in text]
    assert leaks == [], f"a secret value is in answers {leaks}"
    if os.environ.get("GITSWARM_SCREENSHOTS") == "docs":
        for name in ("dashboard-overview.png", "dashboard-app.png"):
            shutil.copy(tmp_path / name, DOCS / name)
    print(f"\ndashboard timings: {timings}")
