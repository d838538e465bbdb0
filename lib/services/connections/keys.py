"""Key operations on stored data: which keys are used, re-encryption under the active key
(rotation), and proof that every stored value decrypts and which keys it needs.

Every one of them covers every encrypted column (lib.store.keyring.ENCRYPTED_COLUMNS):
connections' credentials and alert channels' URLs and secrets alike.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlmodel import col

from lib.kernel.errors import CredentialUnreadable
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.store.db import exclusive, read_session, write_session
from lib.store.keyring import ENCRYPTED_COLUMNS, EncryptedColumn, encrypted_tables
from lib.store.models import KeyCheck
from lib.store.vault import Vault, envelope_kid

NOT_AN_ENVELOPE = "(unreadable)"  # the "kid" of a stored value that is not an envelope at all


def _stored(engine: Engine) -> Iterator[tuple[EncryptedColumn, uuid.UUID, str, str]]:
    """Every stored value of every encrypted column: column, row id, row name, envelope."""
    for column in ENCRYPTED_COLUMNS:
        model: Any = column.model
        with read_session(engine) as session:
            rows = (
                session.connection()
                .execute(select(model.id, model.name, column.attribute()).where(column.attribute().is_not(None)))
                .all()
            )
        for row_id, name, envelope in rows:
            yield column, row_id, name, envelope


def _in_registry_order(uses: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple((c.name, uses[c.name]) for c in ENCRYPTED_COLUMNS if uses[c.name])


def _described(uses: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {n}" for name, n in uses)


# --- Status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyStatus:
    kid: str
    in_keyring: bool
    active: bool
    uses: tuple[tuple[str, int], ...]  # ("table.column", encrypted values under this kid)

    @property
    def values(self) -> int:
        return sum(n for _, n in self.uses)

    def where(self) -> str:
        return _described(self.uses)


def key_status(engine: Engine, vault: Vault) -> list[KeyStatus]:
    """Every kid the keyring, the stored values or the canaries name, with what uses it."""
    uses: dict[str, Counter[str]] = {}
    for column, _, _, envelope in _stored(engine):
        try:
            kid = envelope_kid(envelope)
        except CredentialUnreadable:
            kid = NOT_AN_ENVELOPE
        uses.setdefault(kid, Counter())[column.name] += 1
    with read_session(engine) as session:
        known = set(session.scalars(select(col(KeyCheck.kid))).all())
    kids = sorted(set(vault.keyring.keys) | set(uses) | known)
    return [
        KeyStatus(kid, kid in vault.keyring.keys, kid == vault.active_kid, _in_registry_order(uses.get(kid, Counter())))
        for kid in kids
    ]


# --- Rotation -------------------------------------------------------------------------------


@dataclass
class RotationReport:
    rotated: int = 0  # rows re-encrypted (all of a row's values at once)
    retried: int = 0  # rows changed by somebody else mid-rotation, re-read and done again
    per_owner: Counter[str] = field(default_factory=Counter)  # rows rotated per kind ("connection")
    unreadable: int = 0  # rows with a value that does not decrypt, left as they are (verify names them)


def _reencrypt(vault: Vault, column: EncryptedColumn, row_id: uuid.UUID, envelope: str | None) -> str | None:
    if envelope is None or envelope_kid(envelope) == vault.active_kid:
        return envelope
    binding = column.binding(row_id)
    return vault.encrypt(vault.decrypt(envelope, binding), binding)


def _matches(column: EncryptedColumn, value: str | None) -> Any:
    return column.attribute().is_(None) if value is None else column.attribute() == value


def _stale_rows(
    engine: Engine, model: Any, columns: tuple[EncryptedColumn, ...], active: str, after: uuid.UUID | None, batch: int
) -> list[Any]:
    """Rows after ``after`` (in id order) with a value not under the active key."""
    prefix = f"v1.{active}.%"
    query = select(model.id, *(c.attribute() for c in columns)).where(
        or_(*(c.attribute().not_like(prefix) for c in columns))
    )
    if after is not None:
        query = query.where(model.id > after)
    with read_session(engine) as session:
        return list(session.connection().execute(query.order_by(model.id).limit(batch)).all())


def _reread(
    engine: Engine, model: Any, columns: tuple[EncryptedColumn, ...], row_id: uuid.UUID
) -> tuple[str | None, ...] | None:
    with read_session(engine) as session:
        row = session.connection().execute(select(*(c.attribute() for c in columns)).where(model.id == row_id)).first()
    return None if row is None else tuple(row)


def _rotate_row(
    engine: Engine,
    vault: Vault,
    model: Any,
    columns: tuple[EncryptedColumn, ...],
    row_id: uuid.UUID,
    values: tuple[str | None, ...],
    report: RotationReport,
) -> None:
    """Re-encrypt one row's values in one transaction, compare-and-swap on all of them: an
    edit made meanwhile is never overwritten; the row is re-read and done again instead."""
    current: tuple[str | None, ...] | None = values
    while current is not None:
        try:
            fresh = tuple(_reencrypt(vault, c, row_id, v) for c, v in zip(columns, current, strict=True))
        except CredentialUnreadable:
            report.unreadable += 1
            return
        if fresh == current:
            return  # nothing left on another key (an edit did it)
        with write_session(engine) as session:
            result = session.connection().execute(
                update(model)
                .where(model.id == row_id, *(_matches(c, v) for c, v in zip(columns, current, strict=True)))
                .values({c.column: v for c, v in zip(columns, fresh, strict=True)})
            )
        if result.rowcount == 1:
            report.rotated += 1
            report.per_owner[columns[0].owner] += 1
            return
        report.retried += 1
        current = _reread(engine, model, columns, row_id)  # None: deleted meanwhile


def rotate(
    engine: Engine, vault: Vault, *, actor: Principal, batch: int = 100, progress: Callable[[int], None] | None = None
) -> RotationReport:
    """Re-encrypt every stored value not under the active key, one row per transaction.

    Killing it at any point loses nothing: a row is either wholly old or wholly new, and a
    rerun carries on where it stopped. A value that cannot be read is left as it is and
    reported; it stops nothing else.
    """
    require(actor, Permission.MANAGE_KEYS, recent_proof=True)
    with exclusive(engine, "keys"):  # a second rotation started meanwhile waits, then finds nothing to do
        report = RotationReport()
        for model, columns in encrypted_tables().items():
            after: uuid.UUID | None = None
            while rows := _stale_rows(engine, model, columns, vault.active_kid, after, batch):
                for row_id, *values in rows:
                    after = row_id
                    _rotate_row(engine, vault, model, columns, row_id, tuple(values), report)
                    if progress:
                        progress(report.rotated)
    audit.record_now(
        engine,
        actor,
        "keys.rotate",
        vault.active_kid,
        audit.FAILED if report.unreadable else audit.OK,
        f"{report.rotated} rotated, {report.retried} redone after concurrent edits"
        + (f", {report.unreadable} unreadable left as they were" if report.unreadable else ""),
    )
    return report


# --- Verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Unreadable:
    column: EncryptedColumn
    row_name: str
    reason: str

    def describe(self) -> str:
        return f"the {self.column.label} of {self.column.owner} '{self.row_name}' ({self.column.name}): {self.reason}"


@dataclass(frozen=True)
class ReadabilityReport:
    active: str
    uses: dict[str, tuple[tuple[str, int], ...]]  # kid -> ("table.column", values under it)
    unreadable: list[Unreadable]

    @property
    def values_per_kid(self) -> dict[str, int]:
        return {kid: sum(n for _, n in uses) for kid, uses in self.uses.items()}

    @property
    def on_other_keys(self) -> dict[str, tuple[tuple[str, int], ...]]:
        """What still needs a key that is not the active one: it cannot be removed yet."""
        return {kid: uses for kid, uses in self.uses.items() if kid != self.active}

    @property
    def ok(self) -> bool:
        """Every value decrypts and is under the active key: every other key can go."""
        return not self.unreadable and not self.on_other_keys

    def where(self, kid: str) -> str:
        return _described(self.uses.get(kid, ()))


def prove_readable(engine: Engine, vault: Vault) -> ReadabilityReport:
    """Decrypt every stored value; count them per kid and column, and name every one that fails."""
    uses: dict[str, Counter[str]] = {}
    unreadable: list[Unreadable] = []
    for column, row_id, name, envelope in _stored(engine):
        try:
            uses.setdefault(envelope_kid(envelope), Counter())[column.name] += 1
            vault.decrypt(envelope, column.binding(row_id))
        except CredentialUnreadable as exc:
            unreadable.append(Unreadable(column, name, str(exc)))
    return ReadabilityReport(
        vault.active_kid, {kid: _in_registry_order(c) for kid, c in sorted(uses.items())}, unreadable
    )
