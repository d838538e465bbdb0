"""Engine, sessions, SQLite durability settings, migrations, backups and giving space back.

SQLite gets WAL, ``synchronous=FULL``, a busy timeout, foreign keys and secure_delete on every
connection, and write transactions that start with ``BEGIN IMMEDIATE`` so two writers queue
on the busy timeout instead of failing with "database is locked". The same code runs on
PostgreSQL through ``SWITCHBOARD_DATABASE_URL``.

A SQLite file gives back the space of pruned rows (lib.services.checking.retention) a little at a time: new files
are made with ``auto_vacuum=INCREMENTAL`` (a file made before needs one :func:`compact`), the
pruner frees up to a bounded number of pages after each batch (:func:`give_back_space`), and
the WAL file is cut back to WAL_SIZE_LIMIT after each checkpoint instead of keeping the size of
the largest transaction it ever held.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from lib.kernel.errors import DatabaseNotReady, SwitchboardError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
BUSY_TIMEOUT_MS = 10_000
# libpq otherwise waits as long as the OS does for a host that drops packets (about two minutes
# on Linux): a server's opening, /readyz and every page would hang that long. The URL's own
# ?connect_timeout=N wins.
PG_CONNECT_TIMEOUT_S = 10
_WRITE = "switchboard_write"

WAL_SIZE_LIMIT = 32 * 1024 * 1024  # bytes the WAL file keeps after a checkpoint
# Rows' worth of statistics ANALYZE reads per index: keeps PRAGMA optimize short on any size.
ANALYSIS_LIMIT = 1000

# Only on a file with no pages yet, before anything else: it takes effect only there (older
# files: see compact()), and asking for it on a file in use waits on other writers' locks.
_NEW_FILE_PRAGMA = "PRAGMA auto_vacuum=INCREMENTAL"
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",
)


def _install_sqlite_hooks(engine: Engine) -> None:
    # SQLAlchemy's documented pysqlite recipe: take transaction control away from the driver,
    # then begin each transaction ourselves (IMMEDIATE for writes).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
            cursor.execute(_NEW_FILE_PRAGMA)
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_private(path: Path) -> None:
    """Create ``path`` (and its folder) readable by this user only, unless it exists: 0600 in
    a 0700 folder. SQLite gives its -wal and -shm files the database file's permissions."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def missing_file(database_url: str) -> Path | None:
    """The SQLite file the URL names, when it does not exist (None: it does, or PostgreSQL,
    whose databases connecting never makes)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    path = Path(url.database).expanduser()
    return None if path.exists() else path


def require_database(database_url: str) -> None:
    """Stop, creating nothing, when the SQLite file does not exist (make_engine would make an
    empty one): only ``switchboard db upgrade`` and the server's first start make a database."""
    path = missing_file(database_url)
    if path is not None:
        raise DatabaseNotReady(
            f"No database at {path} (SWITCHBOARD_DATABASE_URL, by default sqlite:///data/switchboard.db "
            "in the Switchboard folder). Set SWITCHBOARD_DATABASE_URL to the database your server uses "
            "(`make demo` keeps its own in data/demo/switchboard-demo.db). For a new install, run "
            "`switchboard db upgrade` or start the server: nothing else makes a database."
        )


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database:
            create_private(Path(url.database).expanduser())
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )
        _install_sqlite_hooks(engine)
        return engine
    waits = {} if "connect_timeout" in url.query else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=waits)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def insert_on_conflict(dialect: str, table: Any) -> Any:
    """``INSERT … ON CONFLICT`` into ``table``: SQLite and PostgreSQL spell it alike, each with
    a class of its own. Each dialect's module loads when first used (PostgreSQL's takes 35 ms,
    which a process on SQLite need not pay at start)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert

    return postgresql_insert(table)


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    with Session(engine.execution_options(**{_WRITE: True})) as session, session.begin():
        yield session


def serialize(session: Session, name: str) -> None:
    """Make write transactions about ``name`` run one at a time, until this one ends.

    SQLite needs nothing: a write transaction starts with BEGIN IMMEDIATE and so already
    holds the database's one write lock. PostgreSQL takes a transaction-scoped advisory lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"switchboard:{name}"})


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Run the block in one process at a time, across every instance sharing the database:
    for work longer than one transaction (migrations, key rotation). PostgreSQL holds a
    session advisory lock on a connection of its own for the whole block; a second instance
    waits for the first to finish. SQLite needs nothing: its writers already queue on the one
    write lock, and it is not shared between machines."""
    if is_sqlite(engine):
        yield
        return
    key = {"name": f"switchboard:{name}"}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), key)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), key)


# --- Migrations ---------------------------------------------------------------------------


# Alembic is imported only when a migration runs: a start on a database already at head (every
# start but the first) reads one row and the migration files' names, nothing more.
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([\w]+)['\"]?", re.MULTILINE)


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The revision no other migration builds on (read from migrations/versions/, as Alembic does)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        fields = dict(_REVISION.findall(path.read_text()))
        revisions.add(fields["revision"])
        parents.add(fields.get("down_revision", "None"))
    heads = revisions - parents
    assert len(heads) == 1, f"migrations/ must have one head, not {sorted(heads)}"
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent). Instances starting together take
    turns: the second finds the schema at head and does nothing."""
    from alembic import command

    with exclusive(engine, "migrations"):
        command.upgrade(_alembic_config(engine), "head")


def require_head(engine: Engine) -> None:
    """Refuse to run on a schema that is not at head (PostgreSQL is upgraded explicitly)."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise DatabaseNotReady(
            f"The database schema is at revision {current or 'none'}, but this version of "
            f"Switchboard needs {head}. Run: switchboard db upgrade"
        )


def prepare(engine: Engine, *, create: bool = False) -> None:
    """Start-up: an embedded SQLite database is upgraded; a shared one must already be at head.

    A database without Switchboard's tables (an empty file, or someone else's) is set up only
    with ``create`` (the server's first start); everything else is refused with the fix.
    """
    current = current_revision(engine)
    if current == head_revision():
        return
    if current is None and not create:
        raise DatabaseNotReady(
            f"The database {engine.url.render_as_string(hide_password=True)} holds no Switchboard "
            "tables: it is empty, or not Switchboard's. Set SWITCHBOARD_DATABASE_URL to the database "
            "your server uses; for a new install, run `switchboard db upgrade`."
        )
    if is_sqlite(engine):
        upgrade(engine)
    else:
        require_head(engine)


# --- Backups ------------------------------------------------------------------------------


def backup(engine: Engine, destination: Path) -> Path:
    """Online backup of a SQLite database with SQLite's backup API (safe beside writers)."""
    if not is_sqlite(engine):
        raise SwitchboardError("db backup copies SQLite files only; back up PostgreSQL with pg_dump or PITR.")
    destination = destination.expanduser().resolve()
    if destination.exists():
        raise SwitchboardError(f"{destination} already exists; choose a new file name.")
    create_private(destination)
    raw = engine.raw_connection()
    try:
        target = sqlite3.connect(destination)
        try:
            raw.driver_connection.backup(target)  # type: ignore[union-attr]
        finally:
            target.close()
    finally:
        raw.close()
    return destination


# --- Giving space back (SQLite) -----------------------------------------------------------


def _sqlite_script(engine: Engine, script: str) -> None:
    """Run ``script`` on a pooled SQLite connection, outside any transaction. ``executescript``
    runs each statement to its end, where ``execute`` takes one step: one page of
    ``PRAGMA incremental_vacuum(n)``, not n."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.executescript(script)  # type: ignore[union-attr]
    finally:
        raw.close()


def auto_vacuum(engine: Engine) -> str | None:
    """The SQLite file's auto-vacuum mode (``none``, ``full`` or ``incremental``); None on
    PostgreSQL, whose autovacuum needs nothing from us."""
    if not is_sqlite(engine):
        return None
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one()
    return {0: "none", 1: "full", 2: "incremental"}.get(mode, str(mode))


def give_back_space(engine: Engine, pages: int) -> None:
    """Return up to ``pages`` free pages of a SQLite file to the file system (a short write
    transaction of its own, bounded by ``pages``); nothing on PostgreSQL, or on a file that is
    not in incremental auto-vacuum mode (it reuses its free pages instead)."""
    if is_sqlite(engine):
        _sqlite_script(engine, f"PRAGMA incremental_vacuum({max(0, int(pages))});")


def optimize(engine: Engine) -> None:
    """Let SQLite refresh the planner's statistics where they are missing or stale, reading a
    bounded sample of each index; PostgreSQL's autovacuum analyzes on its own."""
    if is_sqlite(engine):
        _sqlite_script(engine, f"PRAGMA analysis_limit={ANALYSIS_LIMIT}; PRAGMA optimize=0x10002;")


def compact(engine: Engine) -> None:
    """Rewrite a SQLite file into incremental auto-vacuum mode, without its free pages, and
    cut its WAL back: once, for a file made before Switchboard set that mode. It takes a while
    on a big file, during which other writers wait, and needs free disk space about the size of
    the file."""
    if not is_sqlite(engine):
        raise SwitchboardError("db compact is for SQLite files; PostgreSQL's autovacuum gives space back on its own.")
    _sqlite_script(engine, "PRAGMA auto_vacuum=INCREMENTAL; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
