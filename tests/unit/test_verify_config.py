"""gitswarm.yml `verify:`: the shape of signed-commit settings, every problem at file:line."""

from __future__ import annotations

import pytest

from gitswarm.errors import ConfigError
from gitswarm.model.config import VerifySettings
from gitswarm.repo import load_config
from tests.unit.test_render_trees import MemoryTree

GOOD = """\
project: shop
environments:
  dev: {}
  staging:
    verify:
      mode: ssh
      allowed_signers: /etc/gitswarm/allowed_signers
      keys: [~/.config/gitswarm/keys/ci.pub]
  prod:
    verify:
      mode: gpg
      keys:
        - /etc/gitswarm/trusted/release.asc
        - signers/alice.asc
application: {name: web}
"""


def _problems(verify: str, files: dict[str, str] | None = None) -> list[str]:
    text = f"project: shop\nenvironments:\n  prod:\n    verify:\n{verify}application: {{}}\n"
    with pytest.raises(ConfigError) as info:
        load_config(MemoryTree({"gitswarm.yml": text, **(files or {})}))
    assert info.value.reason == "ConfigInvalid" and info.value.exit_code == 2
    return [str(p) for p in info.value.problems]


def test_verify_settings_are_parsed_per_environment() -> None:
    config = load_config(MemoryTree({"gitswarm.yml": GOOD}))
    assert config.environment("dev").verify is None
    assert config.environment("staging").verify == VerifySettings(
        mode="ssh",
        keys=("~/.config/gitswarm/keys/ci.pub",),
        allowed_signers="/etc/gitswarm/allowed_signers",
    )
    assert config.environment("prod").verify == VerifySettings(
        mode="gpg", keys=("/etc/gitswarm/trusted/release.asc", "signers/alice.asc")
    )


def test_an_unknown_mode_is_named_with_its_line() -> None:
    (problem,) = _problems("      mode: x509\n      keys: [/k.asc]\n")
    assert problem.startswith("gitswarm.yml:5:")
    assert "must be one of 'gpg', 'ssh', not 'x509'" in problem


def test_mode_is_required_and_unknown_keys_are_refused() -> None:
    problems = _problems("      keyring: /k.asc\n")
    assert any("gitswarm.yml:4:" in p and "'mode' is a required property" in p for p in problems)
    assert any("gitswarm.yml:5:" in p and "unknown key 'keyring'" in p for p in problems)


def test_a_verify_that_trusts_no_key_is_refused() -> None:
    (problem,) = _problems("      mode: gpg\n      keys: []\n")
    assert problem.startswith("gitswarm.yml:6:")
    assert "trusts no key" in problem and "[verify-keys]" in problem
    (problem,) = _problems("      mode: ssh\n")
    assert problem.startswith("gitswarm.yml:4:") and "allowed_signers:" in problem


def test_allowed_signers_belongs_to_ssh() -> None:
    (problem,) = _problems("      mode: gpg\n      keys: [/k.asc]\n      allowed_signers: /s\n")
    assert problem.startswith("gitswarm.yml:7:")
    assert "allowed_signers is for mode: ssh" in problem


def test_key_text_in_gitswarm_yml_is_refused() -> None:
    problems = _problems(
        "      mode: ssh\n"
        "      keys:\n"
        "        - /etc/gitswarm/ok.pub\n"
        "        - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0 alice\n"
        "        - |\n"
        "          -----BEGIN PGP PUBLIC KEY BLOCK-----\n"
        "          mDMEZ...\n"
    )
    assert len(problems) == 2
    assert problems[0].startswith("gitswarm.yml:8:")
    assert problems[1].startswith("gitswarm.yml:9:")
    for problem in problems:
        assert "key text is not accepted in gitswarm.yml" in problem
        assert "whoever can push" in problem and "[verify-keys]" in problem


def test_a_key_file_inside_the_repository_is_refused() -> None:
    problems = _problems(
        "      mode: gpg\n      keys: [keys/alice.asc]\n",
        files={"keys/alice.asc": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n"},
    )
    (problem,) = problems
    assert problem.startswith("gitswarm.yml:6:")
    assert "is a file of this repository" in problem and "never trusted" in problem


def test_a_relative_key_path_may_not_climb_out_of_the_keys_directory() -> None:
    (problem,) = _problems("      mode: ssh\n      allowed_signers: ../../etc/signers\n")
    assert problem.startswith("gitswarm.yml:6:") and "'..'" in problem
