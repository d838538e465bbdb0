"""Alerts, end to end: check results from the real simulator (driven by its control API) feed the
rules in the transaction that stores them; the worker delivers the outbox to a real webhook
receiver on 127.0.0.1, with retries, leases, quiet windows and 410s; nothing secret is written
anywhere. Real SQLite file and real PostgreSQL."""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlmodel import select

from lib.catalogue.products import PRODUCT_KEYS
from lib.eightbyeight.prober import Prober
from lib.kernel.redaction import install
from lib.notify.models import Attempt, Destination, Event
from lib.notify.send import deliver
from lib.services import alerts, connections
from lib.services.alerts import channels, delivery
from lib.services.alerts.events import STILL_LISTED, STILL_NAMED, summary_event
from lib.services.alerts.outbox import KEEP
from lib.services.alerts.windows import Window
from lib.services.checking import checks
from lib.services.checking.worker import Worker
from lib.services.connections import ConnectionView
from lib.services.guard import audit
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.simulator import App, Scenario, SimulatorServer
from lib.store.db import read_session, write_session
from lib.store.models import (
    AlertChannel,
    AlertDelivery,
    AlertOutbox,
    AuditEvent,
    Connection,
    utcnow,
)
from tests.fixtures.alerts import WEBHOOK_SECRET, Receiver, local_send, stored_channel
from tests.fixtures.notify import LOCAL
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.fixtures.simulator import SimulatorFactory
from tests.fixtures.storage import Sentinels
from tests.test_notify_smtp import PASSWORD, QUERY, USER, MailServer, mail_server  # noqa: F401 (the fixture)

SETTINGS = {
    "analytics_region": "us",
    "storage_region": "us-east",
    "qm_region": "us-east",
    "chat_region": "us",
    "tenant_id": "t1",
    "pbx": "p1",
}


def app(
    client_id: str = "alerts-client", secret: str = "alerts-secret", products: tuple[str, ...] = PRODUCT_KEYS
) -> App:
    return App(
        client_id=client_id,
        client_secret=secret,
        products=list(products),
        tenants=["t1"],
        pbx_names=["p1"],
        analytics_region="us",
        storage_regions=["us-east"],
        qm_region="us-east",
        chat_region="us",
    )


def connect(
    rt: Runtime, sim_app: App, name: str = "Acme prod", environment: str = "prod", **extra: object
) -> ConnectionView:
    return connections.create(
        rt.engine,
        rt.vault,
        connections.ConnectionInput(
            name=name,
            client_id=sim_app.client_id,
            client_secret=SecretStr(sim_app.client_secret),
            environment=environment,
            **SETTINGS,
        ),
        actor=ADMIN,
        **extra,
    )  # type: ignore[arg-type]


def channel(rt: Runtime, receiver: Receiver, name: str = "Ops hook", path: str = "/hook", **options: object) -> None:
    options.setdefault("secret", SecretStr(WEBHOOK_SECRET))
    channels.add(
        rt.engine, rt.vault, name, "webhook", SecretStr(receiver.url + path), actor=ADMIN, allow=LOCAL, **options
    )  # type: ignore[arg-type]


def run(rt: Runtime, prober: Prober, view: ConnectionView, product: str = "cc_chat") -> None:
    checks.run_checks(rt, prober, connection_ids=[view.id], product=product, triggered_by=ADMIN)


def outbox_rows(rt: Runtime) -> list[AlertOutbox]:
    with read_session(rt.engine) as session:
        return list(session.exec(select(AlertOutbox).order_by(AlertOutbox.id)).all())  # type: ignore[arg-type]


def log_rows(rt: Runtime) -> list[AlertDelivery]:
    with read_session(rt.engine) as session:
        return list(session.exec(select(AlertDelivery).order_by(AlertDelivery.id)).all())  # type: ignore[arg-type]


def fail(sim: SimulatorServer, product: str = "cc_chat") -> None:
    control(sim, "POST", "faults", {"route": product, "status": 404})


def heal(sim: SimulatorServer) -> None:
    control(sim, "DELETE", "faults")


# --- the rules, through the worker ---------------------------------------------------------------


def test_ok_fail_fail_ok_sends_one_failed_and_one_recovered(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory, receiver: Receiver
) -> None:
    sim = simulator_factory(Scenario(apps=[app()]))
    rt = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, public_origin="https://switchboard.example.com")
    )
    view = connect(rt, sim.scenario.apps[0])
    channel(rt, receiver)
    prober = prober_factory(sim.url)
    worker = Worker(rt, prober, send=local_send)
    for step in ("ok", "fail", "fail", "ok"):
        fail(sim) if step == "fail" else heal(sim)
        run(rt, prober, view)
        worker.tick()
    assert receiver.kinds() == ["check.failed", "check.recovered"]
    failed, recovered = (r.body for r in receiver.received)
    assert {
        k: failed[k]
        for k in (
            "connection",
            "environment",
            "product",
            "product_label",
            "outcome",
            "previous_outcome",
            "http_status",
            "client_id_hint",
        )
    } == {
        "connection": "Acme prod",
        "environment": "prod",
        "product": "cc_chat",
        "product_label": "Contact Center Chat",
        "outcome": "not_found",
        "previous_outcome": "ok",
        "http_status": 404,
        "client_id_hint": "…ient",
    }
    assert failed["cause"] and failed["who_must_act"] and failed["fix"] and failed["details"]["failures_in_a_row"] == 2
    assert failed["details"]["detail"]  # what 8x8 answered, in the check's own words
    assert failed["link"] == "https://switchboard.example.com/connections?connection=Acme%20prod"
    assert (recovered["outcome"], recovered["previous_outcome"], recovered["cause"]) == ("ok", "not_found", None)
    assert recovered["details"]["down_for_s"] >= 0 and " works again after " in recovered["summary"]
    # ok, fail, fail: 1 of 3 checks ok over 30 days when it alerted; and 2 of 4 when it recovered
    assert (failed["details"]["uptime_30d"], recovered["details"]["uptime_30d"]) == (pytest.approx(1 / 3), 0.5)
    assert receiver.received[0].path == "/hook" and len(set(receiver.ids())) == 2
    assert alerts.alerting(rt.engine, actor=ADMIN) == set()
    assert [r.status for r in outbox_rows(rt)] == ["delivered", "delivered"]
    log = alerts.delivery_log(rt.engine, actor=ADMIN)  # each attempt says what it was about
    assert [(d.kind, d.connection, d.product) for d in log] == [
        ("check.recovered", "Acme prod", "cc_chat"),
        ("check.failed", "Acme prod", "cc_chat"),
    ]


def test_a_flap_raises_nothing_and_an_unticked_product_never_alerts(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory, receiver: Receiver
) -> None:
    sim = simulator_factory(Scenario(apps=[app()]))
    view = connect(runtime, sim.scenario.apps[0])
    view = connections.update(
        runtime.engine,
        runtime.vault,
        view.id,
        connections.input_from_view(view, expected_products=("cloud_storage",)),
        actor=ADMIN,
        expected_version=view.version,
    )
    channel(runtime, receiver)
    prober = prober_factory(sim.url)
    for step in ("fail", "ok", "fail", "ok"):
        fail(sim) if step == "fail" else heal(sim)
        run(runtime, prober, view, "cloud_storage")
    fail(sim, "cc_chat")
    for _ in range(3):  # not ticked: information, never a failure
        run(runtime, prober, view, "cc_chat")
    alerts.tick(runtime, worker="w", send=local_send)
    assert outbox_rows(runtime) == [] and receiver.received == []


def test_routing_by_event_and_environment(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory, receiver: Receiver
) -> None:
    sim = simulator_factory(Scenario(apps=[app("prod-client"), app("lab-client")]))
    prod, lab = (
        connect(runtime, a, name, env)
        for a, name, env in zip(sim.scenario.apps, ("Prod", "Lab"), ("prod", "lab"), strict=True)
    )
    channel(runtime, receiver, "Prod only", "/prod", environments=["PROD"])
    channel(runtime, receiver, "Recoveries", "/recovered", events=["check.recovered"])
    prober = prober_factory(sim.url)
    fail(sim)
    for _ in range(2):
        run(runtime, prober, prod)
        run(runtime, prober, lab)
    alerts.tick(runtime, worker="w", send=local_send)
    assert [(r.path, r.body["connection"]) for r in receiver.received] == [("/prod", "Prod")]


# --- delivery --------------------------------------------------------------------------------------


def failing_twice(rt: Runtime, view: ConnectionView, product: str = "cc_chat") -> None:
    """Two failing results stored as a check would store them: raises check.failed."""
    for _ in range(2):
        with write_session(rt.engine) as session:
            checks.store(
                session,
                [CheckRecord(view.id, view.name, product, "timeout", None, 30000, "", utcnow(), "r")],
                {},
                "test",
            )


def test_a_receiver_answering_500_twice_gets_the_event_on_the_third_attempt(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    view = connect(runtime, simulator.scenario.apps[0])
    channel(runtime, receiver)
    failing_twice(runtime, view)
    receiver.answer(500, times=2)
    t0 = utcnow()
    assert delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: t0) == 0
    assert delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: t0 + timedelta(seconds=4)) == 0
    t1 = t0 + timedelta(seconds=5)
    assert delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: t1) == 0
    (row,) = outbox_rows(runtime)
    assert (row.status, row.attempts, row.due_at) == ("pending", 2, t1 + timedelta(minutes=5))
    assert delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: t1 + timedelta(minutes=5)) == 1
    assert receiver.kinds() == ["check.failed"]
    log = log_rows(runtime)
    assert [(r.attempt, r.outcome, r.http_status) for r in log] == [
        (1, "retrying", 500),
        (2, "retrying", 500),
        (3, "delivered", 200),
    ]
    assert {r.channel for r in log} == {"Ops hook"} and log[
        0
    ].error == "127.0.0.1 answered HTTP 500: a failure on the receiver's side."


def test_retry_after_is_honoured_and_the_sixth_failure_is_final(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    view = connect(runtime, simulator.scenario.apps[0])
    channel(runtime, receiver)
    failing_twice(runtime, view)
    receiver.answer(429, retry_after="600")
    t0 = utcnow()
    delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: t0)
    assert outbox_rows(runtime)[0].due_at == t0 + timedelta(seconds=600)  # more than the 5 s step
    receiver.answer(503, times=5)
    at = t0
    for _ in range(5):
        at += timedelta(hours=6)
        delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: at)  # noqa: B023
    (row,) = outbox_rows(runtime)
    assert (row.status, row.attempts) == ("failed", 6) and receiver.received == []
    assert len(log_rows(runtime)) == 6


def test_410_turns_the_channel_off_with_the_reason_and_an_audit_row(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    view = connect(runtime, simulator.scenario.apps[0])
    channel(runtime, receiver)
    failing_twice(runtime, view)
    receiver.answer(410)
    delivery.deliver_due(runtime, worker="w", send=local_send)
    (found,) = channels.list_channels(runtime.engine, actor=ADMIN)
    assert not found.enabled and found.disabled_reason and "410 Gone" in found.disabled_reason
    assert [(r.status, r.attempts) for r in outbox_rows(runtime)] == [("failed", 1)]
    assert [r.outcome for r in log_rows(runtime)] == ["gone"]
    assert [(e.action, e.target) for e in audit.events(runtime.engine, ADMIN) if e.action == "channel.disable"] == [
        ("channel.disable", "Ops hook")
    ]
    failing_twice(runtime, view, "cloud_storage")  # a turned-off channel gets nothing more
    assert len(outbox_rows(runtime)) == 1
    channels.change(
        runtime.engine, runtime.vault, "ops hook", actor=ADMIN, allow=LOCAL, url=SecretStr(receiver.url + "/moved")
    )  # as the 410's message asks
    assert not channels.get(runtime.engine, "Ops hook", actor=ADMIN).enabled  # on again only when an admin says
    channels.set_enabled(runtime.engine, "ops HOOK", True, actor=ADMIN)
    assert channels.get(runtime.engine, "Ops hook", actor=ADMIN).disabled_reason is None
    failing_twice(runtime, view, "quality_management")
    delivery.deliver_due(runtime, worker="w", send=local_send)
    # Turned on again, it hears of what failed while it was off (Cloud Storage, still failing)
    # and of what fails now; the event its 410 failed is not queued twice.
    assert sorted((r.kind, r.path, r.body["product"]) for r in receiver.received) == [
        ("check.failed", "/moved", "cloud_storage"),
        ("check.failed", "/moved", "quality_management"),
    ]


def test_a_channel_changes_in_place_checked_like_a_new_one(runtime: Runtime, receiver: Receiver) -> None:
    channel(runtime, receiver, environments=["prod"])
    before = channels.get(runtime.engine, "Ops hook", actor=ADMIN)
    for change, label in [
        ({"url": SecretStr("https://169.254.169.254/latest")}, "URL"),
        ({"url": SecretStr("not a url")}, "URL"),
        ({"events": ["check.exploded"]}, "Events"),
        ({}, "Channel"),
        ({"events": list(before.events), "environments": ["prod"]}, "Channel"),
    ]:  # the same
        with pytest.raises(channels.ValidationError) as refused:
            channels.change(runtime.engine, runtime.vault, "Ops hook", actor=ADMIN, allow=LOCAL, **change)  # type: ignore[arg-type]
        assert refused.value.errors[0].label == label, change
    with pytest.raises(channels.NotFoundError):
        channels.change(runtime.engine, runtime.vault, "Nope", actor=ADMIN, allow=LOCAL, environments=[])
    assert channels.get(runtime.engine, "Ops hook", actor=ADMIN) == before  # nothing half-changed
    new_secret = "whsec_" + "TkVX" * 8
    after, _ = channels.change(
        runtime.engine,
        runtime.vault,
        "ops hook",
        actor=ADMIN,
        allow=LOCAL,
        url=SecretStr(receiver.url + "/next"),
        secret=SecretStr(new_secret),
        events=["check.recovered", "check.failed"],
        environments=[" ", ""],
    )
    assert (after.events, after.environments, after.url_hint) == (("check.failed", "check.recovered"), (), receiver.url)
    receiver.secret = new_secret
    assert alerts.send_test(runtime, "Ops hook", actor=ADMIN, send=local_send).delivered
    assert receiver.received[-1].path == "/next"
    (changed,) = [e for e in audit.events(runtime.engine, ADMIN) if e.action == "channel.change"]
    assert changed.detail == (
        f"URL now to {receiver.url}; new secret; events check.failed, check.recovered; environments all"
    )
    with read_session(runtime.engine) as session:
        stored = repr(session.exec(select(AlertChannel)).all()) + repr(session.exec(select(AuditEvent)).all())
    assert "/next" not in stored and new_secret not in stored


def test_two_workers_deliver_each_event_exactly_once(runtime: Runtime, receiver: Receiver) -> None:
    views = [
        connections.create(
            runtime.engine,
            runtime.vault,
            connections.ConnectionInput(
                name=f"Fleet {i}",
                client_id=f"fleet-client-{i:04d}",
                client_secret=SecretStr("s3cret-value"),
                **SETTINGS,
            ),
            actor=ADMIN,
        )
        for i in range(8)
    ]
    channel(runtime, receiver)
    for view in views:
        for product in PRODUCT_KEYS[:3]:
            failing_twice(runtime, view, product)
    assert len(outbox_rows(runtime)) == 24

    both_sending = threading.Barrier(2, timeout=30)
    sent_before: set[int] = set()  # the threads that have sent

    def side_by_side(destination: Destination, event: Event) -> object:
        """A worker's first send waits for the other's: both hold claimed rows at once."""
        if threading.get_ident() not in sent_before:
            sent_before.add(threading.get_ident())
            both_sending.wait()
        return local_send(destination, event)

    workers = [
        threading.Thread(
            target=delivery.deliver_due, args=(runtime,), kwargs={"worker": name, "send": side_by_side, "batch": 2}
        )
        for name in ("w1", "w2")
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert Counter(receiver.ids()) == Counter({row.event_id: 1 for row in outbox_rows(runtime)})
    assert {r.status for r in outbox_rows(runtime)} == {"delivered"}
    log = log_rows(runtime)
    assert len(log) == 24 and {r.worker for r in log} == {"w1", "w2"}


def _outcomes(rt: Runtime) -> dict[str, tuple[str, str | None]]:
    """Each channel's outbox row: its status and who holds it."""
    names = {c.id: c.name for c in channels.list_channels(rt.engine, actor=ADMIN)}
    return {names[r.channel_id]: (r.status, r.claimed_by) for r in outbox_rows(rt)}


def test_a_channel_value_that_cannot_be_sent_fails_alone_and_its_batch_is_delivered(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver, mail_server: MailServer
) -> None:
    """Issue 21, item 5: values saved before today's rules (a non-ASCII path raised httpcore's
    TypeError, a non-ASCII SMTP password smtplib's UnicodeEncodeError) settle as failed, once,
    and every other row of the same batch goes out; Send test never leaves its row claimed."""

    def send(destination: Destination, event: Event) -> Attempt:  # the real sender, trusting the mail server's CA
        return deliver(destination, event, allow=LOCAL, ssl_context=mail_server.client_tls)

    view = connect(runtime, simulator.scenario.apps[0])
    mail = f"smtp://{USER.replace('@', '%40')}@127.0.0.1:{mail_server.port}?{QUERY}"
    stored_channel(runtime, "Unicode hook", "webhook", f"{receiver.url}/hoök?team=ü", WEBHOOK_SECRET)
    stored_channel(runtime, "Unicode Slack", "slack", f"{receiver.url}/services/T0/B0/ünï")
    stored_channel(runtime, "Unicode Teams", "teams", f"{receiver.url}/workflows/é?sig=x")
    stored_channel(runtime, "Unicode mail", "email", mail, "pässwörd")
    channel(runtime, receiver)
    channels.add(
        runtime.engine,
        runtime.vault,
        "Good mail",
        "email",
        SecretStr(mail),
        actor=ADMIN,
        allow=LOCAL,
        secret=SecretStr(PASSWORD),
    )
    failing_twice(runtime, view)  # one check.failed for each of the six channels, in one batch
    assert delivery.deliver_due(runtime, worker="w", send=send) == 2
    assert receiver.kinds() == ["check.failed"] and len(mail_server.inbox.messages) == 1
    bad = ("Unicode hook", "Unicode Slack", "Unicode Teams", "Unicode mail")
    assert _outcomes(runtime) == {
        "Ops hook": ("delivered", None),
        "Good mail": ("delivered", None),
        **dict.fromkeys(bad, ("failed", None)),
    }
    log = {r.channel: r for r in log_rows(runtime)}
    assert {log[name].outcome for name in bad} == {"refused"}
    assert "must write its path and query in ASCII" in log["Unicode Slack"].error
    assert "SMTP password: must be printable ASCII" in log["Unicode mail"].error
    for name, said in (("Unicode hook", "path and query in ASCII"), ("Unicode mail", "printable ASCII")):
        attempt = alerts.send_test(runtime, name, actor=ADMIN, send=send)
        assert not attempt.delivered and said in attempt.error
    assert {status for status, holder in _outcomes(runtime).values()} == {"delivered", "failed"}
    assert all(r.claimed_by is None for r in outbox_rows(runtime))
    assert len(mail_server.inbox.messages) == 1 and receiver.kinds() == ["check.failed"]


def test_a_queued_event_that_cannot_be_read_fails_alone(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    view = connect(runtime, simulator.scenario.apps[0])
    channel(runtime, receiver)
    failing_twice(runtime, view)
    with write_session(runtime.engine) as session:  # an event of a kind this version does not know
        queued = session.exec(select(AlertOutbox)).one()
        good = queued.event_id
        session.add(
            AlertOutbox(
                **{
                    **queued.model_dump(exclude={"id"}),
                    "event_id": "evt_unreadable",
                    "event": {**queued.event, "kind": "check.exploded"},
                }
            )
        )
    assert delivery.deliver_due(runtime, worker="w", send=local_send) == 1
    assert receiver.kinds() == ["check.failed"]
    assert {(r.event_id, r.status, r.claimed_by) for r in outbox_rows(runtime)} == {
        (good, "delivered", None),
        ("evt_unreadable", "failed", None),
    }
    (unreadable,) = [r for r in log_rows(runtime) if r.event_id == "evt_unreadable"]
    assert (unreadable.outcome, unreadable.error) == (
        "refused",
        "The queued event could not be read (ValueError); this alert cannot be sent.",
    )


def test_a_batch_of_attempts_ends_inside_its_lease() -> None:
    """Each attempt is cut off at TIMEOUT in all (lib.notify.deadline, tested in
    tests/test_notify_send.py), so a claimed batch is done before another worker may take it."""
    assert delivery.BATCH * delivery.TIMEOUT < delivery.LEASE.total_seconds() * 0.75


def test_the_same_event_is_queued_once(runtime: Runtime, simulator: SimulatorServer, receiver: Receiver) -> None:
    view = connect(runtime, simulator.scenario.apps[0])
    channel(runtime, receiver)
    failing_twice(runtime, view)
    (row,) = outbox_rows(runtime)
    with write_session(runtime.engine) as session:  # raised again (another worker, a restart): ignored
        from lib.services.alerts.outbox import enqueue

        enqueue(session, [(alerts.events.from_json(row.event), view.id)], utcnow())
    assert len(outbox_rows(runtime)) == 1


# --- quiet windows, reminders, drift, secret age --------------------------------------------------


def test_a_quiet_window_holds_events_then_sends_one_summary_without_what_recovered(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    one, two = (connect(runtime, a, name) for a, name in zip(simulator.scenario.apps[:2], ("One", "Two"), strict=True))
    channel(runtime, receiver, events=["check.failed", "check.recovered"])
    channels.add_window(runtime.engine, "Ops hook", Window((0,), "11:00", "13:00", "Europe/London"), actor=ADMIN)
    monday_noon = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)  # a Monday; London is on UTC in January
    failing_twice(runtime, one)
    failing_twice(runtime, two)
    delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: monday_noon)
    assert [r.status for r in outbox_rows(runtime)] == ["held", "held"]
    with write_session(runtime.engine) as session:  # One recovers inside the window
        checks.store(session, [CheckRecord(one.id, "One", "cc_chat", "ok", 200, 5, "", utcnow(), "r")], {}, "t")
    alerts.tick(runtime, worker="w", send=local_send, now=lambda: monday_noon + timedelta(minutes=30))
    assert receiver.received == []  # still quiet
    alerts.tick(runtime, worker="w", send=local_send, now=lambda: monday_noon + timedelta(hours=1, minutes=1))
    assert receiver.kinds() == ["window.summary"]
    (summary,) = (r.body for r in receiver.received)
    assert [(e["kind"], e["connection"]) for e in summary["details"]["events"]] == [("check.failed", "Two")]
    assert summary["details"]["still_failing"] == ["Two: Contact Center Chat"]  # what people must still act on
    assert summary["summary"].endswith("held during a quiet window; still failing: Two: Contact Center Chat")
    assert sorted(r.status for r in outbox_rows(runtime)) == ["delivered", "summarised", "summarised", "summarised"]


def test_a_channel_that_joins_while_problems_are_open_hears_of_them_at_once(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    """Issue 25: a channel added (or turned on again) while a product fails heard nothing until
    the 24-hour reminder. It now gets the open episode's check.failed, the same event the first
    channel had (one id), and nothing of what recovered or what it does not route."""
    one, two, three = (
        connect(runtime, a, name) for a, name in zip(simulator.scenario.apps[:3], ("One", "Two", "Three"), strict=True)
    )
    channel(runtime, receiver, name="First", path="/first")
    failing_twice(runtime, one)
    failing_twice(runtime, two)
    failing_twice(runtime, three)
    with write_session(runtime.engine) as session:  # Three recovers before anyone else joins
        checks.store(session, [CheckRecord(three.id, "Three", "cc_chat", "ok", 200, 5, "", utcnow(), "r")], {}, "t")
    delivery.deliver_due(runtime, worker="w", send=local_send)
    first = {r.body["connection"]: r.headers["webhook-id"] for r in receiver.received if r.kind == "check.failed"}
    assert set(first) == {"One", "Two", "Three"}
    receiver.received.clear()
    channel(runtime, receiver, name="Joins late", path="/late")
    channel(runtime, receiver, name="Recoveries only", path="/quiet", events=["check.recovered"])
    delivery.deliver_due(runtime, worker="w", send=local_send)
    late = [r for r in receiver.received if r.path == "/late"]
    assert sorted(r.body["connection"] for r in late) == ["One", "Two"]
    assert {r.body["connection"]: r.headers["webhook-id"] for r in late} == {k: first[k] for k in ("One", "Two")}
    assert all(r.kind == "check.failed" and r.body["previous_outcome"] is None for r in late)
    assert not [r for r in receiver.received if r.path != "/late"]  # the first heard nothing twice
    receiver.received.clear()
    channels.set_enabled(runtime.engine, "Joins late", False, actor=ADMIN)
    channels.set_enabled(runtime.engine, "Joins late", True, actor=ADMIN)
    delivery.deliver_due(runtime, worker="w", send=local_send)
    assert receiver.received == []  # turned on again: what it already had is not sent twice


def test_a_summary_names_a_few_of_what_still_fails_and_counts_the_rest() -> None:
    still = [f"Connection {i}: Contact Center Chat" for i in range(STILL_LISTED + 20)]
    event = summary_event(uuid.uuid4(), [], at=datetime(2030, 1, 7, tzinfo=UTC), still_failing=still)
    assert event.summary.endswith(
        f", Connection {STILL_NAMED - 1}: Contact Center Chat and {len(still) - STILL_NAMED} more"
    )
    assert event.details["still_failing"] == still[:STILL_LISTED]


def test_windows_cover_their_days_across_midnight_in_their_zone() -> None:
    night = Window((4,), "22:00", "06:00", "America/New_York")  # Friday night
    saturday_3am_ny = datetime(2030, 1, 12, 8, 0, tzinfo=UTC)
    assert night.covers(saturday_3am_ny)
    assert not night.covers(saturday_3am_ny + timedelta(hours=4))
    assert not night.covers(saturday_3am_ny + timedelta(days=1))  # Saturday night is not in it


def test_still_failing_is_sent_every_24_hours_while_down(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    view = connect(runtime, simulator.scenario.apps[0])
    channel(runtime, receiver)
    failing_twice(runtime, view)
    now = utcnow()
    for hours in (1, 25, 26, 49):
        alerts.tick(runtime, worker="w", send=local_send, now=lambda: now + timedelta(hours=hours))  # noqa: B023
    assert receiver.kinds() == ["check.failed", "check.still_failing", "check.still_failing"]
    assert [r.body["details"]["reminder"] for r in receiver.received[1:]] == [1, 2]


def test_finished_outbox_rows_and_log_entries_are_pruned_after_keep_and_never_raised_again(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    view = connect(runtime, simulator.scenario.apps[0])
    channel(runtime, receiver, events=["check.failed"])  # the daily reminders go elsewhere
    failing_twice(runtime, view)
    alerts.tick(runtime, worker="w", send=local_send)
    assert receiver.kinds() == ["check.failed"]
    with write_session(runtime.engine) as session:  # a second event still waiting to be sent
        pending = AlertOutbox(
            **{
                **session.exec(select(AlertOutbox)).one().model_dump(exclude={"id"}),
                "event_id": "still-pending",
                "status": "pending",
                "due_at": utcnow() + timedelta(days=400),
                "finished_at": None,
            }
        )
        session.add(pending)

    def stored(now: datetime) -> tuple[list[str], int]:
        alerts.tick(runtime, worker="w", send=local_send, now=lambda: now)
        with read_session(runtime.engine) as session:
            return (
                [r.status for r in session.exec(select(AlertOutbox).order_by(AlertOutbox.id))],
                len(session.exec(select(AlertDelivery)).all()),
            )

    assert stored(utcnow() + KEEP - timedelta(days=1)) == (["delivered", "pending"], 1)
    assert stored(utcnow() + KEEP + timedelta(days=1)) == (["pending"], 0)
    assert receiver.kinds() == ["check.failed"]  # nothing was raised or sent again


def test_drift_from_the_tokens_product_list(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory, receiver: Receiver
) -> None:
    sim = simulator_factory(Scenario(apps=[app(products=("cloud_storage", "cc_chat"))]))
    view = connect(runtime, sim.scenario.apps[0], granted_products=PRODUCT_KEYS)  # as linking saw it
    channel(runtime, receiver, events=["products.drifted"])
    prober = prober_factory(sim.url)
    run(runtime, prober, view, "cloud_storage")
    run(runtime, prober, view, "cloud_storage")  # the same answer again: nothing new
    alerts.tick(runtime, worker="w", send=local_send)
    assert receiver.kinds() == ["products.drifted"]
    details = receiver.received[0].body["details"]
    assert details["removed"] == ["cc_historical_analytics", "cc_realtime_analytics", "quality_management"]
    assert details["ticked_not_granted"] == [] and details["added"] == []


def test_secret_aging_once_per_step(runtime: Runtime, simulator: SimulatorServer, receiver: Receiver) -> None:
    view = connect(runtime, simulator.scenario.apps[0])
    channel(runtime, receiver, events=["secret.aging"])
    now = utcnow()
    with write_session(runtime.engine) as session:
        session.exec(
            update(Connection)
            .where(Connection.id == view.id)  # type: ignore[call-overload,arg-type]
            .values(secret_set_at=now - timedelta(days=200))
        )
    for days in (0, 1, 5, 12):  # one announcement for the 180-209 day step, the next at 212
        alerts.tick(runtime, worker="w", send=local_send, now=lambda: now + timedelta(days=days))  # noqa: B023
    assert [r.body["details"]["age_days"] for r in receiver.received] == [200, 212]


# --- channels, test, secrets -----------------------------------------------------------------------


def test_send_test_reaches_the_channel_at_once_and_is_audited(runtime: Runtime, receiver: Receiver) -> None:
    channel(runtime, receiver)
    channels.add_window(runtime.engine, "Ops hook", Window(tuple(range(7)), "00:00", "23:59", "UTC"), actor=ADMIN)
    attempt = alerts.send_test(runtime, "ops hook", actor=ADMIN, send=local_send)  # quiet windows hold no test
    assert attempt.delivered and receiver.kinds() == ["channel.test"]
    receiver.answer(500)
    assert not alerts.send_test(runtime, "Ops hook", actor=ADMIN, send=local_send).delivered
    assert [(e.action, e.result) for e in audit.events(runtime.engine, ADMIN) if e.action == "channel.test"] == [
        ("channel.test", "ok"),
        ("channel.test", "failed"),
    ]
    assert [r.status for r in outbox_rows(runtime)] == ["delivered", "failed"]  # a test is never retried


def test_channel_input_is_checked_and_names_the_field(runtime: Runtime, receiver: Receiver) -> None:
    with pytest.raises(channels.ValidationError) as bad_url:
        channels.add(
            runtime.engine,
            runtime.vault,
            "X",
            "webhook",
            SecretStr("https://169.254.169.254/latest"),
            actor=ADMIN,
            secret=SecretStr(WEBHOOK_SECRET),
            allow=LOCAL,
        )
    assert bad_url.value.errors[0].label == "URL"
    for kind, events, label in [("pager", None, "Kind"), ("webhook", ["check.exploded"], "Events")]:
        with pytest.raises(channels.ValidationError) as refused:
            channels.add(
                runtime.engine,
                runtime.vault,
                "X",
                kind,
                SecretStr(receiver.url),
                actor=ADMIN,
                events=events,
                secret=SecretStr(WEBHOOK_SECRET),
                allow=LOCAL,
            )
        assert refused.value.errors[0].label == label
    channel(runtime, receiver)
    with pytest.raises(channels.ValidationError, match="Another channel"):
        channel(runtime, receiver, "OPS HOOK")
    assert channels.get(runtime.engine, "ops hook", actor=ADMIN).url_hint == receiver.url


def test_no_secret_client_id_channel_path_or_webhook_secret_in_any_row_or_log_line(
    runtime: Runtime,
    simulator_factory: SimulatorFactory,
    prober_factory: ProberFactory,
    receiver: Receiver,
    sentinels: Sentinels,
    caplog: pytest.LogCaptureFixture,
) -> None:
    install(caplog.handler)  # as the server's and the commands' logging is set up
    caplog.set_level(logging.DEBUG)
    sim = simulator_factory(Scenario(apps=[app(sentinels.client_id, sentinels.client_secret)]))
    view = connect(runtime, sim.scenario.apps[0])
    path, hook_secret = f"/hooks/SENTINELPATH{uuid.uuid4().hex}", f"whsec_SENTINELHOOK{uuid.uuid4().hex}"
    receiver.secret = hook_secret
    channel(runtime, receiver, path=path, secret=SecretStr(hook_secret))
    channel(runtime, receiver, "Gone hook", path=path + "-gone", secret=SecretStr(hook_secret))
    prober = prober_factory(sim.url)
    fail(sim)
    receiver.answer(500)
    receiver.answer(410)
    run(runtime, prober, view)
    run(runtime, prober, view)
    t0 = utcnow()
    for seconds in (0, 10):
        delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: t0 + timedelta(seconds=seconds))  # noqa: B023
    alerts.send_test(runtime, "Ops hook", actor=ADMIN, send=local_send)
    assert receiver.kinds() == ["check.failed", "channel.test"] and receiver.received[0].path == path
    with read_session(runtime.engine) as session:
        texts = [
            repr(r)
            for model in (AlertOutbox, AlertDelivery, AuditEvent, AlertChannel)
            for r in session.exec(select(model)).all()
        ]  # type: ignore[call-overload]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(r.body) for r in receiver.received]
    for sentinel in (
        sentinels.client_id,
        sentinels.client_secret,
        path.strip("/"),
        "SENTINELPATH",
        hook_secret,
        "SENTINELHOOK",
    ):
        assert not [t for t in texts if sentinel in t], sentinel


def test_reading_needs_a_sign_in_changing_needs_an_admin(runtime: Runtime, receiver: Receiver) -> None:
    from lib.services.guard.access import NotAllowed, Principal, Role

    operator = Principal("op", Role.OPERATOR, via="cli")
    channel(runtime, receiver)
    assert [c.name for c in channels.list_channels(runtime.engine, actor=operator)] == ["Ops hook"]
    assert (
        alerts.outbox(runtime.engine, actor=operator) == []
        and alerts.delivery_log(runtime.engine, actor=operator) == []
    )
    for change in (
        lambda: channels.remove(runtime.engine, "Ops hook", actor=operator),
        lambda: channels.set_enabled(runtime.engine, "Ops hook", False, actor=operator),
        lambda: channels.change(
            runtime.engine, runtime.vault, "Ops hook", actor=operator, allow=LOCAL, environments=["prod"]
        ),
        lambda: alerts.send_test(runtime, "Ops hook", actor=operator, send=local_send),
        lambda: channels.add(
            runtime.engine, runtime.vault, "Other", "webhook", SecretStr(receiver.url), actor=operator, allow=LOCAL
        ),
    ):
        with pytest.raises(NotAllowed):
            change()
    channels.remove(runtime.engine, "ops hook", actor=ADMIN)
    assert channels.list_channels(runtime.engine, actor=operator) == []
