"""Maintenance windows (issue 25): checks of what a window covers still run and are stored, but
nothing that happens inside is sent; when it ends, one maintenance.ended event names what still
fails, and none is sent when everything works. Real SQLite file (and PostgreSQL where the
fixtures offer it), a real webhook receiver on 127.0.0.1, moments injected, no sleeps."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update
from sqlmodel import select

from lib.kernel.errors import NotFoundError, ValidationError
from lib.notify.models import EventKind
from lib.services import alerts
from lib.services.accounts import users
from lib.services.alerts import channels, incidents, maintenance
from lib.services.alerts.events import STILL_NAMED, Subject, check_event
from lib.services.alerts.outbox import outside_maintenance
from lib.services.alerts.windows import Window
from lib.services.checking import checks
from lib.services.connections import ConnectionView
from lib.services.guard import audit
from lib.services.guard.access import NotAllowed, Principal, Role
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.store.db import read_session, write_session
from lib.store.models import AlertState, Connection, MaintenanceWindow, utcnow
from tests.fixtures.alerts import Receiver, local_send
from tests.fixtures.console import ACCESS, PageOpener, plain
from tests.fixtures.people import ADMIN, web
from tests.fixtures.storage import Sentinels
from tests.test_alerts import app, channel, connect, outbox_rows
from tests.test_cli import add as add_connection
from tests.test_cli import cli, sentinels  # noqa: F401 (the fixtures: a database and a connection 8x8 accepts)

# The window in most tests: T0 - 1 h to T0 + 1 h. Ahead of the clock, so what is queued now
# (due at once) is due at every moment a test ticks at.
T0 = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
AFTER = T0 + timedelta(hours=2)
MONITORING, CONNECTIONS = "pages/monitoring.py", "pages/connections.py"


def checked(rt: Runtime, view: ConnectionView, outcome: str, at: datetime, product: str = "cc_chat") -> None:
    """One result stored as a check made at ``at`` would store it (the rules run in its transaction)."""
    with write_session(rt.engine) as session:
        checks.store(
            session,
            [CheckRecord(view.id, view.name, product, outcome, 200 if outcome == "ok" else None, 5, "", at, "r")],
            {},
            "test",
        )


def failing(rt: Runtime, view: ConnectionView, at: datetime, product: str = "cc_chat") -> None:
    """Two failures in a row from ``at``: check.failed, unless a window keeps it."""
    checked(rt, view, "timeout", at, product)
    checked(rt, view, "timeout", at + timedelta(minutes=1), product)


def tick(rt: Runtime, at: datetime, worker: str = "w") -> None:
    alerts.tick(rt, worker=worker, send=local_send, now=lambda: at)


def window(rt: Runtime, **scope: str) -> maintenance.MaintenanceView:
    return maintenance.add(
        rt.engine,
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=1),
        actor=ADMIN,
        reason="Rotating secrets",
        now=T0 - timedelta(hours=1),
        **scope,  # type: ignore[arg-type]
    )


def two(rt: Runtime) -> tuple[ConnectionView, ConnectionView]:
    return connect(rt, app("one-client"), "One", "prod"), connect(rt, app("two-client"), "Two", "lab")


# --- nothing is sent from inside; the end says what still fails -----------------------------------


@pytest.mark.parametrize(
    "scope", [{"connection": "one"}, {"environment": "PROD"}, {}], ids=["connection", "env", "all"]
)
def test_what_happens_inside_is_not_sent_and_the_end_names_what_still_fails_once(
    runtime: Runtime, receiver: Receiver, scope: dict[str, str]
) -> None:
    one, other = two(runtime)
    channel(runtime, receiver)
    made = window(runtime, **scope)
    failing(runtime, one, T0)
    checked(runtime, one, "ok", T0 + timedelta(minutes=5))  # recovers inside: nothing either
    failing(runtime, one, T0 + timedelta(minutes=10))  # and fails again, still inside
    failing(runtime, other, T0)
    tick(runtime, T0 + timedelta(minutes=30))
    others = [] if not scope else [("check.failed", "Two")]
    assert [(r.kind, r.body["connection"]) for r in receiver.received] == others  # One's sent nothing
    with read_session(runtime.engine) as session:  # the checks were stored and the rules moved on
        state = session.get(AlertState, (one.id, "cc_chat"))
        assert state is not None and state.alerted_at is not None
    receiver.received.clear()
    tick(runtime, AFTER)
    tick(runtime, AFTER + timedelta(minutes=1), worker="another")
    (ended,) = receiver.received
    still = ["One: Contact Center Chat"] + (["Two: Contact Center Chat"] if not scope else [])
    assert ended.kind == "maintenance.ended" and ended.body["details"]["still_failing"] == still
    assert ended.body["summary"] == f"Maintenance of {made.covered} ended; still failing: {', '.join(still)}"
    assert ended.body["details"]["reason"] == "Rotating secrets"
    receiver.received.clear()
    checked(runtime, one, "ok", AFTER + timedelta(minutes=5))  # after the window: as usual
    tick(runtime, AFTER + timedelta(minutes=6))
    assert [(r.kind, r.body["connection"]) for r in receiver.received] == [("check.recovered", "One")]


def test_a_failure_announced_before_the_window_is_closed_when_it_recovers_inside(
    runtime: Runtime, receiver: Receiver
) -> None:
    """Its check.failed went out before the window: its check.recovered goes out too (a
    receiver closes what it opened), while a failure that began inside stays unsent both ways."""
    one, _ = two(runtime)
    channel(runtime, receiver)
    failing(runtime, one, T0 - timedelta(hours=2))
    tick(runtime, T0 - timedelta(hours=2) + timedelta(minutes=2))
    window(runtime, connection="One")
    checked(runtime, one, "ok", T0)
    failing(runtime, one, T0 + timedelta(minutes=10), product="cloud_storage")
    checked(runtime, one, "ok", T0 + timedelta(minutes=20), product="cloud_storage")
    tick(runtime, T0 + timedelta(minutes=30))
    assert [(r.kind, r.body["product"]) for r in receiver.received] == [
        ("check.failed", "cc_chat"),
        ("check.recovered", "cc_chat"),
    ]


def test_a_channel_joining_during_a_window_hears_only_of_what_it_does_not_cover(
    runtime: Runtime, receiver: Receiver
) -> None:
    """A channel added while problems are open hears of each (lib.services.alerts.channels),
    but not of what a window in force covers: that waits for the window's end summary."""
    one, other = two(runtime)
    now = utcnow()
    maintenance.add(
        runtime.engine,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        connection="One",
        actor=ADMIN,
        now=now - timedelta(hours=1),
    )
    failing(runtime, one, now - timedelta(minutes=10))
    failing(runtime, other, now - timedelta(minutes=10))
    channel(runtime, receiver)
    tick(runtime, utcnow() + timedelta(seconds=1))  # what joining queued is due
    assert [(r.kind, r.body["connection"]) for r in receiver.received] == [("check.failed", "Two")]


def test_nothing_at_all_is_sent_when_everything_works_again_by_the_end(runtime: Runtime, receiver: Receiver) -> None:
    one, _ = two(runtime)
    channel(runtime, receiver)
    window(runtime, connection="One")
    failing(runtime, one, T0)
    checked(runtime, one, "ok", T0 + timedelta(minutes=20))
    tick(runtime, AFTER)
    assert receiver.received == [] and outbox_rows(runtime) == []
    with read_session(runtime.engine) as session:
        (row,) = session.exec(select(MaintenanceWindow)).all()
        assert row.summarised_at == AFTER  # done with, not looked at again


def test_outside_the_window_other_connections_and_secret_age_are_sent_as_usual(
    runtime: Runtime, receiver: Receiver
) -> None:
    one, other = two(runtime)
    channel(runtime, receiver)
    window(runtime, connection="One")
    failing(runtime, one, T0 - timedelta(hours=3))  # before it began
    failing(runtime, other, T0)  # another connection, inside its time
    with write_session(runtime.engine) as session:  # a secret's age is no consequence of the work
        session.exec(
            update(Connection)
            .where(Connection.id == one.id)  # type: ignore[call-overload,arg-type]
            .values(secret_set_at=T0 - timedelta(days=200))
        )
    tick(runtime, T0)
    assert sorted((r.kind, r.body["connection"]) for r in receiver.received) == [
        ("check.failed", "One"),
        ("check.failed", "Two"),
        ("secret.aging", "One"),
    ]


def test_reminders_inside_the_window_are_not_sent(runtime: Runtime, receiver: Receiver) -> None:
    one, _ = two(runtime)
    channel(runtime, receiver)
    failing(runtime, one, T0 - timedelta(hours=25))
    tick(runtime, T0 - timedelta(hours=2))
    assert receiver.kinds() == ["check.failed"]
    window(runtime, connection="One")
    tick(runtime, T0)  # its first reminder is due, inside the window
    assert receiver.kinds() == ["check.failed"]
    with read_session(runtime.engine) as session:
        state = session.get(AlertState, (one.id, "cc_chat"))
        assert state is not None and state.last_reminder_at == T0  # raised, and kept from the channels


def test_the_end_summary_names_a_few_counts_the_rest_and_follows_each_channels_routing(
    runtime: Runtime, receiver: Receiver
) -> None:
    views = [connect(runtime, app(f"client-{i}"), f"Prod {i}", "prod") for i in range(STILL_NAMED + 2)]
    lab = connect(runtime, app("lab-client"), "Lab", "lab")
    channel(runtime, receiver, "Everything", "/all")
    channel(runtime, receiver, "Lab only", "/lab", environments=["lab"])
    channel(runtime, receiver, "Recoveries", "/recovered", events=["check.recovered"])
    window(runtime)
    for view in [*views, lab]:
        failing(runtime, view, T0)
    workers = [threading.Thread(target=tick, args=(runtime, AFTER, f"worker-{i}")) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    by_path = {r.path: r for r in receiver.received}
    assert sorted(r.path for r in receiver.received) == ["/all", "/lab"]  # once each, whoever ticked
    everything = by_path["/all"].body
    assert everything["summary"].endswith(f"Prod 3: Contact Center Chat and {len(views) + 1 - STILL_NAMED} more")
    assert len(everything["details"]["still_failing"]) == everything["details"]["failing_products"] == len(views) + 1
    assert by_path["/lab"].body["details"]["still_failing"] == ["Lab: Contact Center Chat"]


def test_quiet_windows_still_hold_what_is_sent_and_the_end_summary_with_it(
    runtime: Runtime, receiver: Receiver
) -> None:
    one, other = two(runtime)
    channel(runtime, receiver, events=["check.failed", "check.recovered"])
    channels.add_window(runtime.engine, "Ops hook", Window((0,), "11:00", "13:00", "UTC"), actor=ADMIN)
    monday = datetime(2030, 1, 7, 11, 0, tzinfo=UTC)
    maintenance.add(
        runtime.engine,
        starts_at=monday + timedelta(minutes=30),
        ends_at=monday + timedelta(minutes=75),
        connection="One",
        actor=ADMIN,
        now=monday,
    )
    failing(runtime, one, monday + timedelta(minutes=40))
    failing(runtime, other, monday + timedelta(minutes=40))
    tick(runtime, monday + timedelta(minutes=45))
    tick(runtime, monday + timedelta(minutes=80))  # the maintenance ended, the quiet window not
    assert receiver.received == []
    assert sorted(r.kind for r in outbox_rows(runtime)) == ["check.failed", "maintenance.ended"]
    tick(runtime, monday + timedelta(hours=2, minutes=1))
    (summary,) = (r.body for r in receiver.received)
    assert sorted((e["kind"], e["connection"]) for e in summary["details"]["events"]) == [
        ("check.failed", "Two"),
        ("maintenance.ended", "One"),
    ]


def test_a_window_that_ended_long_ago_is_forgotten_and_removing_one_in_force_ends_it_now(
    runtime: Runtime, receiver: Receiver
) -> None:
    one, _ = two(runtime)
    channel(runtime, receiver)
    old = window(runtime)
    planned = maintenance.add(runtime.engine, starts_at=AFTER, ends_at=AFTER + timedelta(hours=1), actor=ADMIN, now=T0)
    current = window(runtime, connection="One")
    assert [w.id for w in maintenance.list_windows(runtime.engine, actor=ADMIN, now=T0)] == [
        old.id,
        current.id,
        planned.id,
    ]
    assert "Removed maintenance window" in maintenance.remove(runtime.engine, planned.id, actor=ADMIN, now=T0)
    failing(runtime, one, T0)
    said = maintenance.remove(runtime.engine, current.id, actor=ADMIN, now=T0 + timedelta(minutes=5))
    assert said.startswith(f"Ended maintenance window #{current.id} (connection One) now")
    tick(runtime, T0 + timedelta(minutes=6))  # its summary follows at once
    assert receiver.kinds() == ["maintenance.ended"]
    assert [w.id for w in maintenance.list_windows(runtime.engine, actor=ADMIN, now=T0 + timedelta(minutes=6))] == [
        old.id
    ]
    with pytest.raises(NotFoundError, match=f"No maintenance window #{planned.id}"):
        maintenance.remove(runtime.engine, planned.id, actor=ADMIN)
    tick(runtime, T0 + maintenance.KEEP + timedelta(hours=1))  # summarised now, forgotten KEEP after it ended
    with read_session(runtime.engine) as session:
        assert [w.id for w in session.exec(select(MaintenanceWindow))] == [old.id]
    tick(runtime, T0 + maintenance.KEEP + timedelta(hours=2))
    with read_session(runtime.engine) as session:
        assert session.exec(select(MaintenanceWindow)).all() == []
    actions = [(e.action, e.target) for e in audit.events(runtime.engine, ADMIN) if e.action.startswith("maint")]
    assert sorted(actions) == sorted(
        [
            ("maintenance.add", "every connection"),
            ("maintenance.add", "every connection"),
            ("maintenance.add", "connection One"),
            ("maintenance.remove", "every connection"),
            ("maintenance.remove", "connection One"),
        ]
    )


# --- who may, and what is refused --------------------------------------------------------------------


def refused(rt: Runtime, **given: object) -> dict[str, str]:
    """The fields a refused add names, with their messages."""
    values: dict[str, object] = {
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=1),
        "actor": ADMIN,
        "now": T0,
    } | given
    with pytest.raises(ValidationError) as caught:
        maintenance.add(rt.engine, **values)  # type: ignore[arg-type]
    return {e.field: e.message for e in caught.value.errors}


def test_every_wrong_field_is_named_with_its_fix_and_nothing_is_saved(runtime: Runtime) -> None:
    two(runtime)
    assert refused(runtime, ends_at=T0 - timedelta(minutes=1))["ends_at"].startswith("End the window after it starts")
    assert (
        "over already"
        in refused(runtime, starts_at=T0 - timedelta(hours=3), ends_at=T0 - timedelta(hours=1))["ends_at"]
    )
    assert "at most 31 d" in refused(runtime, ends_at=T0 + timedelta(days=32))["ends_at"]
    assert (
        "within 365 d"
        in refused(runtime, starts_at=T0 + timedelta(days=400), ends_at=T0 + timedelta(days=401))["starts_at"]
    )
    assert "No connection is named 'Nope'" in refused(runtime, connection="Nope")["connection"]
    assert refused(runtime, connection=" ")["connection"].startswith("Choose the connection")  # never all instead
    assert refused(runtime, environment="staging")["environment"] == (
        "No connection has the environment 'staging'. Choose one of lab, prod."
    )
    assert "not both" in refused(runtime, connection="One", environment="prod")["environment"]
    both = refused(runtime, reason="x" * 201, connection="Nope")
    assert set(both) == {"reason", "connection"}  # every wrong field at once
    with write_session(runtime.engine) as session:  # the bound: windows not yet ended
        session.add_all(
            MaintenanceWindow(starts_at=T0, ends_at=T0 + timedelta(hours=1), created_at=T0)
            for _ in range(maintenance.OPEN_MAX)
        )
    assert "remove some first" in refused(runtime)["starts_at"]
    with read_session(runtime.engine) as session:
        assert len(session.exec(select(MaintenanceWindow)).all()) == maintenance.OPEN_MAX
    assert [e for e in audit.events(runtime.engine, ADMIN) if e.action.startswith("maintenance")] == []


def test_viewers_and_operators_read_but_are_refused_at_the_moment_they_act(runtime: Runtime) -> None:
    two(runtime)
    made = window(runtime)
    operator = Principal("op", Role.OPERATOR, via="cli")
    viewer = web(runtime.engine, "viewer@example.com", Role.VIEWER)
    web(runtime.engine, "admin1@example.com", Role.ADMIN)  # so that the next can be demoted
    demoted = web(runtime.engine, "admin2@example.com", Role.ADMIN)  # an admin when the page was drawn
    users.set_role(runtime.engine, "admin2@example.com", Role.VIEWER.value, actor=ADMIN)
    for who in (operator, viewer, demoted):
        assert [w.id for w in maintenance.list_windows(runtime.engine, actor=who, now=T0)] == [made.id]
        with pytest.raises(NotAllowed):
            maintenance.add(runtime.engine, starts_at=T0, ends_at=AFTER, actor=who, now=T0)
        with pytest.raises(NotAllowed):
            maintenance.remove(runtime.engine, made.id, actor=who, now=T0)
    assert len(maintenance.list_windows(runtime.engine, actor=ADMIN, now=T0)) == 1


# --- command line and console ---------------------------------------------------------------------------


def test_the_command_line_adds_lists_and_removes_windows(cli, sentinels: Sentinels) -> None:  # type: ignore[no-untyped-def]
    assert add_connection(cli, sentinels, "Prod", "--environment", "production").returncode == 0
    empty = cli("maintenance", "list")
    assert empty.returncode == 0 and "No maintenance windows" in empty.stdout
    added = cli("maintenance", "add", "--from", "now", "--to", "+2h", "--connection", "prod", "--reason", "Rotating")
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("Added maintenance window #1 for connection Prod, ")
    later = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0, tzinfo=None)
    env = cli("maintenance", "add", "--from", later.isoformat(), "--to", "+2d", "--environment", "PRODUCTION")
    assert env.returncode == 0, env.stderr
    (first, second) = json.loads(cli("maintenance", "list", "--json").stdout)
    assert (first["id"], first["covers"], first["reason"], second["environment"]) == (
        1,
        "connection Prod",
        "Rotating",
        "production",
    )
    assert second["starts_at"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")  # naive is UTC
    listed = cli("maintenance", "list").stdout.splitlines()
    assert listed[0].startswith("#1     in force ") and listed[1].startswith("#2     planned ")
    wrong = cli("maintenance", "add", "--from", "+2h", "--to", "+1h")
    assert wrong.returncode == 1 and "error: To (--to): End the window after it starts" in wrong.stderr
    usage = cli("maintenance", "add", "--from", "tomorrow", "--to", "+1h")
    assert usage.returncode == 2 and "is not a moment" in usage.stderr
    assert cli("maintenance", "remove", "2").stdout.startswith("Removed maintenance window #2")
    assert cli("maintenance", "remove", "2").returncode == 1


def test_the_monitoring_page_lists_windows_and_admins_add_and_remove_them(
    open_page: PageOpener, console_env: Runtime
) -> None:
    two(console_env)
    maintenance.add(console_env.engine, starts_at=utcnow(), ends_at=utcnow() + timedelta(hours=1), actor=ADMIN)
    viewer = open_page(MONITORING, "anyone@example.com")
    assert not viewer.exception, viewer.exception
    (table,) = [d.value for d in viewer.dataframe if "Covers" in d.value.columns]
    assert list(table["Covers"]) == ["every connection"] and list(table["State"]) == ["in force"]
    assert not [b for b in viewer.button if b.key in ("maintenance_add", "maintenance_remove")]
    at = open_page(MONITORING)
    at.radio(key="maintenance_scope").set_value("A connection").run()
    at.selectbox(key="maintenance_connection").set_value("One").run()
    at.text_input(key="maintenance_reason").set_value("New secret").run()
    at.button(key="maintenance_add").click().run()
    assert not at.exception, at.exception
    assert sorted(w.covered for w in maintenance.list_windows(console_env.engine, actor=ADMIN)) == [
        "connection One",
        "every connection",
    ]
    at.secrets["access"] = {**ACCESS, "admin@example.com": "viewer"}
    at.button(key="maintenance_remove").click().run()  # drawn for an admin, clicked by a viewer
    assert not at.exception, at.exception
    assert len(maintenance.list_windows(console_env.engine, actor=ADMIN)) == 2
    page = open_page(CONNECTIONS)
    page.selectbox(key="conn_detail").set_value("One").run()
    said = " ".join(plain(str(c.value)) for c in page.caption)
    assert "🔧 In maintenance until" in said and "connection One: New secret" in said


def subjects(rt: Runtime) -> tuple[Subject, Subject]:
    """Two connections, One in prod and Two in lab, made at the first example and kept."""
    with read_session(rt.engine) as session:
        found = session.exec(select(Connection).order_by(Connection.name_key)).all()  # type: ignore[arg-type]
    if not found:
        two(rt)
        return subjects(rt)
    return tuple(Subject(c.id, c.name, c.environment, c.client_id_hint) for c in found)  # type: ignore[return-value]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    windows=st.lists(
        st.tuples(
            st.sampled_from(["One", "Two", "env prod", "env PROD", "env lab", "all"]),
            st.integers(-6, 6),
            st.integers(1, 6),
        ),
        max_size=5,
    ),
    moments=st.lists(st.integers(-8, 8), min_size=1, max_size=6),
)
def test_an_event_is_queued_if_and_only_if_no_window_covers_it(
    runtime: Runtime, windows: list[tuple[str, int, int]], moments: list[int]
) -> None:
    """Any windows (a connection, an environment in any case, all) and any moments of events of
    two connections: an event is let through exactly when no window covers its connection then."""
    one, other = subjects(runtime)
    with write_session(runtime.engine) as session:
        session.exec(delete(MaintenanceWindow))  # type: ignore[call-overload]
        session.add_all(
            MaintenanceWindow(
                connection_id={"One": one.id, "Two": other.id}.get(scope),
                environment=scope[4:] if scope.startswith("env ") else None,
                starts_at=T0 + timedelta(hours=start),
                ends_at=T0 + timedelta(hours=start + length),
                created_at=T0,
            )
            for scope, start, length in windows
        )
    raised = [
        (
            check_event(
                EventKind.FAILED,
                subject,
                "cc_chat",
                "timeout",
                previous=None,
                checked_at=T0 + timedelta(hours=hours),
                http_status=None,
                episode="e",
                details={},
            ),
            subject.id,
        )
        for hours in moments
        for subject in (one, other)
    ]

    def covered(subject: Subject, at: datetime) -> bool:
        return any(
            T0 + timedelta(hours=start) <= at < T0 + timedelta(hours=start + length)
            and scope.casefold() in ("all", subject.name.casefold(), f"env {subject.environment}")
            for scope, start, length in windows
        )

    by_id = {one.id: one, other.id: other}
    with write_session(runtime.engine) as session:
        kept = outside_maintenance(session, raised, T0)
    assert kept == [(e, c) for e, c in raised if e.checked_at and not covered(by_id[c], e.checked_at)]


def test_open_problems_say_which_a_window_covers_and_until_when(runtime: Runtime, receiver: Receiver) -> None:
    """Open problems (lib.services.alerts.incidents) mark what a window in force covers, so
    nobody chases a failure that is planned; after the window, the mark is gone."""
    one, other = two(runtime)
    channel(runtime, receiver)
    made = window(runtime, environment="prod")
    failing(runtime, one, T0)
    failing(runtime, other, T0)
    found = {i.connection: i.maintenance_until for i in incidents.open_incidents(runtime.engine, actor=ADMIN, now=T0)}
    assert found == {"One": made.ends_at, "Two": None}
    later = incidents.open_incidents(runtime.engine, actor=ADMIN, now=AFTER)
    assert {i.connection: i.maintenance_until for i in later} == {"One": None, "Two": None}
