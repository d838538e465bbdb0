"""Promises the documents (README.md, docs/) make that no other test proved: the test setup's
rule for missing PostgreSQL and Chromium, the hardened Streamlit defaults, an audit trail no code
changes, a command line that takes no secret as an argument, `db backup` on each database, the
demo's own data and keyring, and rolling a new key out across several instances."""

from __future__ import annotations

import ast
import base64
import inspect
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select
from streamlit import config as streamlit_config

from lib.kernel.config import APP_DIR, DEFAULT_KEYRING_FILE, load_settings
from lib.kernel.errors import KeyringError
from lib.services import connections
from lib.services.connections import ConnectionInput, keys
from lib.services.runtime import Runtime, open_runtime
from lib.store import db, leases
from lib.store.db import read_session
from lib.store.keyring import encrypted_tables
from lib.store.models import AlertOutbox, AuditEvent, Connection, DueCheck
from lib.store.vault import Vault, new_key
from tests.browser import conftest as browser
from tests.fixtures import postgres
from tests.fixtures.people import ADMIN
from tests.test_cli import _commands
from tests.test_cli import root_command as switchboard

ROOT = Path(__file__).resolve().parent.parent


# --- `make test` without PostgreSQL or Chromium -----------------------------------------------


@pytest.mark.parametrize("ci", [None, "true"])
def test_missing_postgresql_or_chromium_is_skipped_locally_and_fails_under_ci(
    ci: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    expected = pytest.skip.Exception if ci is None else pytest.fail.Exception
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "chromium"))  # a machine without it
    launch_args = inspect.unwrap(browser.browser_type_launch_args)
    with pytest.raises(expected, match="chromium") as chromium:
        launch_args()
    with pytest.raises(expected, match="initdb/pg_ctl not found") as pg:
        postgres._unavailable("initdb/pg_ctl not found")  # what postgres_server says when they are missing
    for raised in (chromium, pg):
        assert ("required under CI=true" in str(raised.value)) == (ci == "true")


# --- .streamlit/config.toml -------------------------------------------------------------------


def test_the_streamlit_config_keeps_its_hardened_defaults() -> None:
    text = (ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8")
    found = {
        f"{section}.{name}": value
        for section, options in tomllib.loads(text).items()
        for name, value in options.items()
    }
    known = streamlit_config.get_config_options()
    assert [name for name in found if name not in known] == []  # a misspelt option does nothing
    assert found["server.address"] == "127.0.0.1"  # loopback only
    assert found["client.showErrorDetails"] == "none"  # no exception reaches the browser
    assert found["server.enableXsrfProtection"] is True
    assert found["server.enableCORS"] is True
    assert found["client.toolbarMode"] in ("viewer", "minimal")  # no developer options


# --- The audit trail: appended to, never changed; pruned by retention only ---------------------

_AUDIT_SQL = re.compile(r"\b(update|delete\s+from|truncate(\s+table)?|alter\s+table)\s+\W?audit_event\b", re.IGNORECASE)
# Statements on a table chosen at run time, and why none of them can be the audit trail's.
_GENERIC = {
    ("lib/services/connections/keys.py", "update"): "rotation re-encrypts only the tables of encrypted_tables()",
    ("lib/services/checking/retention.py", "delete"): "pruning: rows older than the audit retention time",
    ("lib/store/leases.py", "update"): "leases: only the tables leases.Leased names (due checks, the outbox)",
}


def audit_writes(root: Path) -> Iterator[tuple[str, int, str]]:
    """Every place under ``root``/lib that may update or delete audit rows: a SQLAlchemy
    ``update``/``delete`` of AuditEvent or of a table chosen at run time, or SQL text that
    updates or deletes audit_event. (It reads the code; an ORM object changed in a session
    it cannot follow, and the rule that write sessions commit, are for other tests.)"""
    for path in sorted((root / "lib").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=name)
        verbs = {
            alias.asname or alias.name: alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy")
            for alias in node.names
            if alias.name in ("update", "delete")
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _AUDIT_SQL.search(node.value):
                yield name, node.lineno, "SQL text on audit_event"
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in verbs):
                continue
            verb, table = verbs[node.func.id], ast.unparse(node.args[0]) if node.args else ""
            if table == "AuditEvent" or not (table.isidentifier() and table[0].isupper()):  # a model class
                yield name, node.lineno, f"{verb}({table})"


def test_no_code_changes_an_audit_row_and_only_retention_deletes_them() -> None:
    found = [(name, what) for name, _, what in audit_writes(ROOT)]
    assert found == [
        ("lib/services/checking/retention.py", "delete(target.table)"),
        ("lib/services/connections/keys.py", "update(model)"),
        *[("lib/store/leases.py", "update(model)")] * 3,
    ], found  # take, renew, let_go
    assert {(name, what.split("(")[0]) for name, what in found} == set(_GENERIC)
    assert AuditEvent not in encrypted_tables()  # so rotation's update never reaches it
    assert typing.get_args(leases.Leased) == (type[DueCheck], type[AlertOutbox])  # nor a lease's


def test_the_audit_scan_finds_an_update_a_delete_and_sql_text(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "sneaky.py").write_text(
        "from sqlalchemy import delete, text\nfrom sqlalchemy import update as sql_update\n"
        "def f(session):\n"
        "    session.execute(sql_update(AuditEvent).values(result='ok'))\n"
        "    session.execute(delete(AuditEvent))\n"
        "    session.execute(text('UPDATE \"audit_event\" SET detail = 1'))\n"
        "    session.execute(sql_update(Connection).values(name='x'))\n",
        encoding="utf-8",
    )
    assert sorted((line, what) for _, line, what in audit_writes(tmp_path)) == [
        (4, "update(AuditEvent)"),
        (5, "delete(AuditEvent)"),
        (6, "SQL text on audit_event"),
    ]


# --- The command line takes no secret as an argument -------------------------------------------

_SECRET = re.compile(r"secret|passw|token|credential|key", re.IGNORECASE)


def test_no_command_takes_a_secret_as_an_argument() -> None:
    """Whatever names a secret is a flag (``--secret-stdin``, ``--new-secret``): the value comes
    from standard input or a hidden prompt. A channel's URL is a credential for Slack and Teams:
    ``--url`` still takes it (and warns), beside ``--url-stdin``."""
    takes_values: list[str] = []
    urls: list[str] = []
    for path, command in _commands(switchboard):
        flags = {param.name for param in command.params if isinstance(param, click.Option) and param.is_flag}
        for param in command.params:
            if isinstance(param, click.Option) and param.is_flag:
                continue
            words = " ".join([param.name or "", *param.opts])
            if _SECRET.search(words):
                takes_values.append(f"{path} {words}")
            if "url" in words:
                urls.append(path)
                assert "url_stdin" in flags, path
    assert takes_values == []
    assert urls == ["channels add", "channels edit"]


# --- switchboard db backup ---------------------------------------------------------------------


def test_db_backup_copies_sqlite_and_says_it_copies_nothing_else(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "backups" / "switchboard.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SWITCHBOARD_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "lib", "db", "backup", str(target)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    if not db.is_sqlite(engine):
        assert done.returncode == 1 and not target.exists(), done.stdout + done.stderr
        assert done.stderr == ("error: db backup copies SQLite files only; back up PostgreSQL with pg_dump or PITR.\n")
        return
    assert done.returncode == 0, done.stderr
    assert f"Backed up to {target}." in done.stdout
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (db.head_revision(),)


# --- The demo keeps its own data and keyring ---------------------------------------------------


def test_the_demo_keeps_its_data_and_keyring_apart_from_the_real_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo-shell` starts $SHELL with the demo's settings: here `env`, which prints them."""
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("SWITCHBOARD_", "DEMO_", "SIM_PORT"))
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--shell"],
        check=False,
        timeout=60,
        env=env | {"SHELL": "env", "PY": sys.executable},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    demo = load_settings(dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line))
    real = load_settings({})
    assert demo.sqlite_file == APP_DIR / "data" / "demo" / "switchboard-demo.db"
    assert real.sqlite_file == APP_DIR / "data" / "switchboard.db"
    assert demo.keyring_file == tmp_path / ".config" / "switchboard" / "demo-keyring.json"
    assert real.keyring_file == Path(DEFAULT_KEYRING_FILE).expanduser() != demo.keyring_file


# --- A new key across several instances ---------------------------------------------------------


def _start(database_url: str, *ring: tuple[str, bytes]) -> Runtime:
    """An instance started with SWITCHBOARD_KEYS listing ``ring`` in this order."""
    keys_ = ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in ring)
    return open_runtime(load_settings({"SWITCHBOARD_DATABASE_URL": database_url, "SWITCHBOARD_KEYS": keys_}))


def _save(rt: Runtime, name: str) -> str:
    """A connection saved by this instance; the key id its secret is stored under."""
    view = connections.create(
        rt.engine,
        rt.vault,
        ConnectionInput(name=name, client_id=f"id-{name}", client_secret=SecretStr(f"secret-{name}")),
        actor=ADMIN,
    )
    with read_session(rt.engine) as session:
        return session.exec(select(Connection.client_secret_enc).where(Connection.id == view.id)).one().split(".")[1]


def _reads_everything(rt: Runtime) -> bool:
    return all(
        connections.load_credentials(rt.engine, rt.vault, view.id).client_secret.get_secret_value()
        == f"secret-{view.name}"
        for view in connections.list_connections(rt.engine)
    )


def test_a_new_key_rolls_out_to_every_instance_before_any_writes_with_it(
    engine: Engine, vault: Vault, database_url: str
) -> None:
    """docs/operating/several-instances.md, "The keyring on every instance": at each step, every
    instance still running reads everything any other one wrote, and one left behind on the old
    keyring cannot start once the new key is in use."""
    k1, k2 = ("k1", vault.keyring.keys["k1"]), ("k2", new_key())
    started: list[Runtime] = []

    def start(*ring: tuple[str, bytes]) -> Runtime:
        started.append(_start(database_url, *ring))
        return started[-1]

    try:
        a, b = start(k1), start(k1)
        assert _save(a, "before") == "k1"
        a = start(k1, k2)  # 1. the new key at the end of the list: not active; b not yet restarted
        assert _save(a, "step-1") == "k1" and _reads_everything(b)
        b = start(k1, k2)
        a = start(k2, k1)  # 2. the new key first: active; b still on step 1's keyring
        assert _save(a, "step-2") == "k2" and _reads_everything(b) and _reads_everything(a)
        with pytest.raises(KeyringError, match="Key 'k2' is missing"):
            start(k1)  # an instance that skipped step 1 fails closed, it does not write under k1 alone
        b = start(k2, k1)
        keys.rotate(a.engine, a.vault, actor=ADMIN)  # 3. once, anywhere
        assert keys.prove_readable(b.engine, b.vault).values_per_kid.keys() == {"k2"}
        a = start(k2)  # 4. the old key removed; b not yet restarted
        assert _save(b, "step-4") == "k2" and _reads_everything(a) and _reads_everything(b)
    finally:
        for rt in started:
            rt.engine.dispose()
