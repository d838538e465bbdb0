"""``switchboard db``: the database schema and backups."""

from __future__ import annotations

from pathlib import Path

import click

from lib.cli.common import reports_errors
from lib.kernel.config import get_settings
from lib.store import db


@click.group("db")
def command() -> None:
    """The database schema, backups and compacting."""


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
    if db.auto_vacuum(engine) not in (None, "incremental"):
        click.echo(
            "This SQLite file was made before Switchboard gave the space of pruned rows back to the disk: "
            "run `switchboard db compact` once, at a quiet time."
        )


@command.command("compact")
@reports_errors
def db_compact() -> None:
    """Rewrite the SQLite file so it gives the space of pruned rows back.

    Needed once for a file made before Switchboard set incremental auto-vacuum (`db upgrade`
    and `settings show` say so); after that the worker gives space back as it prunes. It takes
    a while on a big file, writers wait meanwhile, and it needs free disk space about the size
    of the file. PostgreSQL needs nothing: its autovacuum does this.
    """
    settings = get_settings()
    db.require_database(settings.database_url)
    engine = db.make_engine(settings.database_url)
    path = settings.sqlite_file
    before = path.stat().st_size if path is not None else 0
    db.compact(engine)
    after = path.stat().st_size if path is not None else 0
    click.echo(
        f"Compacted: {before / 2**20:,.1f} MiB -> {after / 2**20:,.1f} MiB. From now on the worker gives "
        "the space of pruned rows back as it goes."
    )


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
