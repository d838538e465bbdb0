"""Typed errors shared by the console and the CLI.

Every message here is written for a person: it names what is wrong and what to do.
None of them ever carries a secret, a token or key material.
"""

from __future__ import annotations

from dataclasses import dataclass


class SwitchboardError(Exception):
    """Base of every error Switchboard reports to a person."""


class ConfigError(SwitchboardError):
    """An environment variable or file has a value Switchboard cannot use."""


class KeyringError(SwitchboardError):
    """The keyring is missing, malformed, or does not match the stored data (fail closed)."""


class CredentialUnreadable(SwitchboardError):
    """A stored credential could not be decrypted: wrong/missing key, tampering, or a moved value.

    Carries only the row id and the kid, never key material or ciphertext.
    """

    def __init__(
        self,
        message: str = "A stored credential could not be decrypted.",
        *,
        row_id: str | None = None,
        kid: str | None = None,
    ) -> None:
        super().__init__(message)
        self.row_id = row_id
        self.kid = kid


@dataclass(frozen=True)
class FieldError:
    """One refused input: ``field`` is its key (for code: which widget, which option), ``label``
    what people call it (the form's label), ``message`` what is wrong and the fix."""

    field: str
    label: str
    message: str


class ValidationError(SwitchboardError):
    """Input was refused; ``errors`` names each field and the fix. Nothing was saved.

    Its text names fields by their labels, never by their keys."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__(" ".join(f"{e.label}: {e.message}" for e in errors))


class ConflictError(SwitchboardError):
    """Somebody else changed the same record first; nothing was overwritten."""


class NotFoundError(SwitchboardError):
    """The named record does not exist."""


class DatabaseNotReady(SwitchboardError):
    """The database schema is not at the revision this code expects."""
