"""Key operations on stored data: which keys are used, re-encryption under the active key
(rotation), and proof that every stored credential decrypts."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, or_, update
from sqlmodel import select

from lib import audit
from lib.access import Permission, Principal, require
from lib.connections import FIELD_LABELS
from lib.errors import CredentialUnreadable
from lib.store.db import exclusive, read_session, write_session
from lib.store.keyring import credential_binding
from lib.store.models import Connection, KeyCheck
from lib.store.vault import Vault, envelope_kid

# --- Status, rotation, verification --------------------------------------------------------


@dataclass(frozen=True)
class KeyStatus:
    kid: str
    in_keyring: bool
    active: bool
    values: int  # encrypted values (two per connection) using this kid


def key_status(engine: Engine, vault: Vault) -> list[KeyStatus]:
    counts: Counter[str] = Counter()
    with read_session(engine) as session:
        for id_enc, secret_enc in session.exec(
            select(Connection.client_id_enc, Connection.client_secret_enc)
        ).all():
            for value in (id_enc, secret_enc):
                try:
                    counts[envelope_kid(value)] += 1
                except CredentialUnreadable:
                    counts["(unreadable)"] += 1
        known = set(session.exec(select(KeyCheck.kid)).all())
    kids = sorted(set(vault.keyring.keys) | set(counts) | known)
    return [
        KeyStatus(kid, kid in vault.keyring.keys, kid == vault.active_kid, counts.get(kid, 0))
        for kid in kids
    ]


def _stale_rows(engine: Engine, active: str, batch: int) -> list[tuple[uuid.UUID, str, str]]:
    prefix = f"v1.{active}.%"
    with read_session(engine) as session:
        return list(
            session.exec(
                select(Connection.id, Connection.client_id_enc, Connection.client_secret_enc)
                .where(
                    or_(
                        Connection.client_id_enc.not_like(prefix),
                        Connection.client_secret_enc.not_like(prefix),
                    )
                )
                .limit(batch)
            ).all()
        )


@dataclass
class RotationReport:
    rotated: int = 0
    retried: int = 0  # rows changed by somebody else mid-rotation, re-read and done again


def _reencrypt(vault: Vault, row_id: uuid.UUID, column: str, envelope: str) -> str:
    if envelope_kid(envelope) == vault.active_kid:
        return envelope
    binding = credential_binding(row_id, column)
    return vault.encrypt(vault.decrypt(envelope, binding), binding)


def rotate(engine: Engine, vault: Vault, *, actor: Principal, batch: int = 100,
           progress: Callable[[int], None] | None = None) -> RotationReport:
    """Re-encrypt every credential not under the active key, one row per transaction.

    Each row is written with compare-and-swap on both ciphertexts, so an edit made meanwhile
    is never overwritten (the row is re-read instead). Killing it at any point loses nothing:
    a row is either wholly old or wholly new, and a rerun carries on where it stopped.
    """
    require(actor, Permission.MANAGE_KEYS, recent_proof=True)
    with exclusive(engine, "keys"):  # a second rotation started meanwhile waits, then finds nothing to do
        report = _rotate_rows(engine, vault, batch, progress)
    audit.record_now(engine, actor, "keys.rotate", vault.active_kid, audit.OK,
                     f"{report.rotated} rotated, {report.retried} redone after concurrent edits")
    return report


def _rotate_rows(engine: Engine, vault: Vault, batch: int, progress: Callable[[int], None] | None) -> RotationReport:
    report = RotationReport()
    while rows := _stale_rows(engine, vault.active_kid, batch):
        for row_id, id_enc, secret_enc in rows:
            new_id = _reencrypt(vault, row_id, "client_id_enc", id_enc)
            new_secret = _reencrypt(vault, row_id, "client_secret_enc", secret_enc)
            with write_session(engine) as session:
                result = session.exec(  # type: ignore[call-overload]
                    update(Connection)
                    .where(
                        Connection.id == row_id,
                        Connection.client_id_enc == id_enc,
                        Connection.client_secret_enc == secret_enc,
                    )
                    .values(client_id_enc=new_id, client_secret_enc=new_secret)
                )
            if result.rowcount == 1:
                report.rotated += 1
                if progress:
                    progress(report.rotated)
            else:
                report.retried += 1
    return report


@dataclass(frozen=True)
class ReadabilityReport:
    values_per_kid: dict[str, int]
    unreadable: list[tuple[str, str, str]]  # (connection name, which credential, reason)

    @property
    def ok(self) -> bool:
        return not self.unreadable


def _all_values(engine: Engine) -> Iterator[tuple[uuid.UUID, str, str, str]]:
    with read_session(engine) as session:
        for row_id, name, id_enc, secret_enc in session.exec(
            select(Connection.id, Connection.name, Connection.client_id_enc, Connection.client_secret_enc)
        ).all():
            yield row_id, name, "client_id", id_enc
            yield row_id, name, "client_secret", secret_enc


def prove_readable(engine: Engine, vault: Vault) -> ReadabilityReport:
    """Decrypt every stored credential; report values per kid and every one that fails."""
    counts: Counter[str] = Counter()
    unreadable: list[tuple[str, str, str]] = []
    for row_id, name, field, envelope in _all_values(engine):
        try:
            counts[envelope_kid(envelope)] += 1
            vault.decrypt(envelope, credential_binding(row_id, f"{field}_enc"))
        except CredentialUnreadable as exc:
            unreadable.append((name, FIELD_LABELS[field], str(exc)))
    return ReadabilityReport(dict(counts), unreadable)
