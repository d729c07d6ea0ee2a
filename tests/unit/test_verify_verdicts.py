"""Signature verdicts from gpg's status lines and ssh-keygen's output (pure, canned output).

The outputs are what `git verify-commit --raw` printed for real commits (see
tests/integration/test_signed_commits.py for the same cases end to end); the rarer ones
(revoked key, expired signature, unsupported algorithm) are only reachable here.
"""

from __future__ import annotations

import pytest

from gitswarm.errors import SignatureError
from gitswarm.model.config import VerifySettings
from gitswarm.source.verdicts import (
    RULE_BAD,
    RULE_EXPIRED,
    RULE_REVOKED,
    RULE_UNTRUSTED,
    RULE_UNVERIFIABLE,
    SignatureInfo,
    commit_signature,
    judge_gpg,
    judge_ssh,
    settings_in_force,
)

SHA = "13b83c5c068b790da9972fc3b2e5179f31fd872e"
ALICE = "3E0B077E384573A021D0249807B96428F73EA4B7"
TRUSTED = {ALICE: "/etc/gitswarm/alice.asc"}

GOOD_GPG = f"""\
[GNUPG:] NEWSIG alice@example.com
[GNUPG:] KEY_CONSIDERED {ALICE} 0
[GNUPG:] SIG_ID wbNMhr7gsXH2UXjdlS5+dsxvDiw 2026-11-26 1795712913
[GNUPG:] GOODSIG 07B96428F73EA4B7 Alice <alice@example.com>
[GNUPG:] VALIDSIG {ALICE} 2026-11-26 1795712913 0 4 0 22 8 00 {ALICE}
"""


def _rule(exc: pytest.ExceptionInfo[SignatureError]) -> str | None:
    assert exc.value.reason == "SignatureRejected" and exc.value.exit_code == 2
    assert not exc.value.retryable
    (problem,) = exc.value.problems
    return problem.rule


def test_a_good_signature_by_a_trusted_gpg_key_is_accepted() -> None:
    info = judge_gpg(SHA, GOOD_GPG, TRUSTED)
    assert info == SignatureInfo(SHA, "gpg", "Alice <alice@example.com>", ALICE)
    assert info.as_dict()["key"] == ALICE


def test_a_signature_by_a_subkey_counts_for_its_primary_key() -> None:
    subkey = "0123456789ABCDEF0123456789ABCDEF01234567"
    output = GOOD_GPG.replace(f"VALIDSIG {ALICE}", f"VALIDSIG {subkey}")
    assert judge_gpg(SHA, output, TRUSTED).key == ALICE


def test_a_good_signature_by_a_key_outside_the_trusted_set_is_rejected() -> None:
    # Only trusted keys are in the keyring, but the fingerprint is checked all the same.
    with pytest.raises(SignatureError) as exc:
        judge_gpg(SHA, GOOD_GPG, {"F" * 40: "/other.asc"})
    assert _rule(exc) == RULE_UNTRUSTED and ALICE in str(exc.value)


def test_an_unknown_gpg_key_is_untrusted() -> None:
    output = (
        "[GNUPG:] NEWSIG m@example.com\n"
        "[GNUPG:] ERRSIG C163B96E3CA80A9D 22 8 00 1795712927 9 "
        "CCFCFBD87883E277E053FDF9C163B96E3CA80A9D\n"
        "[GNUPG:] NO_PUBKEY C163B96E3CA80A9D\n"
    )
    with pytest.raises(SignatureError) as exc:
        judge_gpg(SHA, output, TRUSTED)
    assert _rule(exc) == RULE_UNTRUSTED
    assert "CCFCFBD87883E277E053FDF9C163B96E3CA80A9D" in str(exc.value)
    assert "verify.keys" in str(exc.value) and str(exc.value).startswith("commit 13b83c5c068b")


def test_an_expired_gpg_key_is_rejected_even_though_the_signature_is_valid() -> None:
    old = "872FC9CE6A415C5177976FFBEE2D8E8A20A2DE24"
    output = (
        f"[GNUPG:] KEYEXPIRED 1577923200\n"
        f"[GNUPG:] EXPKEYSIG EE2D8E8A20A2DE24 Old <old@example.com>\n"
        f"[GNUPG:] VALIDSIG {old} 2020-01-01 1577840400 0 4 0 22 8 00 {old}\n"
    )
    with pytest.raises(SignatureError) as exc:
        judge_gpg(SHA, output, {old: "/old.asc"})
    assert _rule(exc) == RULE_EXPIRED
    assert "Old <old@example.com>" in str(exc.value) and "--quick-set-expire" in str(exc.value)


@pytest.mark.parametrize(
    ("status", "rule", "words"),
    [
        ("BADSIG 07B96428F73EA4B7 Alice <alice@example.com>", RULE_BAD, "changed after"),
        ("REVKEYSIG 07B96428F73EA4B7 Alice <alice@example.com>", RULE_REVOKED, "revoked"),
        ("EXPSIG 07B96428F73EA4B7 Alice <alice@example.com>", RULE_EXPIRED, "signature"),
        ("ERRSIG 07B96428F73EA4B7 99 8 00 1795712913 4 -", RULE_UNVERIFIABLE, "error code 4"),
    ],
)
def test_other_gpg_verdicts(status: str, rule: str, words: str) -> None:
    with pytest.raises(SignatureError) as exc:
        judge_gpg(SHA, f"[GNUPG:] NEWSIG\n[GNUPG:] {status}\n", TRUSTED)
    assert _rule(exc) == rule and words in str(exc.value)


def test_a_bad_signature_wins_over_a_good_one() -> None:
    output = GOOD_GPG + "[GNUPG:] BADSIG 07B96428F73EA4B7 Alice <alice@example.com>\n"
    with pytest.raises(SignatureError) as exc:
        judge_gpg(SHA, output, TRUSTED)
    assert _rule(exc) == RULE_BAD


def test_no_gpg_verdict_at_all_is_unverifiable_and_says_what_git_said() -> None:
    with pytest.raises(SignatureError) as exc:
        judge_gpg(SHA, "error: cannot run gpg: No such file or directory\n", TRUSTED)
    assert _rule(exc) == RULE_UNVERIFIABLE and "cannot run gpg" in str(exc.value)


def test_gpg_escapes_in_user_ids_are_decoded() -> None:
    output = GOOD_GPG.replace("Alice <alice", "Al%25ice <alice")
    assert judge_gpg(SHA, output, TRUSTED).signer == "Al%ice <alice@example.com>"


KEY = "SHA256:BMbD7lPP3ote4wzIWkYtH1+F/AbyesmW8xNQYvO/m8E"


def test_a_good_ssh_signature_names_the_principal_and_key() -> None:
    output = f'Good "git" signature for bob@example.com with ED25519 key {KEY}\n'
    assert judge_ssh(SHA, output, 0) == SignatureInfo(SHA, "ssh", "bob@example.com", KEY)


def test_a_good_ssh_verdict_counts_only_with_git_s_exit_status() -> None:
    output = f'Good "git" signature for bob@example.com with ED25519 key {KEY}\n'
    with pytest.raises(SignatureError) as exc:
        judge_ssh(SHA, output, 1)
    assert _rule(exc) == RULE_UNVERIFIABLE


@pytest.mark.parametrize(
    ("output", "rule", "words"),
    [
        (
            f'Good "git" signature with ED25519 key {KEY}\nNo principal matched.\n',
            RULE_UNTRUSTED,
            KEY,
        ),
        (
            "/etc/gitswarm/allowed_signers:1: key has expired: verify time "
            "2026-11-26T17:08:33 > valid-before 2020-01-01T00:00:00\n"
            f'Good "git" signature with ED25519 key {KEY}\nNo principal matched.\n',
            RULE_EXPIRED,
            "valid-before 2020-01-01",
        ),
        (
            "Could not verify signature.\nSignature verification failed: incorrect signature\n",
            RULE_BAD,
            "changed after",
        ),
        ("Signature key is revoked\n", RULE_REVOKED, "revoked"),
        ("fatal: something else\n", RULE_UNVERIFIABLE, "something else"),
    ],
)
def test_other_ssh_verdicts(output: str, rule: str, words: str) -> None:
    with pytest.raises(SignatureError) as exc:
        judge_ssh(SHA, output, 1)
    assert _rule(exc) == rule and words in str(exc.value)


SIGNED = """\
tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904
parent a939c23ec15ed0857d14018f58e94abeba5bee04
author a <a@a> 1795712913 +0000
committer a <a@a> 1795712913 +0000
gpgsig -----BEGIN SSH SIGNATURE-----
 U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgs0KgU5PlQjfn1AmdWeavXDMqMy
 -----END SSH SIGNATURE-----

gpgsig in the message is not a signature
"""


def test_the_signature_is_read_from_the_commit_header_only() -> None:
    assert commit_signature(SIGNED) == (
        "-----BEGIN SSH SIGNATURE-----\n"
        "U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgs0KgU5PlQjfn1AmdWeavXDMqMy\n"
        "-----END SSH SIGNATURE-----"
    )
    unsigned = "tree 4b82\nauthor a <a@a> 1 +0000\n\ngpgsig -----BEGIN PGP SIGNATURE-----\n"
    assert commit_signature(unsigned) is None
    # A SHA-256 repository signs in gpgsig-sha256 (gpgsig is then the SHA-1 compat one).
    assert commit_signature(SIGNED, sha256=True) is None
    assert commit_signature(SIGNED.replace("gpgsig ", "gpgsig-sha256 "), sha256=True)


def test_a_commit_cannot_lower_the_settings_it_is_verified_with() -> None:
    trusted = VerifySettings(mode="gpg", keys=("/etc/gitswarm/release.asc",))
    attacker = VerifySettings(mode="ssh", keys=("/tmp/mine.pub",))
    assert settings_in_force(trusted, None) is trusted  # dropping verify: does not help
    assert settings_in_force(trusted, attacker) is trusted  # nor listing another key
    assert settings_in_force(None, attacker) is attacker  # turning it on: checked at once
    assert settings_in_force(None, None) is None
