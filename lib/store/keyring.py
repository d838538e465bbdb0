"""The keyring against the database: loading it, and proving it matches the stored data.

Start-up fails closed: a kid that stored data uses must be in the keyring, and every key
in the keyring that has a canary must decrypt it. Messages name the kid, never the key.
"""

from __future__ import annotations

import logging
import stat
import uuid
from pathlib import Path

from sqlalchemy import Engine, or_
from sqlalchemy.engine import make_url
from sqlmodel import select

from lib.config import Settings
from lib.errors import ConfigError, CredentialUnreadable, KeyringError
from lib.store.db import read_session, serialize, write_session
from lib.store.models import Connection, KeyCheck, utcnow
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
from lib.words import count

CANARY_TEXT = "switchboard key canary"
log = logging.getLogger(__name__)


def canary_binding(kid: str) -> Binding:
    return Binding(table="crypto_key_check", column="canary", row_id=kid)


def credential_binding(row_id: uuid.UUID, column: str) -> Binding:
    return Binding(table="connection", column=column, row_id=str(row_id))


# --- Loading the keyring ------------------------------------------------------------------


def _data_dir(settings: Settings) -> Path | None:
    if not settings.is_sqlite:
        return None
    return Path(make_url(settings.database_url).database or ".").expanduser().resolve().parent


def _check_location(settings: Settings) -> None:
    data_dir = _data_dir(settings)
    path = settings.keyring_file.resolve()
    if data_dir is not None and path.is_relative_to(data_dir):
        raise ConfigError(
            f"SWITCHBOARD_KEYRING_FILE ({path}) is inside the data folder ({data_dir}); a backup "
            "of the data would then carry the key that unlocks it. Keep the keyring elsewhere."
        )


def new_keyring_notice(path: Path) -> str:
    """Said once, on the console of whichever start (server or command) made the keyring."""
    return (f"Created a new encryption keyring at {path}. Back it up now, for example in your "
            "password manager, and not with the database: without this file no stored Client "
            "Secret can be read, and a backup holding both gives every secret away.")


def load_keyring(settings: Settings, *, create: bool = True) -> Keyring:
    """SWITCHBOARD_KEYS wins; else the keyring file, created (0600) with one key on first run."""
    if settings.inline_keys:
        return parse_inline_keys(settings.inline_keys)
    _check_location(settings)
    path = settings.keyring_file
    if not path.exists():
        if not create:
            raise KeyringError(f"No keyring at {path}. Set SWITCHBOARD_KEYRING_FILE or SWITCHBOARD_KEYS.")
        keyring = Keyring(active="k1", keys={"k1": new_key()})
        write_keyring_file(path, keyring)
        log.warning(new_keyring_notice(path))
        return keyring
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


def _rows_using_kid(engine: Engine, kid: str) -> int:
    prefix = f"v1.{kid}.%"
    with read_session(engine) as session:
        rows = session.exec(
            select(Connection.id).where(
                or_(Connection.client_id_enc.like(prefix), Connection.client_secret_enc.like(prefix))
            )
        ).all()
    return len(rows)


def check_keyring(engine: Engine, vault: Vault) -> None:
    """Fail closed unless the keyring matches the stored data; write missing canaries.

    Raises KeyringError naming the kid and the fix.
    """
    with read_session(engine) as session:
        canaries = {row.kid: row.canary for row in session.exec(select(KeyCheck)).all()}
    for kid, canary in canaries.items():
        if kid not in vault.keyring.keys:
            in_use = _rows_using_kid(engine, kid)
            if in_use:
                raise KeyringError(
                    f"Key '{kid}' is missing from the keyring, but {count(in_use, 'stored connection')} "
                    f"are encrypted with it. Restore key '{kid}' from your keyring backup."
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
            written = set(session.exec(select(KeyCheck.kid)).all())
            for kid in (kid for kid in vault.keyring.keys if kid not in written):
                canary = vault.encrypt(CANARY_TEXT, canary_binding(kid), kid=kid)
                session.add(KeyCheck(kid=kid, canary=canary, created_at=utcnow()))
