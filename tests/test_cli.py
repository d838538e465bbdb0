"""The `python -m lib` contract, run as a real subprocess against a real database file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.simulator import SimulatorServer
from lib.store import db
from tests.fixtures.prober import control
from tests.fixtures.storage import Sentinels

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sentinels(simulator: SimulatorServer) -> Sentinels:
    """The simulator's all-products app: sentinel-looking credentials 8x8 accepts."""
    app = simulator.scenario.apps[0]
    return Sentinels(client_id=app.client_id, client_secret=app.client_secret)


@pytest.fixture
def cli(tmp_path: Path, simulator: SimulatorServer):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
           "SWITCHBOARD_8X8_BASE_URL": simulator.url}
    env.pop("SWITCHBOARD_KEYS", None)

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lib", *args], input=stdin, env=env,
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)

    run.tmp_path = tmp_path  # type: ignore[attr-defined]
    return run


def add(cli, s: Sentinels, name: str = "Prod", *extra: str):  # type: ignore[no-untyped-def]
    return cli("connections", "add", "--name", name, "--client-id", s.client_id, "--secret-stdin", *extra,
               stdin=s.client_secret + "\n")


def test_add_list_remove(cli, sentinels: Sentinels) -> None:  # type: ignore[no-untyped-def]
    result = add(cli, sentinels, "Prod", "--products", "cc_chat,cloud_storage", "--chat-region", "eu",
                 "--tenant-id", "t-1", "--environment", "production")
    assert result.returncode == 0, result.stderr
    assert "8x8 issued a token. Saved connection 'Prod'" in result.stdout
    assert "8x8 grants: CC Realtime Analytics, CC Historical Analytics" in result.stdout
    listed = cli("connections", "list", "--json")
    [item] = json.loads(listed.stdout)
    assert item["name"] == "Prod" and item["environment"] == "production"
    assert item["expected_products"] == ["cloud_storage", "cc_chat"]
    assert item["settings"]["chat_region"] == "eu" and item["settings"]["tenant_id"] == "t-1"
    table = cli("connections", "list")
    for output in (listed.stdout + listed.stderr, table.stdout + table.stderr, result.stdout + result.stderr):
        assert sentinels.client_secret not in output and sentinels.client_id not in output
    assert cli("connections", "remove", "prod").returncode == 0
    assert json.loads(cli("connections", "list", "--json").stdout) == []


def test_validation_errors_name_the_option_and_exit_1(cli, sentinels: Sentinels) -> None:  # type: ignore[no-untyped-def]
    result = cli("connections", "add", "--name", "X", "--client-id", "bad:id", "--secret-stdin", stdin="\n")
    assert result.returncode == 1
    assert "--client-id: A Client ID cannot contain ':'" in result.stderr
    assert "--client-secret: Paste the Client Secret" in result.stderr
    assert json.loads(cli("connections", "list", "--json").stdout) == []


def test_duplicate_name_exits_1(cli, sentinels: Sentinels) -> None:  # type: ignore[no-untyped-def]
    assert add(cli, sentinels, "Prod").returncode == 0
    result = add(cli, sentinels, "PROD")
    assert result.returncode == 1 and "--name: Another connection already has this name" in result.stderr


def test_usage_errors_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("connections", "add", "--name", "x").returncode == 2
    assert cli("connections", "add", "--name", "x", "--client-id", "y", "--chat-region", "mars",
               "--secret-stdin", stdin="s\n").returncode == 2
    result = cli("connections", "add", "--name", "x", "--client-id", "y")  # no tty, no --secret-stdin
    assert result.returncode == 2 and "--secret-stdin" in result.stderr


def test_remove_unknown_exits_1(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("connections", "remove", "ghost")
    assert result.returncode == 1 and "No connection is named 'ghost'" in result.stderr


def test_config_errors_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run([sys.executable, "-m", "lib", "connections", "list"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "SWITCHBOARD_KEYS": "k1:no!pe",
                                 "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.returncode == 2 and "SWITCHBOARD_KEYS: key 'k1' is not valid base64" in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_and_db_commands(cli, sentinels: Sentinels) -> None:  # type: ignore[no-untyped-def]
    assert add(cli, sentinels).returncode == 0
    status = cli("keys", "status")
    assert status.returncode == 0 and "k1" in status.stdout
    assert cli("keys", "add").returncode == 0
    rotate = cli("keys", "rotate")
    assert rotate.returncode == 0 and "Rotated 1 connection(s) to key 'k2'" in rotate.stdout
    verify = cli("keys", "verify")
    assert verify.returncode == 0 and "k2: 2 value(s) (active)" in verify.stdout
    upgrade = cli("db", "upgrade")
    assert upgrade.returncode == 0 and f"revision {db.head_revision()}" in upgrade.stdout
    backup = cli("db", "backup", str(cli.tmp_path / "backups" / "b.db"))
    assert backup.returncode == 0 and (cli.tmp_path / "backups" / "b.db").exists()
    stored_keys = json.loads((cli.tmp_path / "conf" / "keyring.json").read_text())["keys"].values()
    for output in (status, rotate, verify, backup):
        assert not any(key in output.stdout + output.stderr for key in stored_keys)


def test_keys_verify_exits_1_on_wrong_key(cli, sentinels: Sentinels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert add(cli, sentinels).returncode == 0
    import base64

    from lib.store.vault import Keyring, new_key, write_keyring_file

    replacement = new_key()
    write_keyring_file(tmp_path / "conf" / "keyring.json", Keyring("k1", {"k1": replacement}))
    result = cli("keys", "verify")
    assert result.returncode == 2 and "Key 'k1' in the keyring is not the key" in result.stderr
    assert base64.b64encode(replacement).decode() not in result.stderr


# --- verify before save -------------------------------------------------------------------


def test_add_with_refused_credentials_saves_nothing(cli, sentinels: Sentinels) -> None:  # type: ignore[no-untyped-def]
    result = cli("connections", "add", "--name", "Bad", "--client-id", sentinels.client_id, "--secret-stdin",
                 stdin="not-the-secret\n")
    assert result.returncode == 1
    assert "8x8 refused these credentials, so nothing was saved" in result.stderr
    assert "Home > API Management" in result.stderr
    assert json.loads(cli("connections", "list", "--json").stdout) == []


def test_add_when_8x8_is_down_needs_no_verify(cli, sentinels: Sentinels, simulator: SimulatorServer) -> None:  # type: ignore[no-untyped-def]
    control(simulator, "POST", "faults", {"route": "token", "status": 503})
    result = add(cli, sentinels, "Later")
    assert result.returncode == 1 and "Could not ask 8x8" in result.stderr
    assert json.loads(cli("connections", "list", "--json").stdout) == []
    result = add(cli, sentinels, "Later", "--no-verify")
    assert result.returncode == 0 and "without verifying; it is untested" in result.stdout
    [item] = json.loads(cli("connections", "list", "--json").stdout)
    assert item["granted_products"] is None


def test_add_warns_about_expected_products_not_granted(cli, simulator: SimulatorServer) -> None:  # type: ignore[no-untyped-def]
    storage = simulator.scenario.apps[2]
    result = cli("connections", "add", "--name", "S", "--client-id", storage.client_id, "--secret-stdin",
                 "--products", "cloud_storage,cc_chat", stdin=storage.client_secret + "\n")
    assert result.returncode == 0
    assert "warning: Contact Center Chat is expected but 8x8 did not grant it" in result.stderr


# --- check --------------------------------------------------------------------------------


def test_check_json_contract_and_exit_codes(cli, sentinels: Sentinels, simulator: SimulatorServer) -> None:  # type: ignore[no-untyped-def]
    assert add(cli, sentinels, "Prod", "--products", "cloud_storage,cc_chat", "--storage-region", "uk",
               "--chat-region", "us", "--tenant-id", "tenant-us-1").returncode == 0
    ok = cli("check", "Prod", "--json")
    assert ok.returncode == 0, ok.stderr
    rows = json.loads(ok.stdout)
    assert [(r["connection"], r["product"], r["outcome"]) for r in rows] == [
        ("Prod", "cloud_storage", "ok"), ("Prod", "cc_chat", "ok")]
    for row in rows:
        assert {"connection", "product", "outcome", "http_status", "duration_ms", "detail", "checked_at"} <= set(row)
        assert row["http_status"] == 200 and isinstance(row["duration_ms"], int)
    control(simulator, "POST", "faults", {"route": "cc_chat", "status": 403})
    failing = cli("check", "--all", "--json")
    assert failing.returncode == 1
    chat = [r for r in json.loads(failing.stdout) if r["product"] == "cc_chat"][0]
    assert chat["outcome"] == "forbidden" and chat["who_must_act"] == "8x8 admin (Admin Console)"
    only = cli("check", "Prod", "--product", "cloud_storage", "--json")
    assert [r["product"] for r in json.loads(only.stdout)] == ["cloud_storage"] and only.returncode == 0
    for output in (ok, failing, only):
        assert sentinels.client_secret not in output.stdout + output.stderr


def test_check_table_has_no_colour_when_not_a_tty(cli, sentinels: Sentinels) -> None:  # type: ignore[no-untyped-def]
    assert add(cli, sentinels, "Prod", "--products", "quality_management").returncode == 0
    result = cli("check", "--all")
    assert result.returncode == 1  # missing settings are not ok
    assert "Setting missing" in result.stdout and "Switchboard admin" in result.stdout
    assert "\x1b[" not in result.stdout


@pytest.mark.parametrize("args", [(), ("Prod", "--all"), ("Ghost",), ("Prod", "--product", "voice")])
def test_check_usage_errors_exit_2(cli, sentinels: Sentinels, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    assert add(cli, sentinels, "Prod").returncode == 0
    assert cli("check", *args).returncode == 2
