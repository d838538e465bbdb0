"""The audit trail: every change, test run, export and key operation writes exactly one row
with the right fields, and no row ever holds a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from lib import audit, checks, connections, export, keys, verify
from lib.errors import ValidationError
from lib.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.vault import Keyring, Vault, new_key
from tests.fixtures.prober import ProberFactory
from tests.test_checks import form_for

ROOT = Path(__file__).resolve().parent.parent


def rows(rt: Runtime) -> list[tuple[str, str, str, str]]:
    return [(e.actor, e.action, e.target, e.result) for e in audit.events(rt.engine)]


def test_each_action_writes_exactly_one_row(runtime: Runtime, simulator: SimulatorServer,
                                            prober_factory: ProberFactory) -> None:
    app = simulator.scenario.apps[0]
    prober = prober_factory(simulator.url)
    view, _ = verify.save(runtime, prober, form_for(app, "Prod", expected_products=("cloud_storage",)), actor="ann")
    assert rows(runtime) == [("ann", "connection.create", "Prod", "ok")]
    view = connections.update(runtime.engine, runtime.vault, view.id, connections.input_from_view(
        view, client_secret=SecretStr(app.client_secret)), expected_version=view.version, actor="bob")
    assert rows(runtime)[-1] == ("bob", "connection.update", "Prod", "ok")
    assert "replaced: secret" in audit.events(runtime.engine)[-1].detail
    checks.run_checks(runtime, prober, triggered_by="cy")
    assert rows(runtime)[-1] == ("cy", "check.run", "Prod", "ok")
    export.export(runtime.engine, "json", actor="dee")
    assert rows(runtime)[-1][:2] == ("dee", "export") and rows(runtime)[-1][2].endswith(".json")
    with pytest.raises(verify.VerificationFailed):
        verify.save(runtime, prober, form_for(app, "Bad", client_secret=SecretStr("wrong-one")), actor="eve")
    assert rows(runtime)[-1] == ("eve", "connection.verify", "Bad", "refused")
    connections.delete(runtime.engine, view.id, actor="fay")
    assert rows(runtime)[-1] == ("fay", "connection.delete", "Prod", "ok")
    k2 = Vault(Keyring("k2", {**runtime.vault.keyring.keys, "k2": new_key()}))
    keys.rotate(runtime.engine, k2, actor="gus")
    assert rows(runtime)[-1] == ("gus", "keys.rotate", "k2", "ok")
    assert len(rows(runtime)) == 7
    for event in audit.events(runtime.engine):
        assert event.at is not None and event.at.tzinfo is not None
        text = json.dumps(event.model_dump(), default=str)
        assert app.client_secret not in text and app.client_id not in text and "wrong-one" not in text
        assert "v1.k" not in text


def test_a_failed_change_leaves_no_audit_row(runtime: Runtime, simulator: SimulatorServer) -> None:
    app = simulator.scenario.apps[0]
    connections.create(runtime.engine, runtime.vault, form_for(app, "Prod"), actor="ann")
    with pytest.raises(ValidationError, match="already has this name"):
        connections.create(runtime.engine, runtime.vault, form_for(app, "PROD"), actor="ann")
    assert [r[1] for r in rows(runtime)] == ["connection.create"]


def test_cli_writes_audit_rows_with_the_os_user(tmp_path: Path, simulator: SimulatorServer) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SWITCHBOARD_8X8_BASE_URL": simulator.url,
           "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json")}
    app = simulator.scenario.apps[0]
    run = lambda *a, stdin="": subprocess.run([sys.executable, "-m", "lib", *a], input=stdin, env=env,  # noqa: E731
                                              capture_output=True, text=True, check=False)
    assert run("connections", "add", "--name", "P", "--client-id", app.client_id, "--secret-stdin",
               stdin=app.client_secret + "\n").returncode == 0
    assert run("keys", "add").returncode == 0
    assert run("connections", "remove", "P").returncode == 0
    listed = run("audit", "--json")
    assert listed.returncode == 0
    events = json.loads(listed.stdout)
    assert [e["action"] for e in events] == ["connection.create", "keys.add", "connection.delete"]
    assert all(e["actor"].startswith("cli:") for e in events)
    assert run("audit", "--since", "2999-01-01").stdout.strip() in ("", "[]", "No audit events.")
    assert run("audit", "--since", "not-a-date").returncode == 2
