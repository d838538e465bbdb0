"""Start-up shared by the console and the CLI: settings, logging, database, keyring check.

Fails closed: if the keyring does not match the data, no Runtime is made and nothing can
read or write a credential.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from lib import db
from lib.config import Settings, get_settings
from lib.keys import check_keyring, load_keyring
from lib.vault import Vault


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    vault: Vault


def open_runtime(settings: Settings | None = None) -> Runtime:
    """Database at head (SQLite is upgraded on start), keyring loaded and proven against it."""
    settings = settings or get_settings()
    vault = Vault(load_keyring(settings))
    engine = db.make_engine(settings.database_url)
    try:
        db.prepare(engine)
        check_keyring(engine, vault)
    except BaseException:
        engine.dispose()
        raise
    return Runtime(settings=settings, engine=engine, vault=vault)
