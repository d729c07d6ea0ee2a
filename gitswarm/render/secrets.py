"""age encryption of secret files, in memory only (pure: pyrage does no I/O).

Secrets live in Git as ``*.age`` files encrypted to an environment's recipients. They are
decrypted here into ``bytes`` that never leave the process: render/ hashes them for the
object name and swarm/ hands them to the Docker API.
"""

from __future__ import annotations

import hashlib
import hmac

import pyrage

from gitswarm.errors import Reason, SecretError

# The text of age's DecryptError::NoMatchingKeys as pyrage passes it on.
NO_MATCHING_KEYS = "No matching keys found"


class Identity:
    """An age identity (private key). ``repr`` never shows the key."""

    __slots__ = ("_identity", "recipient")

    def __init__(self, text: str, *, source: str = "identity") -> None:
        lines = [ln.strip() for ln in text.splitlines()]
        keys = [ln for ln in lines if ln.startswith("AGE-SECRET-KEY-")]
        if len(keys) != 1:
            raise SecretError(
                f"{source}: expected exactly one AGE-SECRET-KEY line, found {len(keys)}; "
                "create one with `gitswarm secret keygen`"
            )
        try:
            self._identity = pyrage.x25519.Identity.from_str(keys[0])
        except Exception as exc:  # pyrage raises its own untyped errors
            raise SecretError(f"{source}: not a valid age identity") from exc
        self.recipient: str = str(self._identity.to_public())

    @classmethod
    def generate(cls) -> Identity:
        return cls(str(pyrage.x25519.Identity.generate()))

    def key_file_text(self, created: str) -> str:
        """The text of an age key file (the format `age-keygen` writes)."""
        return f"# created: {created}\n# public key: {self.recipient}\n{self._identity}\n"

    def decrypt(
        self, data: bytes, *, source: str, encrypt: str = "gitswarm secret encrypt"
    ) -> bytes:
        """The plaintext of an age file. A SecretError says which of the two failures it
        is: the file is not for this identity, or it is not a whole age file at all
        (truncated, corrupted, edited). ``encrypt`` is the command that makes a new one."""
        try:
            return bytes(pyrage.decrypt(data, [self._identity]))
        except pyrage.DecryptError as exc:
            # pyrage has one exception class; age's NoMatchingKeys is the only error that
            # means "a sound file for other recipients" -- every other one (I/O "failed to
            # fill whole buffer", "decryption error", invalid header or MAC) a broken file
            if str(exc) == NO_MATCHING_KEYS:
                raise SecretError(
                    f"{source} is encrypted to other keys, not to the identity of this "
                    f"environment (public key {self.recipient}); encrypt it again for this "
                    f"environment with `{encrypt}`",
                    reason=Reason.SECRET_DECRYPT_FAILED,
                ) from None
            raise SecretError(
                f"{source} is not a complete age file (truncated or corrupted: {exc}); "
                f"encrypt the value again with `{encrypt}`",
                reason=Reason.SECRET_DECRYPT_FAILED,
            ) from None

    def name_key(self) -> bytes:
        """A key for naming secrets: derived from the identity, never the identity itself."""
        return hashlib.sha256(b"gitswarm-secret-name\0" + str(self._identity).encode()).digest()

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient!r})"


def encrypt(plaintext: bytes, recipients: list[str], *, source: str = "recipients") -> bytes:
    try:
        parsed = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception as exc:
        raise SecretError(f"{source}: invalid age recipient in {recipients!r}") from exc
    if not parsed:
        raise SecretError(f"{source}: no recipients to encrypt to")
    return bytes(pyrage.encrypt(plaintext, parsed))


def keyed_digest(key: bytes, value: bytes) -> str:
    """A name-safe digest of a secret value that reveals nothing without the key."""
    return hmac.new(key, value, hashlib.sha256).hexdigest()
