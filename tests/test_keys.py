"""The keyring against the data: fail-closed start-up, rotation, verification (checklist 6-9)."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import SQLModel, select

from lib.kernel.config import load_settings
from lib.kernel.errors import ConfigError, KeyringError
from lib.services import connections
from lib.services.alerts import channels
from lib.services.connections import ConnectionInput, keys
from lib.services.runtime import open_runtime
from lib.simulator import SimulatorServer
from lib.store import db, keyring
from lib.store.db import read_session
from lib.store.models import AlertChannel, Connection
from lib.store.vault import Keyring, Vault, new_key, parse_keyring_json, write_keyring_file
from tests.fixtures.alerts import WEBHOOK_SECRET, Receiver
from tests.fixtures.notify import LOCAL
from tests.fixtures.people import ADMIN
from tests.fixtures.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent


def _add(engine: Engine, vault: Vault, n: int, prefix: str = "c") -> None:
    for i in range(n):
        connections.create(
            engine,
            vault,
            ConnectionInput(
                name=f"{prefix}{i}", client_id=f"{prefix}client{i}", client_secret=SecretStr(f"{prefix}-secret-{i}")
            ),
            actor=ADMIN,
        )


def _kids(engine: Engine) -> set[str]:
    with read_session(engine) as session:
        rows = session.exec(select(Connection.client_id_enc, Connection.client_secret_enc)).all()
    return {value.split(".")[1] for row in rows for value in row}


def _no_key_material(message: str, *keyrings: Keyring) -> bool:
    return not any(
        base64.b64encode(k).decode() in message or k.hex() in message for ring in keyrings for k in ring.keys.values()
    )


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
        session.exec(
            update(Connection)
            .where(Connection.id == view.id)  # type: ignore[call-overload]
            .values(client_secret_enc=source.client_secret_enc)
        )
    report = keys.prove_readable(engine, vault)
    assert not report.ok
    assert [(r.row_name, r.column.label, r.column.name) for r in report.unreadable] == [
        (view.name, "Client Secret", "connection.client_secret_enc")
    ]


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
            connections.update(
                engine,
                k2,
                view.id,
                connections.input_from_view(current, client_secret=SecretStr(secret)),
                expected_version=current.version,
                actor=ADMIN,
            )
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
    return {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": db_url,
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "keyring.json"),
        "PYTHONPATH": str(ROOT),
    }


@pytest.mark.slow
def test_rotation_killed_half_way_then_rerun_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'sb.db'}"
    env = _cli_env(tmp_path, url)
    rt = open_runtime(load_settings(env), create=True)
    _add(rt.engine, rt.vault, 400)
    expected = {v.id: f"c-secret-{v.name[1:]}" for v in connections.list_connections(rt.engine)}
    subprocess.run([sys.executable, "-m", "lib", "keys", "add"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib", "keys", "rotate", "--batch", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    eventually(
        lambda: proc.poll() is not None or 0 < _count_on(rt.engine, "k2") < 400,
        timeout_s=60,
        what="the rotation to be part way through",
    )
    assert proc.poll() is None, "rotation finished before it could be killed; use more rows"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    half = _count_on(rt.engine, "k2")
    assert 0 < half < 400
    subprocess.run([sys.executable, "-m", "lib", "keys", "rotate"], env=env, check=True, capture_output=True)
    rt2 = open_runtime(load_settings(env))
    assert _kids(rt2.engine) == {"k2"}
    assert {
        v.id: connections.load_credentials(rt2.engine, rt2.vault, v.id).client_secret.get_secret_value()
        for v in connections.list_connections(rt2.engine)
    } == expected
    verify = subprocess.run(
        [sys.executable, "-m", "lib", "keys", "verify"], env=env, capture_output=True, check=False, text=True
    )
    assert verify.returncode == 0 and "k2: 800 values (active)" in verify.stdout


def _count_on(engine: Engine, kid: str) -> int:
    with read_session(engine) as session:
        rows = session.exec(select(Connection.client_secret_enc)).all()
    return sum(1 for value in rows if value.startswith(f"v1.{kid}."))


# --- the keyring file ---------------------------------------------------------------------


def test_first_run_creates_a_private_keyring_file(tmp_path: Path) -> None:
    env = {
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
    }
    rt = open_runtime(load_settings(env), create=True)  # the server's first start
    path = tmp_path / "conf" / "keyring.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert parse_keyring_json(path.read_text(), "f").keys == rt.vault.keyring.keys
    assert open_runtime(load_settings(env)).vault.keyring.keys == rt.vault.keyring.keys  # reused


def test_keyring_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "keyring.json"
    write_keyring_file(path, Keyring("k1", {"k1": new_key()}))
    path.chmod(0o644)
    env = {
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(path),
    }
    with pytest.raises(KeyringError, match="chmod 600"):
        open_runtime(load_settings(env), create=True)


def test_keyring_in_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    """Whoever may write the folder may swap the keyring for one of their own."""
    path = tmp_path / "conf" / "keyring.json"
    write_keyring_file(path, Keyring("k1", {"k1": new_key()}))
    env = {
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(path),
    }
    for loose in (0o770, 0o757, 0o1777):
        path.parent.chmod(loose)
        with pytest.raises(KeyringError, match="chmod go-w"):
            open_runtime(load_settings(env), create=True)
    path.parent.chmod(0o755)  # readable by others is fine: the file itself is 0600
    open_runtime(load_settings(env), create=True)


def test_the_database_and_its_folder_are_created_owner_only(tmp_path: Path) -> None:
    env = {
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
    }
    rt = open_runtime(load_settings(env), create=True)
    connections.create(
        rt.engine,
        rt.vault,
        ConnectionInput(name="x", client_id="client-id-123", client_secret=SecretStr("secret-value-123")),
        actor=ADMIN,
    )
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = sorted(data.iterdir())
    assert [f.name for f in files] == ["sb.db", "sb.db-shm", "sb.db-wal"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    backup = db.backup(rt.engine, tmp_path / "backups" / "copy.db")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600 and stat.S_IMODE(backup.parent.stat().st_mode) == 0o700


def test_keyring_inside_the_data_folder_is_refused(tmp_path: Path) -> None:
    env = {
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "data" / "keyring.json"),
    }
    for create in (False, True):
        with pytest.raises(ConfigError, match="inside the data folder"):
            open_runtime(load_settings(env), create=create)
    assert not (tmp_path / "data").exists()


def test_inline_keys_win_and_add_is_refused(tmp_path: Path) -> None:
    key = base64.b64encode(new_key()).decode()
    env = {
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
        "SWITCHBOARD_KEYS": f"k5:{key}",
    }
    assert open_runtime(load_settings(env), create=True).vault.active_kid == "k5"
    assert not (tmp_path / "conf" / "keyring.json").exists()
    with pytest.raises(KeyringError, match="SWITCHBOARD_KEYS is set"):
        keyring.add_key(load_settings(env))


def test_malformed_keyring_stops_start_up_and_stores_nothing(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}", "SWITCHBOARD_KEYS": "k1:not-a-key"}
    for create in (False, True):
        with pytest.raises(KeyringError, match="SWITCHBOARD_KEYS: key 'k1' is not valid base64"):
            open_runtime(load_settings(env), create=create)
    assert not (tmp_path / "data" / "sb.db").exists()


# --- every encrypted column: alert channels as well as connections (issue 21, item 8) --------


def test_every_encrypted_column_of_the_models_is_in_the_registry() -> None:
    """Derived from the models' metadata: a new ``*_enc`` column fails here until it is listed,
    and with it covered by key status, rotation, verify and the start-up check."""
    in_models = {
        (table.name, column.name)
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("_enc")
    }
    registered = [(c.table, c.column) for c in keyring.ENCRYPTED_COLUMNS]
    assert len(registered) == len(set(registered))
    assert set(registered) == in_models
    assert {("connection", "client_id_enc"), ("alert_channel", "url_enc")} <= in_models  # the metadata is loaded


def test_the_registry_binds_values_as_the_services_that_write_them() -> None:
    row_id = uuid.uuid4()
    by_column = {c.name: c.binding(row_id) for c in keyring.ENCRYPTED_COLUMNS}
    assert by_column == {
        "connection.client_id_enc": keyring.credential_binding(row_id, "client_id_enc"),
        "connection.client_secret_enc": keyring.credential_binding(row_id, "client_secret_enc"),
        "alert_channel.url_enc": channels.binding(row_id, "url_enc"),
        "alert_channel.secret_enc": channels.binding(row_id, "secret_enc"),
    }


def _add_channel(
    engine: Engine, vault: Vault, name: str = "Ops hook", url: str = "http://127.0.0.1:9/hook", kind: str = "webhook"
) -> None:
    channels.add(
        engine,
        vault,
        name,
        kind,
        SecretStr(url),
        actor=ADMIN,
        allow=LOCAL,
        secret=SecretStr(WEBHOOK_SECRET) if kind == "webhook" else None,
    )


def _channel_kids(engine: Engine) -> set[str]:
    with read_session(engine) as session:
        rows = session.exec(select(AlertChannel.url_enc, AlertChannel.secret_enc)).all()
    return {value.split(".")[1] for row in rows for value in row if value}


def test_status_rotation_verify_and_start_up_cover_alert_channels(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, 1)
    _add_channel(engine, vault)
    _add_channel(
        engine, vault, "Mail", "smtp://127.0.0.1:25?from=a@example.com&to=b@example.com", kind="email"
    )  # no password: its secret_enc is NULL
    [k1] = keys.key_status(engine, vault)
    assert k1.uses == (
        ("connection.client_id_enc", 1),
        ("connection.client_secret_enc", 1),
        ("alert_channel.url_enc", 2),
        ("alert_channel.secret_enc", 1),
    )
    k2 = Vault(Keyring("k2", {**vault.keyring.keys, "k2": new_key()}))
    keyring.check_keyring(engine, k2)
    before = keys.prove_readable(engine, k2)
    assert not before.ok and before.on_other_keys == {"k1": k1.uses} and not before.unreadable
    report = keys.rotate(engine, k2, actor=ADMIN)
    assert (report.rotated, dict(report.per_owner)) == (3, {"connection": 1, "alert channel": 2})
    assert _kids(engine) == _channel_kids(engine) == {"k2"}
    assert [(s.kid, s.values) for s in keys.key_status(engine, k2)] == [("k1", 0), ("k2", 5)]
    assert keys.prove_readable(engine, k2).ok
    only_k2 = Vault(Keyring("k2", {"k2": k2.keyring.keys["k2"]}))
    keyring.check_keyring(engine, only_k2)  # k1 retired
    with read_session(engine) as session:
        row = session.exec(select(AlertChannel).where(AlertChannel.name == "Ops hook")).one()
    assert channels.destination(only_k2, row).secret == WEBHOOK_SECRET


def test_start_up_refuses_a_missing_key_that_only_a_channel_still_uses(engine: Engine, vault: Vault) -> None:
    _add_channel(engine, vault)
    other = Vault(Keyring("k2", {"k2": new_key()}))
    with pytest.raises(KeyringError, match=r"Key 'k1' is missing .* 1 stored alert channel is encrypted with it"):
        keyring.check_keyring(engine, other)


def test_one_unreadable_value_does_not_stop_the_rotation(engine: Engine, vault: Vault) -> None:
    _add_channel(engine, vault, "Damaged")
    _add_channel(engine, vault, "Fine")
    _add(engine, vault, 2)
    with db.write_session(engine) as session:  # a value copied from another row: it cannot decrypt here
        fine = session.exec(select(AlertChannel).where(AlertChannel.name == "Fine")).one()
        damaged = session.exec(select(AlertChannel).where(AlertChannel.name == "Damaged")).one()
        damaged.url_enc = fine.url_enc
    k2 = Vault(Keyring("k2", {**vault.keyring.keys, "k2": new_key()}))
    keyring.check_keyring(engine, k2)
    report = keys.rotate(engine, k2, actor=ADMIN)
    assert (report.rotated, report.unreadable) == (3, 1)
    assert _kids(engine) == {"k2"}
    verified = keys.prove_readable(engine, k2)
    assert [(u.row_name, u.column.name) for u in verified.unreadable] == [("Damaged", "alert_channel.url_enc")]


# --- the README's rotation procedure, through the real CLI ------------------------------------


@pytest.fixture
def shell_env(tmp_path: Path, simulator: SimulatorServer) -> dict[str, str]:
    """A new install made as `make run` makes it (`db upgrade`, then the keyring), with a real
    SQLite file, the simulator as 8x8 and 127.0.0.1 allowed for alert channels."""
    env = {
        **_cli_env(tmp_path, f"sqlite:///{tmp_path / 'data' / 'sb.db'}"),
        "HOME": str(tmp_path / "home"),
        "SWITCHBOARD_8X8_BASE_URL": simulator.url,
        "SWITCHBOARD_ALERT_ALLOW": "127.0.0.1",
    }
    env.pop("SWITCHBOARD_KEYS", None)
    assert _switchboard(env, "db", "upgrade").returncode == 0
    assert _switchboard(env, "keys", "add").stdout == "Made a new keyring with key 'k1'.\n"
    return env


def _switchboard(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lib", *args],
        env=env,
        input=stdin,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _seed(env: dict[str, str], simulator: SimulatorServer, receiver: Receiver) -> None:
    """A connection the simulator accepts and a webhook channel to the receiver, under k1."""
    app = simulator.scenario.apps[0]
    added = _switchboard(
        env,
        "connections",
        "add",
        "--name",
        "Prod",
        "--client-id",
        app.client_id,
        "--secret-stdin",
        "--products",
        "cloud_storage",
        "--storage-region",
        app.storage_regions[0],
        stdin=app.client_secret + "\n",
    )
    assert added.returncode == 0, added.stderr
    hook = _switchboard(
        env,
        "channels",
        "add",
        "--name",
        "Ops hook",
        "--kind",
        "webhook",
        "--url",
        f"{receiver.url}/hooks/ops",
        "--secret-stdin",
        stdin=WEBHOOK_SECRET + "\n",
    )
    assert hook.returncode == 0, hook.stderr


def _status(env: dict[str, str]) -> dict[str, list[str]]:
    shown = _switchboard(env, "keys", "status")
    assert shown.returncode == 0, shown.stderr
    return {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()[1:]}


def test_the_readme_rotation_then_removing_the_old_key_keeps_channels_and_checks_working(
    shell_env: dict[str, str], simulator: SimulatorServer, receiver: Receiver, tmp_path: Path
) -> None:
    env = shell_env
    _seed(env, simulator, receiver)
    # README, "Rotating the encryption key": add, (back up), rotate, verify, status.
    assert _switchboard(env, "keys", "add").returncode == 0
    rotated = _switchboard(env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout == "Rotated 1 connection and 1 alert channel to key 'k2'.\n"
    verified = _switchboard(env, "keys", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.splitlines()[0] == (
        "k2: 4 values (active): connection.client_id_enc 1, "
        "connection.client_secret_enc 1, alert_channel.url_enc 1, "
        "alert_channel.secret_enc 1"
    )
    status = _status(env)
    assert status["k1"] == ["yes", "0"] and status["k2"][:3] == ["yes", "yes", "4"]
    # "When keys status shows no values on the old key, remove it from the keyring."
    path = Path(env["SWITCHBOARD_KEYRING_FILE"])
    ring = parse_keyring_json(path.read_text(), str(path))
    write_keyring_file(path, Keyring("k2", {"k2": ring.keys["k2"]}))
    assert _status(env)["k1"] == ["NO", "0"]
    sent = _switchboard(env, "channels", "test", "Ops hook")
    assert sent.returncode == 0 and "Delivered" in sent.stdout, sent.stdout + sent.stderr
    assert receiver.kinds() == ["channel.test"]  # signed with the secret, which decrypted under k2
    assert receiver.received[0].path == "/hooks/ops"  # and sent to the URL, which did too
    checked = _switchboard(env, "check", "Prod", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [r["outcome"] for r in json.loads(checked.stdout)] == ["ok"]
    assert _switchboard(env, "keys", "verify").returncode == 0


def test_verify_fails_while_a_channel_still_has_a_value_on_the_old_key(
    shell_env: dict[str, str], simulator: SimulatorServer, receiver: Receiver
) -> None:
    """An instance still running with the old keyring (k1 active) adds a channel after the
    rotation: verify must say the old key is still needed, and where, before anyone removes it."""
    env = shell_env
    _seed(env, simulator, receiver)
    stale = open_runtime(load_settings(env))  # started before the new key: its keyring is k1 alone
    assert _switchboard(env, "keys", "add").returncode == 0
    assert _switchboard(env, "keys", "rotate").returncode == 0
    _add_channel(stale.engine, stale.vault, "Late hook", f"{receiver.url}/late")
    stale.engine.dispose()
    verified = _switchboard(env, "keys", "verify")
    assert verified.returncode == 1
    assert (
        "still on key 'k1', not the active key 'k2': alert_channel.url_enc 1, alert_channel.secret_enc 1."
        in verified.stderr
    ), verified.stderr
    assert "keys rotate" in verified.stderr and "All stored values decrypt" not in verified.stdout
    assert _status(env)["k1"] == ["yes", "2", "alert_channel.url_enc", "1,", "alert_channel.secret_enc", "1"]
    assert _switchboard(env, "keys", "rotate").stdout == "Rotated 1 alert channel to key 'k2'.\n"
    assert _switchboard(env, "keys", "verify").returncode == 0
