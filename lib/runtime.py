"""Start-up shared by the console and the CLI: settings, logging, database, keyring check.

Fails closed: if the keyring does not match the data, no Runtime is made and nothing can
read or write a credential.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lib.config import Settings, get_settings
from lib.errors import SwitchboardError
from lib.store import db
from lib.store.keyring import check_keyring, load_keyring
from lib.store.vault import Vault


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


def not_ready(rt: Runtime) -> str | None:
    """Why this process should get no traffic now (for a load balancer's readiness probe), or
    None: the database answers, its schema is the one this code needs, and the keyring still
    matches the data. The reason is for the server's log only."""
    try:
        db.require_head(rt.engine)
        check_keyring(rt.engine, rt.vault)
    except SwitchboardError as exc:
        return str(exc)
    except SQLAlchemyError as exc:
        return f"The database cannot be reached: {getattr(exc, 'orig', None) or type(exc).__name__}"
    return None


_shared: Runtime | None = None
_shared_lock = threading.Lock()


def shared_runtime() -> Runtime:
    """The process's one Runtime, opened on first use: the server's routes and the console's
    pages share one engine, one migration check and one keyring proof."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = open_runtime()
        return _shared


def close_shared_runtime() -> None:
    """Forget the shared Runtime (server shutdown; tests that change the environment)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.engine.dispose()
        _shared = None
