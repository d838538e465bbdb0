"""A command pointed at a database or keyring that is not there makes neither: it exits 2
saying which one it looked for and how to point at the right one (issue 21, item 9). Only
`db upgrade`, `keys add` and the server's first start make them.

The commands run through the real CLI (click's runner in this process, and a few as real
subprocesses) against real paths under a temporary HOME."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lib.cli import cli as root_command
from lib.kernel.config import get_settings, load_settings
from lib.kernel.errors import KeyringError
from lib.services.runtime import open_runtime
from lib.store import db
from lib.store.vault import Keyring, new_key, write_keyring_file

ROOT = Path(__file__).resolve().parent.parent

# Every command that opens the data, with arguments that would otherwise pass its own checks.
COMMANDS: list[tuple[str, ...]] = [
    ("connections", "list"),
    ("connections", "add", "--name", "Prod", "--client-id", "prod-client", "--secret-stdin", "--no-verify"),
    ("connections", "remove", "Prod"),
    ("check", "--all"),
    ("export", "--format", "csv", "-o", "-"),
    ("audit",),
    ("schedule", "show"),
    ("schedule", "set", "--every", "1h"),
    ("tokens", "list"),
    ("tokens", "create", "--name", "prometheus", "--role", "viewer"),
    ("users", "list"),
    ("users", "add", "ann", "--role", "admin", "--password-stdin"),
    ("channels", "list"),
    ("channels", "add", "--name", "Ops", "--kind", "webhook", "--url", "https://hooks.example.com/x"),
    ("worker", "--once"),
    ("keys", "status"),
    ("keys", "rotate"),
    ("keys", "verify"),
]
STDIN = "a-long-enough-secret-or-password\n"


class Place:
    """A temporary HOME with the default keyring path under it, and a database path."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.keyring = self.home / ".config" / "switchboard" / "keyring.json"  # the default, under HOME
        self.database = tmp_path / "data" / "sb.db"
        self.env = {
            "HOME": str(self.home),
            "SWITCHBOARD_DATABASE_URL": f"sqlite:///{self.database}",
            "SWITCHBOARD_KEYRING_FILE": None,
            "SWITCHBOARD_KEYS": None,
            "SWITCHBOARD_8X8_BASE_URL": "http://127.0.0.1:9",
        }

    def make_keyring(self) -> None:
        write_keyring_file(self.keyring, Keyring("k1", {"k1": new_key()}))

    def make_database(self) -> None:
        engine = db.make_engine(self.env["SWITCHBOARD_DATABASE_URL"] or "")
        db.upgrade(engine)
        engine.dispose()  # closed: SQLite folds its -wal file back and removes it

    def files(self) -> set[Path]:
        return {p for p in self.database.parent.parent.rglob("*") if p.is_file()}

    def run(self, *args: str) -> tuple[int, str]:
        """The command through the CLI in this process: exit code and standard error."""
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(root_command, list(args), input=STDIN, env=self.env)
        finally:
            get_settings.cache_clear()
        assert not isinstance(result.exception, AssertionError | TypeError | AttributeError), result.exception
        return result.exit_code, result.stderr

    def subprocess(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in {**os.environ, "PYTHONPATH": str(ROOT), **self.env}.items() if v is not None}
        return subprocess.run(
            [sys.executable, "-m", "lib", *args],
            env=env,
            input=STDIN,
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Place]:
    yield Place(tmp_path)
    get_settings.cache_clear()


@pytest.mark.parametrize("args", [*COMMANDS, ("db", "backup", "backup.db")], ids=" ".join)
def test_a_missing_database_is_named_and_not_made(place: Place, args: tuple[str, ...]) -> None:
    place.make_keyring()
    before = place.files()
    code, err = place.run(*args)
    assert code == 2, err
    assert f"No database at {place.database}" in err and "SWITCHBOARD_DATABASE_URL" in err
    assert "switchboard db upgrade" in err
    assert not place.database.exists() and place.files() == before


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_missing_keyring_is_named_and_not_made(place: Place, args: tuple[str, ...]) -> None:
    place.make_database()
    before = place.files()
    code, err = place.run(*args)
    assert code == 2, err
    assert f"No keyring at {place.keyring}" in err
    assert "SWITCHBOARD_KEYRING_FILE" in err and "SWITCHBOARD_KEYS" in err and "switchboard keys add" in err
    assert not place.keyring.exists() and not place.keyring.parent.exists()
    assert place.files() == before


def test_after_make_demo_the_default_paths_are_named_not_made(place: Place) -> None:
    """The report: `connections list` at the default path said "No connections yet" and made a
    new database and a second keyring. Now both missing stores are named in one answer."""
    listed = place.subprocess("connections", "list")
    assert listed.returncode == 2 and "No connections yet" not in listed.stdout
    assert f"No keyring at {place.keyring}" in listed.stderr and f"No database at {place.database}" in listed.stderr
    assert "Traceback" not in listed.stderr
    assert not place.keyring.exists() and not place.database.exists() and not place.database.parent.exists()


def test_worker_once_with_a_missing_keyring_refuses_without_making_one(place: Place) -> None:
    place.make_database()
    done = place.subprocess("worker", "--once")
    assert done.returncode == 2 and f"No keyring at {place.keyring}" in done.stderr, done.stderr
    assert not place.keyring.exists()


def test_a_database_file_without_switchboard_tables_is_refused_not_set_up(place: Place) -> None:
    place.make_keyring()
    place.database.parent.mkdir(mode=0o700)
    place.database.touch(mode=0o600)  # empty: a wrong path, or a file someone else made
    code, err = place.run("connections", "list")
    assert code == 2 and "holds no Switchboard tables" in err and "SWITCHBOARD_DATABASE_URL" in err
    with sqlite3.connect(place.database) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_db_upgrade_makes_the_database_and_keys_add_the_keyring(place: Place) -> None:
    """A new install from a shell: `db upgrade`, `keys add`; then every command works."""
    code, err = place.run("keys", "add")  # no database yet: only the keyring is made
    assert code == 0, err
    assert place.keyring.exists() and not place.database.exists()
    assert place.run("connections", "list")[0] == 2  # still no database
    assert place.run("db", "upgrade")[0] == 0 and place.database.exists()
    listed = place.subprocess("connections", "list")
    assert listed.returncode == 0 and "No connections yet" in listed.stdout, listed.stderr


def test_keys_add_on_an_existing_database_makes_the_keyring_and_writes_its_canary(place: Place) -> None:
    place.make_database()
    code, err = place.run("keys", "add")
    assert code == 0, err
    status = place.subprocess("keys", "status")
    assert status.returncode == 0 and status.stdout.splitlines()[1].split()[:3] == ["k1", "yes", "yes"]


def test_a_lost_keyring_is_not_replaced_by_a_new_one(place: Place) -> None:
    """The server's first start makes a keyring only for a database no keyring has used: one
    whose keyring was lost (or is elsewhere) needs that keyring, never a new one."""
    place.make_keyring()
    place.make_database()
    get_settings.cache_clear()
    settings = load_settings(
        {k: v for k, v in place.env.items() if v is not None} | {"SWITCHBOARD_KEYRING_FILE": str(place.keyring)}
    )
    open_runtime(settings).engine.dispose()  # writes k1's canary
    place.keyring.unlink()
    code, err = place.run("keys", "add")
    assert code == 2 and "the database was set up with key 'k1'" in err and "restore it" in err, err
    with pytest.raises(KeyringError, match="the database was set up with key 'k1'"):
        open_runtime(settings, create=True)  # the server's start
    assert not place.keyring.exists()
