"""Verdicts on commit signatures (pure): what ``git verify-commit`` printed, in; who
signed, or a SignatureError with a stable rule, out.

source/verify.py runs the tools (gpg, ssh-keygen, through git) against the keyrings it
builds and hands their output here; unit tests (tests/unit/test_verify_verdicts.py) feed
recorded output. Also here: which verify settings decide (``settings_in_force``) and how
a raw commit object carries its signature (``commit_signature``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gitswarm.errors import Problem, Reason, SignatureError
from gitswarm.model.config import VerifySettings

Mode = Literal["gpg", "ssh"]

REASON_SETUP = Reason.SIGNATURE_SETUP_FAILED
RULE_UNSIGNED = "signature-unsigned"
RULE_WRONG_MODE = "signature-wrong-mode"
RULE_UNTRUSTED = "signature-untrusted-key"
RULE_BAD = "signature-bad"
RULE_EXPIRED = "signature-expired"
RULE_REVOKED = "signature-revoked-key"
RULE_UNVERIFIABLE = "signature-unverifiable"


_SSH_GOOD = re.compile(
    r'^Good "git" signature for (?P<principal>.+) with (?P<algo>\S+) key (?P<key>SHA256:\S+)\s*$',
    re.MULTILINE,
)
_SSH_UNMATCHED = re.compile(r'^Good "git" signature with \S+ key (?P<key>SHA256:\S+)', re.MULTILINE)
_SIGNATURE_FORMATS = {
    "-----BEGIN PGP SIGNATURE-----": "gpg",
    "-----BEGIN SSH SIGNATURE-----": "ssh",
    "-----BEGIN SIGNED MESSAGE-----": "x509",
}
FORMAT_NAMES = {"gpg": "GPG", "ssh": "SSH", "x509": "X.509 (gpgsm)"}


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """Who signed an accepted commit."""

    commit: str
    mode: Mode
    signer: str  # gpg: the user id gpg reports; ssh: the principal of the allowed signer
    key: str  # gpg: the primary key's fingerprint; ssh: the key's SHA256:... fingerprint

    def as_dict(self) -> dict[str, str]:
        return {"commit": self.commit, "mode": self.mode, "signer": self.signer, "key": self.key}


def settings_in_force(
    trusted: VerifySettings | None,
    candidate: VerifySettings | None,
    pinned: VerifySettings | None = None,
) -> VerifySettings | None:
    """The verify settings that decide whether a new revision may be deployed.

    ``pinned``: the environment's settings in the agent's own configuration (``verify:``
    in ``gitswarm serve --config``); when given they always decide, and nothing in Git can
    weaken them — like Flux, whose trusted keys live in the cluster, not in the repository.
    ``trusted``: the environment's settings at the last revision the agent verified and
    deployed; ``candidate``: those of the new revision. While verification is on, the
    trusted revision's settings decide, so turning it off or changing keys takes a commit
    signed by a key that is already trusted (like TUF's root rotation). When the trusted
    revision does not verify, or there is none yet, the candidate's own settings apply:
    the commit that turns verification on must already be signed. (Before the first
    deploy nothing in Git can be trusted: pin the settings in the agent's configuration
    if that first commit matters.)
    """
    if pinned is not None:
        return pinned
    return trusted if trusted is not None else candidate


def commit_signature(commit: str, *, sha256: bool = False) -> str | None:
    """The signature in a raw commit object's header (``gpgsig``, or ``gpgsig-sha256`` in a
    SHA-256 repository), or None."""
    wanted = "gpgsig-sha256" if sha256 else "gpgsig"
    header = commit.split("\n\n", 1)[0]
    value: list[str] | None = None
    for line in header.split("\n"):
        if value is not None:
            if line.startswith(" "):
                value.append(line[1:])
                continue
            break
        name, _, rest = line.partition(" ")
        if name == wanted:
            value = [rest]
    return "\n".join(value) if value is not None else None


def signature_format(signature: str) -> str:
    return _SIGNATURE_FORMATS.get(signature.strip().split("\n", 1)[0].strip(), "unknown")


# --- verdicts (pure: output in, SignatureInfo or SignatureError out) --------------------


def judge_gpg(commit: str, output: str, trusted: Mapping[str, str]) -> SignatureInfo:
    """The verdict on gpg's ``--status-fd`` lines (as ``git verify-commit --raw`` prints
    them) for a commit that must be signed by a key whose primary fingerprint is in
    ``trusted``."""
    status: dict[str, list[str]] = {}
    for line in output.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, _, rest = line[9:].partition(" ")
            status.setdefault(keyword, rest.split(" "))
    short = commit[:12]

    def who(keyword: str) -> str:
        args = status[keyword]
        return f"{_unescape(' '.join(args[1:])) or 'unknown'} (key {args[0]})"

    if "BADSIG" in status:
        raise rejected(
            RULE_BAD,
            f"commit {short} has a bad signature claiming to be from {who('BADSIG')}: the "
            "commit was changed after it was signed, or the signature is damaged. Do not "
            "deploy it; find out who pushed it, and push a correctly signed commit",
        )
    if "REVKEYSIG" in status:
        raise rejected(
            RULE_REVOKED,
            f"commit {short} is signed by {who('REVKEYSIG')}, whose key has been revoked; "
            "re-sign it with a current trusted key",
        )
    if "EXPKEYSIG" in status:
        raise rejected(
            RULE_EXPIRED,
            f"commit {short} is signed by {who('EXPKEYSIG')}, whose key has expired; extend "
            "the key (gpg --quick-set-expire FINGERPRINT 1y) and export it again into the "
            "trusted key file on the agent's host, or re-sign the commit with a current "
            "trusted key",
        )
    if "EXPSIG" in status:
        raise rejected(
            RULE_EXPIRED,
            f"commit {short} carries a signature by {who('EXPSIG')} that has expired; "
            "re-sign it (git commit --amend -S --no-edit) and push again",
        )
    if "ERRSIG" in status:
        args = status["ERRSIG"]
        key = args[6] if len(args) > 6 and args[6] != "-" else args[0]
        if "NO_PUBKEY" in status or (len(args) > 5 and args[5] == "9"):
            raise rejected(
                RULE_UNTRUSTED,
                f"commit {short} is signed by key {key}, which is not one of the trusted keys "
                "(verify.keys); sign it with a trusted key, or, if this signer is to be "
                "trusted, put their public key in a file on the agent's host and list it "
                "under verify.keys",
            )
        raise rejected(
            RULE_UNVERIFIABLE,
            f"commit {short}: gpg cannot check the signature by key {key} (error code "
            f"{args[5] if len(args) > 5 else '?'}: unsupported algorithm?); re-sign it with "
            "a trusted key",
        )
    if "GOODSIG" in status and "VALIDSIG" in status:
        valid = status["VALIDSIG"]
        primary = (valid[9] if len(valid) > 9 else valid[0]).upper()
        if primary in trusted:
            return SignatureInfo(commit, "gpg", _unescape(" ".join(status["GOODSIG"][1:])), primary)
        raise rejected(
            RULE_UNTRUSTED,
            f"commit {short} is signed by {who('GOODSIG')}, primary key {primary}, which is "
            "not one of the trusted keys (verify.keys); sign it with a trusted key",
        )
    raise rejected(
        RULE_UNVERIFIABLE,
        f"commit {short}: the GPG signature could not be verified"
        f"{_detail(output)}; re-sign it with a trusted key",
    )


def judge_ssh(commit: str, output: str, returncode: int) -> SignatureInfo:
    """The verdict on ssh-keygen's output (as ``git verify-commit --raw`` prints it)."""
    short = commit[:12]
    good = _SSH_GOOD.search(output)
    if returncode == 0 and good is not None:
        return SignatureInfo(commit, "ssh", good["principal"], good["key"])
    if "key has expired" in output or "not yet valid" in output:
        raise rejected(
            RULE_EXPIRED,
            f"commit {short} is signed by a key that was not valid at the commit's time "
            f"(valid-after/valid-before in the allowed signers){_detail(output)}; re-sign it "
            "with a currently valid trusted key, or extend the key's validity on the agent's "
            "host",
        )
    if "incorrect signature" in output or "Signature verification failed" in output:
        raise rejected(
            RULE_BAD,
            f"commit {short} has a bad SSH signature: the commit was changed after it was "
            "signed, or the signature is damaged. Do not deploy it; find out who pushed it, "
            "and push a correctly signed commit",
        )
    if "revoked" in output.lower():
        raise rejected(
            RULE_REVOKED,
            f"commit {short} is signed by a revoked SSH key{_detail(output)}; re-sign it with "
            "a current trusted key",
        )
    if "No principal matched" in output:
        unmatched = _SSH_UNMATCHED.search(output)
        key = unmatched["key"] if unmatched else "an unknown key"
        raise rejected(
            RULE_UNTRUSTED,
            f"commit {short} is signed by SSH key {key}, which is not one of the trusted keys "
            "(verify.keys / verify.allowed_signers); sign it with a trusted key, or, if this "
            "signer is to be trusted, add their public key on the agent's host",
        )
    raise rejected(
        RULE_UNVERIFIABLE,
        f"commit {short}: the SSH signature could not be verified{_detail(output)}; re-sign "
        "it with a trusted key",
    )


# --- helpers ----------------------------------------------------------------------------


def rejected(rule: str, message: str) -> SignatureError:
    return SignatureError(message, problems=[Problem(message, rule=rule)])


def setup_failed(message: str) -> SignatureError:
    return SignatureError(message, reason=REASON_SETUP)


def _unescape(text: str) -> str:
    """gpg's status lines write some bytes as %XX."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().removeprefix("gpg: ")
        if line:
            return line
    return ""


def _detail(output: str) -> str:
    lines = [
        line.strip()
        for line in output.splitlines()
        if line.strip() and not line.startswith("[GNUPG:]")
    ]
    return f" ({'; '.join(lines[:3])})" if lines else ""
