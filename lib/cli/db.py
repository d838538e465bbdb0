"""``switchboard db``: the database schema and backups."""

from __future__ import annotations

from pathlib import Path

import click

from lib.cli.common import reports_errors
from lib.config import get_settings
from lib.store import db


@click.group("db")
def command() -> None:
    """The database schema and backups."""


@command.command("upgrade")
@reports_errors
def db_upgrade() -> None:
    """Bring the database schema to the newest revision.

    Makes the database on a new install (SQLite); with the server's first start, the only
    command that does.
    """
    engine = db.make_engine(get_settings().database_url)
    db.upgrade(engine)
    click.echo(f"Database is at revision {db.current_revision(engine)}.")


@command.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
def db_backup(file: Path) -> None:
    """Online backup of the SQLite database to FILE.

    The keyring is not included: back it up separately, and keep the two apart.
    """
    database_url = get_settings().database_url
    db.require_database(database_url)  # a backup of an empty database just made helps nobody
    target = db.backup(db.make_engine(database_url), file)
    click.echo(f"Backed up to {target}. Back up the keyring separately; keep the two apart.")
