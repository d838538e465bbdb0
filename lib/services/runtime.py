"""Start-up shared by the console and the CLI: settings, logging, database, keyring check.

Fails closed: if the keyring does not match the data, no Runtime is made and nothing can
read or write a credential. Only a first start makes a database or a keyring: a command run
with the wrong path says which one it looked for instead of quietly starting an empty one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lib.kernel.config import Settings, get_settings
from lib.kernel.errors import DatabaseNotReady, KeyringError, SwitchboardError
from lib.store import db, keyring
from lib.store.vault import Keyring, Vault


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    vault: Vault


def open_runtime(settings: Settings | None = None, *, create: bool = False) -> Runtime:
    """Database at head (SQLite is upgraded on start), keyring loaded and proven against it.

    ``create`` is for a first start (the server's, ``make demo``'s, ``keys add`` on a new
    install): a missing SQLite database is made and migrated, and a missing keyring file made,
    unless the database already holds values of another keyring. Without it, a missing
    database or keyring raises DatabaseNotReady or KeyringError naming what was looked for
    and how to point at it, and nothing is written.
    """
    settings = settings or get_settings()
    if create:
        found = None if keyring.missing(settings) else keyring.load_keyring(settings)
    else:
        found = _existing_keyring(settings)
    engine = db.make_engine(settings.database_url)
    try:
        db.prepare(engine, create=create)
        vault = Vault(found or keyring.create_keyring(settings, engine))
        keyring.check_keyring(engine, vault)
    except BaseException:
        engine.dispose()
        raise
    return Runtime(settings=settings, engine=engine, vault=vault)


def _existing_keyring(settings: Settings) -> Keyring:
    """The keyring, when it and the database exist; else one error saying what is missing
    (both, when both are: a command run with the wrong settings learns it in one go)."""
    problems: list[SwitchboardError] = []
    found = None
    try:
        found = keyring.load_keyring(settings)
    except KeyringError as exc:
        problems.append(exc)
    try:
        db.require_database(settings.database_url)
    except DatabaseNotReady as exc:
        problems.append(exc)
    if len(problems) > 1:
        raise KeyringError("\n".join(str(problem) for problem in problems))
    if problems:
        raise problems[0]
    assert found is not None
    return found


def not_ready(rt: Runtime) -> str | None:
    """Why this process should get no traffic now (for a load balancer's readiness probe), or
    None: the database answers, its schema is the one this code needs, and the keyring still
    matches the data. The reason is for the server's log only."""
    try:
        db.require_head(rt.engine)
        keyring.check_keyring(rt.engine, rt.vault)
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
            _shared = open_runtime(create=True)  # the server's first start makes what is missing
        return _shared


def close_shared_runtime() -> None:
    """Forget the shared Runtime (server shutdown; tests that change the environment)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.engine.dispose()
        _shared = None
