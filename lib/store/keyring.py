"""The keyring against the database: loading it, the registry of encrypted columns, and
proving the keyring matches the stored data.

Start-up fails closed: a kid that stored data uses must be in the keyring, and every key
in the keyring that has a canary must decrypt it. Messages name the kid, never the key.
"""

from __future__ import annotations

import logging
import stat
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_, select
from sqlmodel import SQLModel, col

from lib.kernel.config import Settings
from lib.kernel.errors import ConfigError, CredentialUnreadable, KeyringError
from lib.kernel.words import count
from lib.store.db import read_session, serialize, write_session
from lib.store.models import AlertChannel, Connection, KeyCheck, utcnow
from lib.store.vault import (
    Binding,
    Keyring,
    Vault,
    new_key,
    parse_inline_keys,
    parse_keyring_json,
    with_new_active_key,
    write_keyring_file,
)

CANARY_TEXT = "switchboard key canary"
log = logging.getLogger(__name__)


# --- Every encrypted column -----------------------------------------------------------------


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding vault envelopes. Each value is bound to its table, column and row id
    (the row's ``id``), so this is also where its binding comes from."""

    model: type[SQLModel]
    column: str
    label: str  # what people call the value
    owner: str  # what people call a row of the table ("connection", "alert channel")

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)

    @property
    def name(self) -> str:
        """``table.column``, as messages name it."""
        return f"{self.table}.{self.column}"

    def attribute(self) -> Any:
        return getattr(self.model, self.column)

    def binding(self, row_id: uuid.UUID | str) -> Binding:
        return Binding(table=self.table, column=self.column, row_id=str(row_id))


# Every ``*_enc`` column of the models (tests/test_keys.py derives them from the metadata and
# fails on one missing here). Key status, rotation, verification and the start-up check all
# read this list, so a value in a new column cannot be forgotten by one of them.
ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(Connection, "client_id_enc", "Client ID", "connection"),
    EncryptedColumn(Connection, "client_secret_enc", "Client Secret", "connection"),
    EncryptedColumn(AlertChannel, "url_enc", "URL", "alert channel"),
    EncryptedColumn(AlertChannel, "secret_enc", "secret", "alert channel"),
)


_REGISTERED = {(c.model, c.column): c for c in ENCRYPTED_COLUMNS}


def encrypted_tables() -> dict[type[SQLModel], tuple[EncryptedColumn, ...]]:
    """The registry grouped by table, in its order: a row's values are rotated together."""
    grouped: dict[type[SQLModel], list[EncryptedColumn]] = {}
    for column in ENCRYPTED_COLUMNS:
        grouped.setdefault(column.model, []).append(column)
    return {model: tuple(columns) for model, columns in grouped.items()}


def canary_binding(kid: str) -> Binding:
    return Binding(table="crypto_key_check", column="canary", row_id=kid)


def bound(model: type[SQLModel], column: str, row_id: uuid.UUID) -> Binding:
    """How the service that writes ``model.column`` binds a value of row ``row_id``: the
    registry's rule, so only a registered column can be written (a KeyError otherwise)."""
    return _REGISTERED[model, column].binding(row_id)


def credential_binding(row_id: uuid.UUID, column: str) -> Binding:
    return bound(Connection, column, row_id)


# --- Loading the keyring ------------------------------------------------------------------


def _check_location(settings: Settings) -> None:
    data_file = settings.sqlite_file
    if data_file is None:
        return
    data_dir = data_file.resolve().parent
    path = settings.keyring_file.resolve()
    if path.is_relative_to(data_dir):
        raise ConfigError(
            f"SWITCHBOARD_KEYRING_FILE ({path}) is inside the data folder ({data_dir}); a backup "
            "of the data would then carry the key that unlocks it. Keep the keyring elsewhere."
        )


def new_keyring_notice(path: Path) -> str:
    """Said once, on the console of whichever start (server or command) made the keyring."""
    return (
        f"Created a new encryption keyring at {path}. Back it up now, for example in your "
        "password manager, and not with the database: without this file no stored Client "
        "Secret can be read, and a backup holding both gives every secret away."
    )


def missing(settings: Settings) -> bool:
    """True when there is no keyring to load: SWITCHBOARD_KEYS unset and no keyring file (a
    keyring file inside the data folder is refused first)."""
    if settings.inline_keys:
        return False
    _check_location(settings)
    return not settings.keyring_file.exists()


def load_keyring(settings: Settings) -> Keyring:
    """SWITCHBOARD_KEYS wins; else the keyring file, which must exist (create_keyring makes it)."""
    if settings.inline_keys:
        return parse_inline_keys(settings.inline_keys)
    if missing(settings):
        path = settings.keyring_file
        raise KeyringError(
            f"No keyring at {path} (SWITCHBOARD_KEYRING_FILE, by default "
            "~/.config/switchboard/keyring.json of the user running Switchboard). Set "
            "SWITCHBOARD_KEYRING_FILE to the keyring your server uses, or give its keys in "
            "SWITCHBOARD_KEYS (`make demo` keeps its own in ~/.config/switchboard/demo-keyring.json). "
            "For a new install, start the server or run `switchboard keys add`: nothing else makes a keyring."
        )
    path = settings.keyring_file
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(
            f"The keyring file {path} can be read or written by other users "
            f"(mode {stat.S_IMODE(mode):04o}). Fix it with: chmod 600 {path}"
        )
    folder = path.resolve().parent
    folder_mode = folder.stat().st_mode
    if folder_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise KeyringError(
            f"The keyring's folder {folder} can be written by other users (mode "
            f"{stat.S_IMODE(folder_mode):04o}), who could replace the keyring. Fix it with: chmod go-w {folder}"
        )
    return parse_keyring_json(path.read_text(), str(path))


def create_keyring(settings: Settings, engine: Engine | None) -> Keyring:
    """Make the keyring file (0600) with one key, for a new install.

    ``engine`` is the database when there is one: if it already holds values of some keyring,
    a new keyring could never read them, so none is made and the message says to restore it.
    """
    path = settings.keyring_file
    if engine is not None:
        with read_session(engine) as session:
            kids = sorted(session.scalars(select(col(KeyCheck.kid))).all())
        if kids:
            raise KeyringError(
                f"No keyring at {path} (SWITCHBOARD_KEYRING_FILE), but the database was set up with "
                f"key{'s' if len(kids) > 1 else ''} {', '.join(repr(k) for k in kids)}: a new keyring could "
                "not read what they encrypted. Set SWITCHBOARD_KEYRING_FILE (or SWITCHBOARD_KEYS) to that "
                "keyring, or restore it from your backup."
            )
    keyring = Keyring(active="k1", keys={"k1": new_key()})
    write_keyring_file(path, keyring)
    log.warning(new_keyring_notice(path))
    return keyring


def add_key(settings: Settings) -> Keyring:
    """Add a new key to the keyring file and make it active; older keys stay for reading."""
    if settings.inline_keys:
        raise KeyringError(
            "SWITCHBOARD_KEYS is set, so the keyring lives in the environment: add the new key "
            "in front of that list yourself (the first key is the active one)."
        )
    keyring = with_new_active_key(load_keyring(settings))
    write_keyring_file(settings.keyring_file, keyring)
    return keyring


# --- Canaries: does the keyring match the data? --------------------------------------------


def rows_using_kid(engine: Engine, kid: str) -> Counter[str]:
    """How many rows of each kind (``EncryptedColumn.owner``) hold a value under ``kid``."""
    prefix = f"v1.{kid}.%"
    found: Counter[str] = Counter()
    with read_session(engine) as session:
        for model, columns in encrypted_tables().items():
            rows = session.scalars(
                select(model.id).where(  # type: ignore[attr-defined]
                    or_(*(column.attribute().like(prefix) for column in columns))
                )
            ).all()
            if rows:
                found[columns[0].owner] += len(rows)
    return found


def check_keyring(engine: Engine, vault: Vault) -> None:
    """Fail closed unless the keyring matches the stored data; write missing canaries.

    Raises KeyringError naming the kid and the fix.
    """
    with read_session(engine) as session:
        canaries = {row.kid: row.canary for row in session.scalars(select(KeyCheck)).all()}
    for kid, canary in canaries.items():
        if kid not in vault.keyring.keys:
            in_use = rows_using_kid(engine, kid)
            if in_use:
                rows = " and ".join(count(n, f"stored {owner}") for owner, n in in_use.items())
                raise KeyringError(
                    f"Key '{kid}' is missing from the keyring, but {rows} "
                    f"{'is' if in_use.total() == 1 else 'are'} encrypted with it. "
                    f"Restore key '{kid}' from your keyring backup."
                )
            continue
        try:
            vault.decrypt(canary, canary_binding(kid))
        except CredentialUnreadable:
            raise KeyringError(
                f"Key '{kid}' in the keyring is not the key this database was encrypted with. "
                f"Restore the original key '{kid}' from your keyring backup."
            ) from None
    if any(kid not in canaries for kid in vault.keyring.keys):
        with write_session(engine) as session:
            # Two instances starting together with a new key: the second finds the first's canary.
            serialize(session, "keyring")
            written = set(session.scalars(select(col(KeyCheck.kid))).all())
            for kid in (kid for kid in vault.keyring.keys if kid not in written):
                canary = vault.encrypt(CANARY_TEXT, canary_binding(kid), kid=kid)
                session.add(KeyCheck(kid=kid, canary=canary, created_at=utcnow()))
