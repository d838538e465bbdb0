"""The audit trail: every sign-in and sign-out, change, test run, export, key operation and
user change writes exactly one row with the right fields, and no row ever holds a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import insert

from lib.kernel.errors import ValidationError
from lib.services import connections
from lib.services.accounts import sessions, users
from lib.services.checking import checks
from lib.services.connections import keys, linking
from lib.services.guard import audit
from lib.services.guard.access import NotAllowed, Principal, Role
from lib.services.reporting import export
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import write_session
from lib.store.models import AuditEvent, utcnow
from lib.store.vault import Keyring, Vault, new_key
from tests.fixtures.console import PageOpener
from tests.fixtures.people import ADMIN, admin, web
from tests.fixtures.prober import ProberFactory
from tests.test_checks import form_for
from tests.test_cli import new_install

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = SecretStr("cobalt lantern orchard 42")


def rows(rt: Runtime) -> list[tuple[str, str | None, str, str, str]]:
    return [(e.actor, e.client_address, e.action, e.target, e.result) for e in audit.events(rt.engine, ADMIN)]


def test_every_action_writes_exactly_one_row(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    """Item 7 of the issue, action by action: one new row each, naming who, from where, what,
    which target and the result; and no row anywhere holds a sentinel secret."""
    app = simulator.scenario.apps[0]
    prober = prober_factory(simulator.url)
    engine = runtime.engine
    seen = 0

    def step(expected: tuple[str, str | None, str, str, str]) -> None:
        nonlocal seen
        now = rows(runtime)
        assert len(now) == seen + 1, now[seen:]
        assert now[-1] == expected
        seen += 1

    users.add(engine, "keeper", PASSWORD, "admin", actor=admin("root", "10.0.0.1"))
    step(("root", "10.0.0.1", "user.add", "keeper", "ok"))
    ann = users.add(engine, "ann", PASSWORD, "admin", actor=admin("root", "10.0.0.1"))
    step(("root", "10.0.0.1", "user.add", "ann", "ok"))
    with pytest.raises(users.SignInFailed):
        users.authenticate(engine, "ann", SecretStr("not her password!"), address="10.0.0.2")
    step(("anonymous", "10.0.0.2", "sign_in", "ann", "refused"))
    users.authenticate(engine, "ann", PASSWORD, address="10.0.0.2")
    assert len(rows(runtime)) == seen  # a good password alone is not a sign-in: the session is
    ann_web = Principal(ann.username, ann.role, "10.0.0.2", "local")
    token = sessions.new_token()
    sessions.start(engine, sessions.Key.of(token), ann_web)
    step(("ann", "10.0.0.2", "sign_in", "ann", "ok"))
    with pytest.raises(users.SignInFailed):  # the signed-in person mistypes the password again
        users.authenticate(
            engine, "ann", SecretStr("not her password!"), address="10.0.0.2", action=users.REAUTHENTICATE
        )
    step(("ann", "10.0.0.2", "reauthenticate", "ann", "refused"))
    assert audit.events(engine, ADMIN)[-1].detail == "wrong password"
    sessions.mark_reauthenticated(engine, sessions.Key.of(token), ann_web)
    step(("ann", "10.0.0.2", "reauthenticate", "ann", "ok"))
    view, _ = linking.save(
        runtime, prober, form_for(app, "Prod", expected_products=("cloud_storage",)), actor=admin("bob")
    )
    step(("bob", "10.0.0.9", "connection.create", "Prod", "ok"))
    view = connections.update(
        engine,
        runtime.vault,
        view.id,
        connections.input_from_view(view, client_secret=SecretStr(app.client_secret)),
        expected_version=view.version,
        actor=admin("cy"),
    )
    step(("cy", "10.0.0.9", "connection.update", "Prod", "ok"))
    assert "replaced: secret" in audit.events(engine, ADMIN)[-1].detail
    checks.run_checks(runtime, prober, connection_ids=[view.id], product="cloud_storage", triggered_by=admin("dee"))
    step(("dee", "10.0.0.9", "check.run", "Prod / cloud_storage", "ok"))
    checks.run_checks(runtime, prober, triggered_by=admin("dee"))
    step(("dee", "10.0.0.9", "check.run", "Prod", "ok"))
    assert audit.events(engine, ADMIN)[-1].detail.startswith("1 OK, 0 failing (run ")
    exported = export.export(engine, "json", actor=admin("eve"))
    step(("eve", "10.0.0.9", "export", exported.file_name, "ok"))
    with pytest.raises(linking.TokenRefused):
        linking.save(runtime, prober, form_for(app, "Bad", client_secret=SecretStr("wrong-one")), actor=admin("eve"))
    step(("eve", "10.0.0.9", "connection.verify", "Bad", "refused"))
    connections.delete(engine, view.id, actor=admin("fay"))
    step(("fay", "10.0.0.9", "connection.delete", "Prod", "ok"))
    k2 = Vault(Keyring("k2", {**runtime.vault.keyring.keys, "k2": new_key()}))
    keys.rotate(engine, k2, actor=admin("gus"))
    step(("gus", "10.0.0.9", "keys.rotate", "k2", "ok"))
    users.set_role(engine, "ann", "operator", actor=admin("root"))
    step(("root", "10.0.0.9", "user.set_role", "ann", "ok"))
    users.reset_password(engine, "ann", SecretStr("another long passphrase 7"), actor=admin("root"))
    step(("root", "10.0.0.9", "user.reset_password", "ann", "ok"))
    users.add(engine, "bea", PASSWORD, "viewer", actor=admin("root"))
    step(("root", "10.0.0.9", "user.add", "bea", "ok"))
    bea = Principal("bea", Role.VIEWER, "10.0.0.3", "local")
    bea_token = sessions.new_token()
    sessions.start(engine, sessions.Key.of(bea_token), bea)
    step(("bea", "10.0.0.3", "sign_in", "bea", "ok"))
    sessions.end(engine, sessions.Key.of(bea_token), bea)
    step(("bea", "10.0.0.3", "sign_out", "bea", "ok"))
    users.remove(engine, "ann", actor=admin("root"))
    step(("root", "10.0.0.9", "user.remove", "ann", "ok"))
    audit.export_csv(engine, admin("root"), audit.events(engine, ADMIN), "audit.csv")
    step(("root", "10.0.0.9", "audit.export", "audit.csv", "ok"))
    sentinels = [
        app.client_secret,
        app.client_id,
        "wrong-one",
        PASSWORD.get_secret_value(),
        "not her password!",
        "another long passphrase 7",
        token,
        bea_token,
    ]
    for event in audit.events(engine, ADMIN):
        assert event.at is not None and event.at.tzinfo is not None
        text = json.dumps(event.model_dump(), default=str)
        assert not [s for s in sentinels if s in text], text
        assert "v1.k" not in text


def test_reading_the_trail_is_for_admins(runtime: Runtime) -> None:
    for who in (web(runtime.engine, "olga", "operator"), web(runtime.engine, "vic", "viewer")):
        with pytest.raises(NotAllowed):
            audit.events(runtime.engine, who)
        with pytest.raises(NotAllowed):
            audit.export_csv(runtime.engine, who, [], "x.csv")


def test_csv_cells_never_start_a_formula(runtime: Runtime, simulator: SimulatorServer) -> None:
    app = simulator.scenario.apps[0]
    connections.create(runtime.engine, runtime.vault, form_for(app, "=HYPERLINK(1)"), actor=ADMIN)
    text = audit.to_csv(audit.events(runtime.engine, ADMIN)).decode()
    assert ",'=HYPERLINK(1)," in text and text.splitlines()[0] == ",".join(audit.COLUMNS)


def test_the_audit_pages_csv_holds_the_newest_rows_up_to_its_limit_and_the_button_says_so(
    console_env: Runtime, open_page: PageOpener
) -> None:
    engine, now = console_env.engine, utcnow()
    with write_session(engine) as session:  # one row more than a download holds, in one statement
        session.connection().execute(
            insert(AuditEvent),
            [
                {
                    "at": now - timedelta(seconds=n),
                    "actor": "ann",
                    "action": "test.row",
                    "target": str(n - 1),
                    "result": audit.OK,
                    "detail": "",
                }
                for n in range(1, audit.EXPORT_LIMIT + 2)
            ],
        )
    at = open_page("pages/audit.py")
    which = audit.Filter(since=now - timedelta(days=8))  # every row, as the page's default week selects
    total = audit.page(engine, ADMIN, which).total  # the rows written, and the sign-in
    assert total > audit.EXPORT_LIMIT
    labels = [button.label for button in at.get("download_button")]
    assert labels == [f"Download CSV (newest {audit.EXPORT_LIMIT:,} of {total:,} rows)"]
    held = audit.events(engine, ADMIN, which)  # what the button's file is made of, when clicked
    assert len(held) == audit.EXPORT_LIMIT and held == sorted(held, key=lambda row: (row.at, row.id))
    assert str(audit.EXPORT_LIMIT) not in {row.target for row in held}  # the oldest row written is left out
    assert "0" in {row.target for row in held} and held[-1].action == "sign_in"


def test_a_failed_change_leaves_no_audit_row(runtime: Runtime, simulator: SimulatorServer) -> None:
    app = simulator.scenario.apps[0]
    connections.create(runtime.engine, runtime.vault, form_for(app, "Prod"), actor=ADMIN)
    with pytest.raises(ValidationError, match="already has this name"):
        connections.create(runtime.engine, runtime.vault, form_for(app, "PROD"), actor=ADMIN)
    assert [r[2] for r in rows(runtime)] == ["connection.create"]


def test_cli_writes_audit_rows_with_the_os_user(tmp_path: Path, simulator: SimulatorServer) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_8X8_BASE_URL": simulator.url,
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
    }
    new_install(env)
    app = simulator.scenario.apps[0]
    run = lambda *a, stdin="": subprocess.run(
        [sys.executable, "-m", "lib", *a], input=stdin, env=env, capture_output=True, text=True, check=False
    )
    assert (
        run(
            "connections",
            "add",
            "--name",
            "P",
            "--client-id",
            app.client_id,
            "--secret-stdin",
            stdin=app.client_secret + "\n",
        ).returncode
        == 0
    )
    assert run("keys", "add").returncode == 0
    assert run("connections", "remove", "P").returncode == 0
    listed = run("audit", "--json")
    assert listed.returncode == 0
    events = json.loads(listed.stdout)
    assert [e["action"] for e in events] == ["connection.delete", "keys.add", "connection.create"]  # newest first
    assert all(e["actor"].startswith("cli:") for e in events)
    assert all(list(e) == list(AuditEvent.model_fields) for e in events)  # one key order, whatever the hash seed
    assert listed.stderr.strip() == "Showing 1–3 of 3 events, newest first."
    first = run("audit", "--json", "--limit", "2")  # a page at a time, the next one named
    assert [e["action"] for e in json.loads(first.stdout)] == ["connection.delete", "keys.add"]
    cursor = json.loads(first.stdout)[-1]["id"]
    assert first.stderr.strip() == f"Showing 1–2 of 3 events, newest first. Older ones: add --before {cursor}."
    rest = run("audit", "--limit", "2", "--before", str(cursor))
    assert "connection.create" in rest.stdout and "keys.add" not in rest.stdout
    assert rest.stderr.strip() == "Showing 3–3 of 3 events, newest first."
    assert run("audit", "--limit", "0").returncode == 2
    assert run("audit", "--since", "2999-01-01").stdout.strip() in ("", "[]", "No audit events.")
    assert run("audit", "--since", "not-a-date").returncode == 2
    assert [e["action"] for e in json.loads(run("audit", "--since", "10m", "--json").stdout)] == [
        e["action"] for e in events
    ]  # a span back from now
