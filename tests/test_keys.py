"""The keyring against the data: fail-closed start-up, rotation, verification (checklist 6-9)."""

from __future__ import annotations

import base64
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from lib import connections, keys
from lib.config import load_settings
from lib.connections import ConnectionInput
from lib.errors import ConfigError, KeyringError
from lib.runtime import open_runtime
from lib.store import db, keyring
from lib.store.db import read_session
from lib.store.models import Connection
from lib.store.vault import Keyring, Vault, new_key, parse_keyring_json, write_keyring_file
from tests.fixtures.people import ADMIN

ROOT = Path(__file__).resolve().parent.parent


def _add(engine: Engine, vault: Vault, n: int, prefix: str = "c") -> None:
    for i in range(n):
        connections.create(engine, vault, ConnectionInput(
            name=f"{prefix}{i}", client_id=f"{prefix}client{i}", client_secret=SecretStr(f"{prefix}-secret-{i}")),
            actor=ADMIN)


def _kids(engine: Engine) -> set[str]:
    with read_session(engine) as session:
        rows = session.exec(select(Connection.client_id_enc, Connection.client_secret_enc)).all()
    return {value.split(".")[1] for row in rows for value in row}


def _no_key_material(message: str, *keyrings: Keyring) -> bool:
    return not any(base64.b64encode(k).decode() in message or k.hex() in message
                   for ring in keyrings for k in ring.keys.values())


def test_wrong_key_fails_closed_naming_the_kid(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, 1)
    wrong = Vault(Keyring("k1", {"k1": new_key()}))
    with pytest.raises(KeyringError) as info:
        keyring.check_keyring(engine, wrong)
    assert "Key 'k1'" in str(info.value) and "not the key this database" in str(info.value)
    assert _no_key_material(str(info.value), vault.keyring, wrong.keyring)


def test_missing_key_in_use_fails_closed(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, 2)
    other = Vault(Keyring("k2", {"k2": new_key()}))
    with pytest.raises(KeyringError, match=r"Key 'k1' is missing .* 2 stored connections are encrypted with it"):
        keyring.check_keyring(engine, other)


def test_retired_key_no_longer_needed_after_rotation(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, 3)
    k2 = Vault(Keyring("k2", {**vault.keyring.keys, "k2": new_key()}))
    keyring.check_keyring(engine, k2)
    report = keys.rotate(engine, k2, actor=ADMIN)
    assert report.rotated == 3 and _kids(engine) == {"k2"}
    assert keys.prove_readable(engine, k2).values_per_kid == {"k2": 6}
    only_k2 = Vault(Keyring("k2", {"k2": k2.keyring.keys["k2"]}))
    keyring.check_keyring(engine, only_k2)  # k1 retired: start-up is fine without it
    for view in connections.list_connections(engine):
        assert connections.load_credentials(engine, only_k2, view.id).client_id.startswith("cclient")


def test_verify_reports_unreadable_rows(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, 2)
    view = connections.list_connections(engine)[0]
    other = connections.list_connections(engine)[1]
    from sqlalchemy import update

    with db.write_session(engine) as session:  # a ciphertext copied from another row
        source = session.get(Connection, other.id)
        session.exec(update(Connection).where(Connection.id == view.id)  # type: ignore[call-overload]
                     .values(client_secret_enc=source.client_secret_enc))
    report = keys.prove_readable(engine, vault)
    assert not report.ok
    assert [(r[0], r[1]) for r in report.unreadable] == [(view.name, "Client Secret")]


def test_rotation_never_overwrites_a_concurrent_edit(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, 120)
    k2 = Vault(Keyring("k2", {**vault.keyring.keys, "k2": new_key()}))
    keyring.check_keyring(engine, k2)
    views = connections.list_connections(engine)
    edited: dict[str, str] = {}
    started = threading.Event()

    def editor() -> None:
        started.wait()
        for view in views[::7]:
            secret = f"edited-{view.name}"
            current = connections.get(engine, view.id)
            connections.update(engine, k2, view.id, connections.input_from_view(
                current, client_secret=SecretStr(secret)), expected_version=current.version, actor=ADMIN)
            edited[str(view.id)] = secret

    thread = threading.Thread(target=editor)
    thread.start()
    started.set()
    keys.rotate(engine, k2, actor=ADMIN, batch=10)
    thread.join()
    keys.rotate(engine, k2, actor=ADMIN)  # anything the race left behind
    assert _kids(engine) == {"k2"}
    for view in views:
        secret = connections.load_credentials(engine, k2, view.id).client_secret.get_secret_value()
        assert secret == edited.get(str(view.id), f"c-secret-{view.name[1:]}")


def _cli_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {**os.environ, "SWITCHBOARD_DATABASE_URL": db_url,
            "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "keyring.json"), "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_rotation_killed_half_way_then_rerun_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'sb.db'}"
    env = _cli_env(tmp_path, url)
    rt = open_runtime(load_settings(env))
    _add(rt.engine, rt.vault, 400)
    expected = {v.id: f"c-secret-{v.name[1:]}" for v in connections.list_connections(rt.engine)}
    subprocess.run([sys.executable, "-m", "lib", "keys", "add"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "lib", "keys", "rotate", "--batch", "5"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if 0 < _count_on(rt.engine, "k2") < 400:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "rotation finished before it could be killed; use more rows"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    half = _count_on(rt.engine, "k2")
    assert 0 < half < 400
    subprocess.run([sys.executable, "-m", "lib", "keys", "rotate"], env=env, check=True, capture_output=True)
    rt2 = open_runtime(load_settings(env))
    assert _kids(rt2.engine) == {"k2"}
    assert {v.id: connections.load_credentials(rt2.engine, rt2.vault, v.id).client_secret.get_secret_value()
            for v in connections.list_connections(rt2.engine)} == expected
    verify = subprocess.run([sys.executable, "-m", "lib", "keys", "verify"], env=env, capture_output=True, check=False, text=True)
    assert verify.returncode == 0 and "k2: 800 values (active)" in verify.stdout


def _count_on(engine: Engine, kid: str) -> int:
    with read_session(engine) as session:
        rows = session.exec(select(Connection.client_secret_enc)).all()
    return sum(1 for value in rows if value.startswith(f"v1.{kid}."))


# --- the keyring file ---------------------------------------------------------------------


def test_first_run_creates_a_private_keyring_file(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json")}
    rt = open_runtime(load_settings(env))
    path = tmp_path / "conf" / "keyring.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert parse_keyring_json(path.read_text(), "f").keys == rt.vault.keyring.keys
    assert open_runtime(load_settings(env)).vault.keyring.keys == rt.vault.keyring.keys  # reused


def test_keyring_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "keyring.json"
    write_keyring_file(path, Keyring("k1", {"k1": new_key()}))
    path.chmod(0o644)
    env = {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(path)}
    with pytest.raises(KeyringError, match="chmod 600"):
        open_runtime(load_settings(env))


def test_keyring_in_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    """Whoever may write the folder may swap the keyring for one of their own."""
    path = tmp_path / "conf" / "keyring.json"
    write_keyring_file(path, Keyring("k1", {"k1": new_key()}))
    env = {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(path)}
    for loose in (0o770, 0o757, 0o1777):
        path.parent.chmod(loose)
        with pytest.raises(KeyringError, match="chmod go-w"):
            open_runtime(load_settings(env))
    path.parent.chmod(0o755)  # readable by others is fine: the file itself is 0600
    open_runtime(load_settings(env))


def test_the_database_and_its_folder_are_created_owner_only(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json")}
    rt = open_runtime(load_settings(env))
    connections.create(rt.engine, rt.vault, ConnectionInput(name="x", client_id="client-id-123",
                                                            client_secret=SecretStr("secret-value-123")), actor=ADMIN)
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = sorted(data.iterdir())
    assert [f.name for f in files] == ["sb.db", "sb.db-shm", "sb.db-wal"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    backup = db.backup(rt.engine, tmp_path / "backups" / "copy.db")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600 and stat.S_IMODE(backup.parent.stat().st_mode) == 0o700


def test_keyring_inside_the_data_folder_is_refused(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "data" / "keyring.json")}
    with pytest.raises(ConfigError, match="inside the data folder"):
        open_runtime(load_settings(env))


def test_inline_keys_win_and_add_is_refused(tmp_path: Path) -> None:
    key = base64.b64encode(new_key()).decode()
    env = {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
           "SWITCHBOARD_KEYS": f"k5:{key}"}
    assert open_runtime(load_settings(env)).vault.active_kid == "k5"
    assert not (tmp_path / "conf" / "keyring.json").exists()
    with pytest.raises(KeyringError, match="SWITCHBOARD_KEYS is set"):
        keyring.add_key(load_settings(env))


def test_malformed_keyring_stops_start_up_and_stores_nothing(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYS": "k1:not-a-key"}
    with pytest.raises(KeyringError, match="SWITCHBOARD_KEYS: key 'k1' is not valid base64"):
        open_runtime(load_settings(env))
    assert not (tmp_path / "data" / "sb.db").exists()
