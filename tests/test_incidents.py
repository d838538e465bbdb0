"""Open problems and acknowledging them (issue 25): what fails now, since when, who was told and
when, the next reminder; an acknowledgement stops reminders until the episode recovers or fails
another way, is decided when it is made (role and episode), audited, told to the channels that
heard of the failure (PagerDuty: acknowledge, under the trigger's dedup key) and given once.
Check results are stored as checks store them, so the rules run in their transaction; delivery
goes to real receivers on 127.0.0.1; real SQLite file (and PostgreSQL where the fixtures offer it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlmodel import select

from lib.kernel.config import load_settings
from lib.kernel.errors import NotFoundError, ValidationError
from lib.services import alerts
from lib.services.accounts import users
from lib.services.alerts import channels, delivery, incidents
from lib.services.alerts.incidents import ENDED, Told
from lib.services.alerts.windows import Window
from lib.services.checking import checks
from lib.services.connections import ConnectionView
from lib.services.guard import audit
from lib.services.guard.access import NotAllowed, Role
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime, open_runtime
from lib.store.db import read_session, write_session
from lib.store.models import AlertState, AuditEvent
from tests.fixtures.alerts import Receiver, local_send
from tests.fixtures.console import ACCESS, PageOpener
from tests.fixtures.notify import LOCAL
from tests.fixtures.people import ADMIN, web
from tests.fixtures.receiver import Answer
from tests.fixtures.receiver import Receiver as PlainReceiver
from tests.test_alerts import app, channel, connect, outbox_rows
from tests.test_cli import cli  # noqa: F401 (the fixture)
from tests.test_monitoring_console import MONITORING, tables, texts
from tests.test_notify_pagerduty import ENQUEUE, integration_key, messages

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CHECKS = ["check.failed", "check.recovered", "check.still_failing"]  # not secret.aging: T0 is years on


def stored(rt: Runtime, view: ConnectionView, outcome: str, at: datetime, product: str = "cc_chat") -> None:
    """A check result stored as a check stores it, at ``at``: the rules run in its transaction."""
    with write_session(rt.engine) as session:
        checks.store(
            session,
            [CheckRecord(view.id, view.name, product, outcome, 200 if outcome == "ok" else 401, 5, "", at, "r")],
            {},
            "test",
        )


def failing(rt: Runtime, view: ConnectionView, at: datetime = T0, outcome: str = "bad_credentials") -> None:
    """Two failures a minute apart: check.failed for the episode that began at ``at``."""
    stored(rt, view, outcome, at)
    stored(rt, view, outcome, at + timedelta(minutes=1))


def tick(rt: Runtime, at: datetime) -> None:
    alerts.tick(rt, worker="w", send=local_send, now=lambda: at)


def state(rt: Runtime) -> AlertState:
    with read_session(rt.engine) as session:
        return session.exec(select(AlertState).where(AlertState.subject == "cc_chat")).one()


def the_incident(rt: Runtime, at: datetime = T0) -> incidents.Incident:
    [found] = incidents.open_incidents(rt.engine, actor=ADMIN, now=at)
    return found


def acks(rt: Runtime) -> list[AuditEvent]:
    return [e for e in audit.events(rt.engine, ADMIN) if e.action == "incident.ack"]


# --- what is open -----------------------------------------------------------------------------------


def test_open_problems_say_since_when_who_was_told_and_the_next_reminder(runtime: Runtime, receiver: Receiver) -> None:
    view = connect(runtime, app())
    flapping = connect(runtime, app("flap-client"), "Flapping", "test")
    channel(runtime, receiver, events=CHECKS)
    channel(runtime, receiver, name="Recoveries", path="/recovered", events=["check.recovered"])
    assert incidents.open_incidents(runtime.engine, actor=ADMIN) == []
    stored(runtime, view, "ok", T0 - HOUR)
    failing(runtime, view)
    stored(runtime, flapping, "timeout", T0)  # once: no alert, so no open problem
    tick(runtime, T0 + HOUR)
    found = the_incident(runtime, T0 + HOUR)
    assert (found.connection, found.environment, found.product, found.product_label) == (
        "Acme prod",
        "prod",
        "cc_chat",
        "Contact Center Chat",
    )
    assert (found.outcome, found.outcome_label, found.failures) == ("bad_credentials", "Credentials refused", 2)
    assert found.failing_since == T0 and found.alerted_at == T0 + timedelta(minutes=1)
    assert found.told == (Told("Ops hook", T0 + HOUR, "delivered"),)  # not the channel of recoveries only
    assert found.next_reminder_at == T0 + timedelta(minutes=1) + alerts.rules.REMIND_EVERY
    assert (found.acknowledged_by, found.acknowledged_at) == (None, None)
    assert len(found.id) == incidents.ID_LENGTH
    late = T0 + timedelta(days=3)  # the worker has not ticked for days: the reminder is due now
    assert the_incident(runtime, late).next_reminder_at == late
    tick(runtime, T0 + timedelta(hours=25))  # a reminder: the newest time the channel was told
    assert the_incident(runtime).told == (Told("Ops hook", T0 + timedelta(hours=25), "delivered"),)
    assert the_incident(runtime).id == found.id  # the same episode, the same ID


def test_a_new_episode_has_a_new_id_and_the_old_one_is_refused(runtime: Runtime, receiver: Receiver) -> None:
    view = connect(runtime, app())
    channel(runtime, receiver, events=CHECKS)
    failing(runtime, view)
    first = the_incident(runtime).id
    stored(runtime, view, "ok", T0 + HOUR)
    assert incidents.open_incidents(runtime.engine, actor=ADMIN) == []
    with pytest.raises(NotFoundError) as ended:
        incidents.acknowledge(runtime.engine, first, actor=ADMIN)
    assert (
        str(ended.value)
        == ENDED
        == "No open incident has that ID: it has ended, or was mistyped. `switchboard incidents list` shows what is open."
    )
    failing(runtime, view, T0 + 2 * HOUR)
    second = the_incident(runtime).id
    assert second != first
    with pytest.raises(NotFoundError, match="it has ended"):
        incidents.acknowledge(runtime.engine, first, actor=ADMIN)  # an ID names one episode, not its product
    for wrong in ("", "xyz", "0" * 64, first + "0", "ZZZZZZZZZZ"):
        with pytest.raises(ValidationError) as refused:
            incidents.acknowledge(runtime.engine, wrong, actor=ADMIN)
        [error] = refused.value.errors
        assert error.label == "Incident ID" and "switchboard incidents list" in error.message
    assert incidents.acknowledge(runtime.engine, f" {second.upper()} ", actor=ADMIN).incident.id == second
    assert state(runtime).acknowledged_by == ADMIN.name


# --- acknowledging ------------------------------------------------------------------------------------


def test_an_acknowledgement_stops_reminders_until_the_episode_recovers(runtime: Runtime, receiver: Receiver) -> None:
    view = connect(runtime, app())
    channel(runtime, receiver, events=CHECKS)
    failing(runtime, view)
    tick(runtime, T0 + HOUR)
    ann = web(runtime.engine, "ann", Role.OPERATOR)  # on-call engineers are operators
    done = incidents.acknowledge(runtime.engine, the_incident(runtime).id, actor=ann, now=T0 + 2 * HOUR)
    assert not done.already and done.describe() == (
        "Acknowledged Acme prod: Contact Center Chat (Credentials refused): reminders stop until it recovers "
        "or fails another way."
    )
    assert (done.incident.acknowledged_by, done.incident.acknowledged_at) == ("ann", T0 + 2 * HOUR)
    assert done.incident.next_reminder_at is None
    for hours in (3, 25, 26, 49, 73):
        tick(runtime, T0 + hours * HOUR)
    assert receiver.kinds() == ["check.failed", "incident.acknowledged"]  # no reminder while acknowledged
    failed, acknowledged = (r.body for r in receiver.received)
    assert {k: acknowledged[k] for k in ("connection", "environment", "product", "product_label", "outcome")} == {
        k: failed[k] for k in ("connection", "environment", "product", "product_label", "outcome")
    }
    assert acknowledged["summary"] == "Acme prod: Contact Center Chat failing, acknowledged by ann"
    assert acknowledged["details"] == {
        "acknowledged_by": "ann",
        "acknowledged_at": "2030-01-07T14:00:00Z",
        "failing_since": "2030-01-07T12:00:00Z",
    }
    assert len(set(receiver.ids())) == 2
    stored(runtime, view, "ok", T0 + 74 * HOUR)  # recovered: the acknowledgement goes with the episode
    assert (state(runtime).acknowledged_by, state(runtime).acknowledged_at) == (None, None)
    failing(runtime, view, T0 + 75 * HOUR)  # the next episode reminds again
    for hours in (76, 100):
        tick(runtime, T0 + hours * HOUR)
    assert receiver.kinds()[2:] == ["check.recovered", "check.failed", "check.still_failing"]


def test_a_different_failure_clears_the_acknowledgement_and_reminders_resume(
    runtime: Runtime, receiver: Receiver
) -> None:
    view = connect(runtime, app())
    channel(runtime, receiver, events=CHECKS)
    failing(runtime, view)
    tick(runtime, T0 + HOUR)
    first = incidents.acknowledge(runtime.engine, the_incident(runtime).id, actor=ADMIN, now=T0 + 2 * HOUR)
    tick(runtime, T0 + 25 * HOUR)
    stored(runtime, view, "bad_credentials", T0 + 26 * HOUR)  # the same failure: still acknowledged
    assert state(runtime).acknowledged_by == ADMIN.name
    stored(runtime, view, "timeout", T0 + 27 * HOUR)  # a different one is news
    assert (state(runtime).acknowledged_by, state(runtime).acknowledged_at) == (None, None)
    again = the_incident(runtime, T0 + 27 * HOUR)
    assert again.id == first.incident.id and again.outcome == "timeout"  # still the same episode
    assert again.next_reminder_at == T0 + 27 * HOUR  # overdue since the acknowledgement: due at once
    tick(runtime, T0 + 28 * HOUR)
    assert receiver.kinds() == ["check.failed", "incident.acknowledged", "check.still_failing"]
    second = incidents.acknowledge(runtime.engine, again.id, actor=ADMIN, now=T0 + 29 * HOUR)
    assert not second.already  # acknowledged again, and said again (an event of its own)
    tick(runtime, T0 + 30 * HOUR)
    assert receiver.kinds()[-1] == "incident.acknowledged" and len(set(receiver.ids())) == 4


def test_acknowledging_is_audited_and_a_second_time_changes_and_sends_nothing(
    runtime: Runtime, receiver: Receiver
) -> None:
    view = connect(runtime, app())
    channel(runtime, receiver, events=CHECKS)
    failing(runtime, view)
    found = the_incident(runtime)
    ann, bob = web(runtime.engine, "ann", Role.OPERATOR), web(runtime.engine, "bob", Role.ADMIN)
    incidents.acknowledge(runtime.engine, found.id, actor=ann, now=T0 + HOUR)
    queued = len(outbox_rows(runtime))
    again = incidents.acknowledge(runtime.engine, found.id, actor=bob, now=T0 + 2 * HOUR)
    assert again.already and again.describe() == (
        "ann already acknowledged Acme prod: Contact Center Chat (Credentials refused) at 2030-01-07 13:00 UTC; "
        "nothing changed."
    )
    assert (again.incident.acknowledged_by, again.incident.acknowledged_at) == ("ann", T0 + HOUR)
    assert len(outbox_rows(runtime)) == queued == 2  # check.failed and one incident.acknowledged
    [row] = acks(runtime)
    assert (row.actor, row.action, row.target, row.result, row.detail) == (
        "ann",
        "incident.ack",
        "Acme prod/cc_chat",
        "ok",
        f"incident {found.id}",
    )


def test_a_viewer_may_not_and_a_role_taken_away_after_the_list_is_refused(runtime: Runtime, receiver: Receiver) -> None:
    view = connect(runtime, app())
    channel(runtime, receiver, events=CHECKS)
    failing(runtime, view)
    vic = web(runtime.engine, "vic", Role.VIEWER)
    found = incidents.open_incidents(runtime.engine, actor=vic)  # every role reads
    with pytest.raises(NotAllowed, match="may not acknowledge alerts"):
        incidents.acknowledge(runtime.engine, found[0].id, actor=vic)
    ann = web(runtime.engine, "ann", Role.OPERATOR)
    listed = incidents.open_incidents(runtime.engine, actor=ann)
    users.set_role(runtime.engine, "ann", Role.VIEWER.value, actor=ADMIN)  # between the list and the click
    with pytest.raises(NotAllowed):
        incidents.acknowledge(runtime.engine, listed[0].id, actor=ann)
    assert state(runtime).acknowledged_by is None and acks(runtime) == []
    assert [r.kind for r in outbox_rows(runtime)] == ["check.failed"]


def test_pagerduty_acknowledges_the_alert_the_failure_triggered(runtime: Runtime) -> None:
    view = connect(runtime, app())
    key = integration_key()
    with PlainReceiver(Answer(202)) as pagerduty:
        channels.add(
            runtime.engine,
            runtime.vault,
            "Pager",
            "pagerduty",
            SecretStr(pagerduty.url(ENQUEUE)),
            actor=ADMIN,
            allow=LOCAL,
            secret=SecretStr(key),
        )
        failing(runtime, view)
        delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: T0 + HOUR)
        incidents.acknowledge(runtime.engine, the_incident(runtime).id, actor=ADMIN, now=T0 + 2 * HOUR)
        delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: T0 + 2 * HOUR)
        stored(runtime, view, "ok", T0 + 3 * HOUR)
        delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: T0 + 3 * HOUR)
        sent = messages(pagerduty)  # each checked against the Events API v2 schema
    trigger = sent[0]["dedup_key"]
    assert trigger == "switchboard/check/Acme prod/cc_chat/2030-01-07T12:00:00Z"
    assert [(m["event_action"], m["dedup_key"]) for m in sent] == [
        ("trigger", trigger),
        ("acknowledge", trigger),
        ("resolve", trigger),
    ]
    assert set(sent[1]) == {"routing_key", "event_action", "dedup_key"} and sent[1]["routing_key"] == key


def test_only_channels_told_of_the_failure_hear_of_its_acknowledgement(runtime: Runtime, receiver: Receiver) -> None:
    view = connect(runtime, app())
    channel(runtime, receiver, name="Prod", path="/prod", environments=["prod"], events=CHECKS)
    channel(runtime, receiver, name="Test only", path="/test", environments=["test"], events=CHECKS)
    channel(runtime, receiver, name="Off", path="/off", events=CHECKS)
    channels.set_enabled(runtime.engine, "Off", False, actor=ADMIN)
    failing(runtime, view)
    channels.set_enabled(runtime.engine, "Off", True, actor=ADMIN)  # heard of it when it came back on
    channels.set_enabled(runtime.engine, "Off", False, actor=ADMIN)  # and is off when it is acknowledged
    incidents.acknowledge(runtime.engine, the_incident(runtime).id, actor=ADMIN)
    delivery.deliver_due(runtime, worker="w", send=local_send)
    assert [(r.path, r.kind) for r in receiver.received if r.kind == "incident.acknowledged"] == [
        ("/prod", "incident.acknowledged")
    ]


# --- the command line -------------------------------------------------------------------------------


def test_incidents_list_json_and_ack_from_the_command_line(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("incidents", "list").stdout.strip() == "Nothing is failing now."
    assert json.loads(cli("incidents", "list", "--json").stdout) == []
    rt = open_runtime(load_settings(cli.env))
    try:
        view = connect(rt, app())
        failing(rt, view)
        listed = cli("incidents", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [item] = json.loads(listed.stdout)
        assert {k: item[k] for k in ("connection", "environment", "product", "outcome", "failures")} == {
            "connection": "Acme prod",
            "environment": "prod",
            "product": "cc_chat",
            "outcome": "bad_credentials",
            "failures": 2,
        }
        assert item["failing_since"] == "2030-01-07T12:00:00Z" and item["next_reminder_at"].endswith("Z")
        assert (item["acknowledged_by"], item["told"]) == (None, [])
        text = cli("incidents", "list").stdout
        assert (
            item["id"] in text and "Contact Center Chat: Credentials refused" in text and "2030-01-07 12:00 UTC" in text
        )
        wrong = cli("incidents", "ack", "nope")
        assert wrong.returncode == 1 and wrong.stderr.startswith("error: Incident ID: Use the 10-character ID")
        done = cli("incidents", "ack", item["id"])
        assert done.returncode == 0 and done.stdout.startswith("Acknowledged Acme prod: Contact Center Chat"), done
        again = cli("incidents", "ack", item["id"])
        assert again.returncode == 0 and "already acknowledged" in again.stdout
        [acked] = json.loads(cli("incidents", "list", "--json").stdout)
        assert acked["acknowledged_by"].startswith("cli:") and acked["next_reminder_at"] is None
        assert acked["acknowledged_at"].endswith("Z")
        stored(rt, view, "ok", T0 + HOUR)
        ended = cli("incidents", "ack", item["id"])
        assert (ended.returncode, ended.stderr.strip()) == (1, f"error: {ENDED}")
        assert cli("incidents", "list").stdout.strip() == "Nothing is failing now."
    finally:
        rt.engine.dispose()


# --- the Monitoring page ----------------------------------------------------------------------------


def test_the_monitoring_page_shows_open_problems_and_acknowledges_when_clicked(
    open_page: PageOpener, console_env: Runtime
) -> None:
    at = open_page(MONITORING, "operator@example.com")
    assert not at.exception and "Nothing is failing now." in texts(at)
    failing(console_env, connect(console_env, app()))
    found = the_incident(console_env)
    viewer = open_page(MONITORING, "anyone@example.com")
    row = tables(viewer)["incidents"].iloc[0].to_dict()  # type: ignore[attr-defined]
    assert {k: row[k] for k in ("Connection", "Environment", "Product", "Outcome", "Since", "Failures", "ID")} == {
        "Connection": "Acme prod",
        "Environment": "prod",
        "Product": "Contact Center Chat",
        "Outcome": "Credentials refused",
        "Since": "2030-01-07 12:00 UTC",
        "Failures": 2,
        "ID": found.id,
    }
    assert (row["Channels told"], row["Acknowledged"]) == ("none", "—")
    assert not [b for b in viewer.button if (b.key or "").startswith("incident_ack_")]  # viewers read only
    at = open_page(MONITORING, "operator@example.com")
    at.secrets["access"] = {**ACCESS, "operator@example.com": "viewer"}  # demoted after the page was drawn
    at.button(key=f"incident_ack_{found.id}").click().run()
    assert "Nothing was done" in " ".join(w.value for w in at.warning)
    assert state(console_env).acknowledged_by is None and acks(console_env) == []
    at = open_page(MONITORING, "operator@example.com")
    at.button(key=f"incident_ack_{found.id}").click().run()
    assert not at.exception, at.exception
    assert state(console_env).acknowledged_by == "operator@example.com"
    assert "Acknowledged Acme prod: Contact Center Chat" in texts(at)
    row = tables(at)["incidents"].iloc[0].to_dict()  # type: ignore[attr-defined]
    assert row["Acknowledged"].startswith("operator@example.com, ") and row["Next reminder"] == "None (acknowledged)"
    assert not [b for b in at.button if (b.key or "").startswith("incident_ack_")]


def test_a_held_acknowledgement_of_what_recovered_meanwhile_is_left_out_of_the_quiet_summary(
    runtime: Runtime, receiver: Receiver
) -> None:
    """A quiet window holds a failure and its acknowledgement; the product works again before the
    window ends: nothing is left to act on, so no summary comes (the failure's, the
    acknowledgement's and the recovery's rows are all summarised away)."""
    view = connect(runtime, app())
    channel(runtime, receiver, events=CHECKS)  # the acknowledgement goes where the failure went
    channels.add_window(runtime.engine, "Ops hook", Window((0,), "11:00", "13:00", "Europe/London"), actor=ADMIN)
    failing(runtime, view)
    tick(runtime, T0 + timedelta(minutes=2))
    at = T0 + timedelta(minutes=3)
    incidents.acknowledge(runtime.engine, the_incident(runtime, at).id, actor=ADMIN, now=at)
    tick(runtime, T0 + timedelta(minutes=4))
    assert sorted((r.kind, r.status) for r in outbox_rows(runtime)) == [
        ("check.failed", "held"),
        ("incident.acknowledged", "held"),
    ]
    stored(runtime, view, "ok", T0 + timedelta(minutes=30))
    tick(runtime, T0 + timedelta(minutes=31))
    tick(runtime, T0 + timedelta(hours=1, minutes=1))  # the window has ended
    assert receiver.received == []
    assert {r.status for r in outbox_rows(runtime)} == {"summarised"}
