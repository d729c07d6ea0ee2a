"""Bad input through the command line: every message names the file and line and says
what is actually wrong (issue 12, "messages that mislead"), exit 2, no traceback.

Each case breaks the example repository of `gitswarm init` the way a user would and runs
the real CLI on it; the expected lines are the exact text a terminal shows.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.cli.output import error_text
from gitswarm.errors import ConfigError, Problem
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

BASE = "base/docker-compose.yml"
DEV_SECRET = "environments/development/secrets/jwt_secret.age"


@pytest.fixture()
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["init", str(repo)])
    assert result.exit_code == 0, result.output
    return repo


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def _edit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text()
    assert old in text, f"{old!r} not in {path}"
    file.write_text(text.replace(old, new, 1))


def _commit(repo: Path) -> None:
    git = ["git", "-C", str(repo), "-c", "user.name=Ada", "-c", "user.email=ada@example.test"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "break it"], check=True)


def _shows(problem: str, out: str, err: str) -> bool:
    """``problem`` is a line of its own: validate prints problems on stdout, every other
    command under its ``error [Reason]:`` line on stderr."""
    return problem in out.splitlines() or f"  {problem}" in err.splitlines()


def _line_of(repo: Path, path: str, text: str) -> int:
    lines = (repo / path).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


# --- gitswarm.yml that cannot be read: the reason, in every command --------------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6)
)

UNREADABLE_CONFIGS = [
    ("", "gitswarm.yml:1:1: must be a mapping of settings, but is empty [config-schema]"),
    (
        "- a\n- b\n",
        "gitswarm.yml:1:1: must be a mapping of settings, but is a list [config-schema]",
    ),
    (
        "project: [x\n",
        "gitswarm.yml:2:1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 1, column 10) [yaml]",
    ),
    (
        "project: a\nproject: b\n",
        "gitswarm.yml:2:1: mapping key 'project' already defined at line 1 [yaml]",
    ),
    (
        ALIAS_BOMB,
        "gitswarm.yml:6:4: the document expands to more than 200000 nodes (each alias *name "
        "repeats its anchor's value); use fewer aliases or split the file [yaml]",
    ),
]

COMMANDS = [
    ("render", "--env", "development"),
    ("policy", "check", "--env", "development"),
    ("validate",),
    ("sync", "--env", "development", "--dry-run"),
    ("diff", "--env", "development"),
    ("status",),
]


@pytest.mark.parametrize(("text", "expected"), UNREADABLE_CONFIGS)
def test_an_unreadable_gitswarm_yml_gets_its_reason_in_every_command(
    example: Path, text: str, expected: str
) -> None:
    (example / "gitswarm.yml").write_text(text)
    _commit(example)  # sync, diff and status read the committed revision
    # expanding the alias bomb to its limit takes a second; the commands share load_config
    for command in COMMANDS if text != ALIAS_BOMB else COMMANDS[:2]:
        code, out, err = _run(*command, "--repo", str(example))
        assert code == 2, (command, out, err)
        assert _shows(expected, out, err), (command, out, err)


def test_the_cli_prints_problems_a_message_leaves_out() -> None:

    problem = Problem("must be a mapping", file="gitswarm.yml", line=1, column=1, rule="x")
    bare = ConfigError("gitswarm.yml is not valid", problems=[problem])
    assert error_text(bare).splitlines() == [
        "error [ConfigInvalid]: gitswarm.yml is not valid",
        "  gitswarm.yml:1:1: must be a mapping [x]",
    ]
    listed = ConfigError(problems=[problem])  # the message is the problem: said once
    assert error_text(listed) == "error [ConfigInvalid]: gitswarm.yml:1:1: must be a mapping [x]"


# --- a NUL byte: the real file name, line and column -------------------------------------


def test_a_nul_byte_names_the_file_line_and_column(example: Path) -> None:
    config = example / "gitswarm.yml"
    config.write_bytes(config.read_bytes().replace(b"project: medianest", b"project: medi\0anest"))
    line = _line_of(example, "gitswarm.yml", "project: medi")
    code, _, err = _run("render", "--env", "development", "--repo", str(example))
    assert code == 2
    assert err.splitlines() == [
        "error [ConfigInvalid]: the repository settings are not valid:",
        f"  gitswarm.yml:{line}:14: a NUL byte (is it a binary file?) is not allowed in YAML; "
        "remove it [yaml]",
    ]
    assert "<file>" not in err


def test_a_control_character_in_a_compose_file_names_it(example: Path) -> None:
    _edit(example, BASE, "LOG_LEVEL: info", "LOG_LEVEL: in\x07fo")
    line = _line_of(example, BASE, "LOG_LEVEL: in")
    code, out, _ = _run("validate", "--env", "development", "--repo", str(example))
    assert code == 2
    assert (
        f"{BASE}:{line}:20: the character U+0007 is not allowed in YAML; remove it [yaml]"
        in out.splitlines()
    )


# --- compose and names: say what is wrong, and the limit --------------------------------


def _validate(repo: Path) -> list[str]:
    code, out, err = _run("validate", "--env", "development", "--repo", str(repo))
    assert code == 2, (out, err)
    return [line for line in out.splitlines() if not line.startswith(("FAIL", "ok"))]


def test_a_long_stack_name_is_reported_as_too_long_with_swarms_limit(example: Path) -> None:
    name = "a" * 78 + "-{env}"  # one per environment: the same stack twice is another error
    _edit(example, "gitswarm.yml", 'stack: "medianest-{env}"', f'stack: "{name}"')
    name = name.format(env="development")
    line = _line_of(example, "gitswarm.yml", "stack: ")
    assert _validate(example) == [
        f"gitswarm.yml:{line}:3: stack name '{name}' is 90 characters, too long for "
        "Swarm: each service is named <stack>_<service> in at most 63 characters, so a "
        "stack name can have at most 61; shorten it [name]"
    ]


def test_a_stack_name_with_a_bad_character_says_which_characters(example: Path) -> None:
    _edit(example, "gitswarm.yml", 'stack: "medianest-{env}"', 'stack: "_medianest-{env}"')
    line = _line_of(example, "gitswarm.yml", "stack: ")
    assert _validate(example) == [
        f"gitswarm.yml:{line}:3: stack name '_medianest-development' is not valid for Swarm: "
        "use letters, digits, '-' and '_' (no '.'), starting with a letter or digit [name]"
    ]
    _edit(example, "gitswarm.yml", 'stack: "_medianest-{env}"', 'stack: "medianest.{env}"')
    assert _validate(example) == [
        f"gitswarm.yml:{line}:3: application.stack: 'medianest.{{env}}' is not valid: a stack "
        "name uses letters, digits, '-' and '_', and the placeholders {env} and {app} "
        "[config-schema]"
    ]


def test_a_service_name_with_an_emoji_says_which_characters_are_allowed(example: Path) -> None:
    _edit(example, BASE, "  medianest-worker:", '  "worker-\U0001f600":')
    line = _line_of(example, BASE, "worker-\U0001f600")
    assert _validate(example) == [
        f"{BASE}:{line}:3: services: 'worker-\U0001f600' is not a valid name: use only ASCII "
        "letters (a-z, A-Z), digits (0-9), '.', '_' and '-' [compose-schema]"
    ]


@pytest.mark.parametrize(
    ("port", "why"),
    [
        ('"70000:80"', "invalid host port: 70000 is out of range 1-65535"),
        ('"8080:70000"', "invalid container port: 70000 is out of range 1-65535"),
        ('"80x:80"', "invalid host port: '80x' is not a port number"),
    ],
)
def test_a_port_out_of_range_is_reported_as_out_of_range(
    example: Path, port: str, why: str
) -> None:
    _edit(
        example,
        BASE,
        "    stop_grace_period: 5s\n",
        f"    stop_grace_period: 5s\n    ports: [{port}]\n",
    )
    line = _line_of(example, BASE, "ports: [")
    assert _validate(example) == [
        f"{BASE}:{line}:13: services.medianest-app.ports[0]: {port} is not a valid port "
        f"mapping ({why}) [compose-schema]"
    ]


def test_a_huge_replica_count_is_shown_as_written_with_the_limit(example: Path) -> None:
    _edit(example, BASE, "      replicas: 1", "      replicas: 99999999999999999999999")
    line = _line_of(example, BASE, "replicas: 9999")
    assert _validate(example) == [
        f"{BASE}:{line}:7: services.medianest-app.deploy.replicas must be an integer, not "
        "99999999999999999999999: a compose file's integers range from "
        "-9223372036854775808 to 18446744073709551615 [compose-schema]"
    ]


# --- secrets: a broken file is not "encrypted to another key" ---------------------------


def _secret_error(repo: Path) -> list[str]:
    code, out, err = _run("render", "--env", "development", "--repo", str(repo))
    assert code == 2 and not out, err
    return err.splitlines()


def _secret_problem(repo: Path, message: str) -> list[str]:
    line = _line_of(repo, BASE, "file: ../environments/${GITSWARM_ENV}/secrets")
    return [
        "error [SecretDecryptFailed]: cannot render medianest in development: 1 problem(s):",
        f"  {BASE}:{line}:5: secret jwt_secret: {DEV_SECRET} {message} [secret]",
    ]


DAMAGES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "truncated-header": (lambda data: data[:100], "failed to fill whole buffer"),
    "truncated-payload": (lambda data: data[:-5], "decryption error"),
    "corrupted-payload": (lambda data: data[:-3] + b"xyz", "decryption error"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_truncated_or_corrupted_secret_says_so(example: Path, damage: str) -> None:
    cut, why = DAMAGES[damage]
    secret = example / DEV_SECRET
    secret.write_bytes(cut(secret.read_bytes()))
    assert _secret_error(example) == _secret_problem(
        example,
        f"is not a complete age file (truncated or corrupted: {why}); encrypt the value "
        "again with `gitswarm secret encrypt --env development jwt_secret`",
    )


def test_a_secret_for_another_environment_says_whose_key_is_missing(example: Path) -> None:
    staging = example / "environments/staging/secrets/jwt_secret.age"
    (example / DEV_SECRET).write_bytes(staging.read_bytes())
    recipient = _line_of(example, "gitswarm.yml", "recipients: [")
    key = (example / "gitswarm.yml").read_text().splitlines()[recipient - 1].split('"')[1]
    assert _secret_error(example) == _secret_problem(
        example,
        "is encrypted to other keys, not to the identity of this environment (public key "
        f"{key}); encrypt it again for this environment with `gitswarm secret encrypt "
        "--env development jwt_secret`",
    )


# --- policies: settings errors carry the line and the rule --------------------------------

POLICY = "environments.production.policies.deployment_windows"


@pytest.mark.parametrize(
    ("old", "new", "find", "column", "message"),
    [
        (
            "timezone: Europe/Berlin",
            "timezone: Mars/Olympus",
            "timezone: Mars",
            9,
            f"{POLICY}.timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as "
            "Europe/Berlin)",
        ),
        (
            '"0 0 20 12 *"',
            '"0 0 40 12 *"',
            "0 0 40 12",
            37,
            f"{POLICY}.deny.0.schedule: cron schedule '0 0 40 12 *': '40' is not in 1-31",
        ),
        (
            "duration: 14d",
            "duration: forever",
            "duration: forever",
            62,
            f"{POLICY}.deny.0.duration: cannot read duration 'forever' (write e.g. 2h, 90m, "
            "1h30m, 1d)",
        ),
        (
            '"Mon-Thu 09:00-16:00"',
            '"Mon-Thu 09:00-26:00"',
            "Mon-Thu 09:00-26:00",
            17,
            f"{POLICY}.allow.0: cannot read window 'Mon-Thu 09:00-26:00': write e.g. "
            "'Mon-Thu 09:00-16:00 Europe/Berlin' or 'Fri 16:00-Mon 08:00'",
        ),
    ],
    ids=["timezone", "cron", "duration", "window"],
)
def test_policy_settings_errors_name_the_line_and_rule(
    example: Path, old: str, new: str, find: str, column: int, message: str
) -> None:
    _edit(example, "gitswarm.yml", old, new)
    problem = f"gitswarm.yml:{_line_of(example, 'gitswarm.yml', find)}:{column}: {message} "
    problem += "[deployment_windows]"
    code, out, err = _run("policy", "check", "--env", "production", "--repo", str(example))
    assert code == 2
    assert err.splitlines() == ["error [ConfigInvalid]: invalid policy settings:", f"  {problem}"]
    code, out, _ = _run("validate", "--env", "production", "--repo", str(example))
    assert code == 2
    assert problem in out.splitlines()


def test_an_unknown_policy_rule_is_located_too(example: Path) -> None:
    _edit(example, "gitswarm.yml", "no_root_containers: enforce", "no_root_container: enforce")
    line = _line_of(example, "gitswarm.yml", "no_root_container:")
    code, out, _ = _run("validate", "--env", "development", "--repo", str(example))
    assert code == 2
    [problem] = [p for p in out.splitlines() if p.startswith("gitswarm.yml")]
    assert problem.startswith(
        f"gitswarm.yml:{line}:7: environments.development.policies.no_root_container: unknown "
        "policy rule -- did you mean no_root_containers? (known: "
    )
    assert problem.endswith(", rego) [policy-settings]")


# --- compose: every problem at once, not the first of each file -------------------------


def _add_to_service(repo: Path, service: str, text: str) -> int:
    """Insert ``text`` (one line) after the service's stop_grace_period; its line number."""
    path = repo / BASE
    lines = path.read_text().splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if line == f"  {service}:\n")
    at = next(n for n in range(start, len(lines)) if "stop_grace_period" in lines[n]) + 1
    lines.insert(at, text + "\n")
    path.write_text("".join(lines))
    return at + 1


def test_every_bad_volume_of_every_service_is_reported(example: Path) -> None:
    app = _add_to_service(example, "medianest-app", '    volumes: [":/c", "/a:/b:ro:x"]')
    worker = _add_to_service(
        example,
        "medianest-worker",
        '    volumes: ["./data:/data", "~/x:/y", {type: bind, target: /z}]',
    )
    bind = (
        "is relative to the checkout gitswarm renders from, which does not exist on the "
        "swarm's nodes; use an absolute host path or a named volume [bind-mount-relative]"
    )
    assert _validate(example) == [
        f"{BASE}:{app}:15: services.medianest-app.volumes[0]: invalid spec: :/c: empty "
        "section between colons [compose-value]",
        f"{BASE}:{app}:22: services.medianest-app.volumes[1]: invalid spec: /a:/b:ro:x: too "
        "many colons [compose-value]",
        f"{BASE}:{worker}:15: services.medianest-worker.volumes[0]: bind mount source "
        f"'./data' {bind}",
        f"{BASE}:{worker}:31: services.medianest-worker.volumes[1]: bind mount source '~/x' {bind}",
        f"{BASE}:{worker}:41: services.medianest-worker.volumes[2]: a bind mount needs a "
        "source [compose-value]",
    ]


def test_every_bad_env_file_and_value_is_reported(example: Path) -> None:
    app = _add_to_service(example, "medianest-app", "    env_file: [missing.env, ../../x.env]")
    worker = _add_to_service(
        example, "medianest-worker", "    ulimits: {nofile: x}\n    cap_add: {a: b}"
    )
    assert _validate(example) == [
        f"{BASE}:{worker + 1}:5: services.medianest-worker.cap_add must be a list, not "
        '{"a": "b"} [compose-schema]',
        f"{BASE}:{worker}:15: services.medianest-worker.ulimits.nofile must be an integer or "
        'a mapping, not "x" [compose-schema]',
    ]
    # schema problems stop a file before its values are decoded (as in the Docker CLI);
    # without them, both env_file problems come out together
    _edit(example, BASE, "    ulimits: {nofile: x}\n    cap_add: {a: b}\n", "")
    assert _validate(example) == [
        f"{BASE}:{app}:16: services.medianest-app.env_file[0]: base/missing.env does not "
        "exist [file-missing]",
        f"{BASE}:{app}:29: services.medianest-app.env_file[1]: '../../x.env' leaves the "
        "repository: paths are relative to base/ (the folder of the first compose file) "
        "[path-outside-repo]",
    ]


def test_a_list_merged_over_a_value_is_a_problem_not_a_traceback(example: Path) -> None:
    _add_to_service(example, "medianest-worker", "    x-meta: {owner: ops}")
    overlay = "environments/development/docker-compose.yml"
    _edit(
        example,
        overlay,
        "services:\n",
        "services:\n  medianest-worker:\n    x-meta: {owner: [ops, dev]}\n",
    )
    code, out, err = _run("render", "--env", "development", "--repo", str(example))
    assert code == 2 and not out
    assert err.splitlines() == [
        "error [ValidationFailed]: cannot render medianest in development: 1 problem(s):",
        f"  {overlay}:4:14: services.medianest-worker.x-meta.owner: cannot merge this file's "
        "value over the earlier files' (cannot append two slices with different type: a list "
        "cannot be merged over a value that is not a list) [compose-value]",
    ]


def test_the_reconciler_records_why_gitswarm_yml_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the agent records (history, status, notifications) carries the reason too."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    repo.commit("good")
    repo.write("gitswarm.yml", "- a\n- b\n")
    repo.commit("a list")
    reason = "gitswarm.yml:1:1: must be a mapping of settings, but is a list [config-schema]"
    with Store(str(tmp_path / "state.db")) as store:
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: FakeSwarm())
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert (outcome.result, outcome.reason) == ("Failed", "ConfigInvalid")
        assert reason in outcome.message.splitlines()[-1]
        [operation] = store.history("app", "dev")
        assert reason in operation.message
