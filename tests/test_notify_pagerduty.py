"""PagerDuty channels (issue 25): each message a local receiver on 127.0.0.1 gets is checked
against the Events API v2 as PagerDuty documents it ("Send an Alert Event", written below as a
JSON Schema); a failure triggers and its recovery resolves the same alert, through the rules,
the outbox and the worker; PagerDuty's answers (202, 400, 429, 5xx) mean what its docs say; the
URL and the integration key are checked; and no secret is written anywhere but the routing key.
Real SQLite file and real PostgreSQL for the end-to-end tests."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from pydantic import SecretStr
from sqlmodel import select

from lib.kernel.errors import ValidationError
from lib.kernel.redaction import install
from lib.notify import payloads
from lib.notify.kinds import pagerduty
from lib.notify.models import Destination, Event, EventKind
from lib.notify.send import check_destination, deliver
from lib.notify.ssrf import Allow
from lib.services import alerts
from lib.services.alerts import channels, delivery
from lib.services.alerts.events import channel_test_event, maintenance_event, summary_event
from lib.services.checking import checks
from lib.services.connections import ConnectionView
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.store.db import read_session, write_session
from lib.store.models import AlertChannel, AlertDelivery, AlertOutbox, AuditEvent
from tests.fixtures.alerts import local_send
from tests.fixtures.notify import LOCAL, sample_event
from tests.fixtures.people import ADMIN
from tests.fixtures.receiver import Answer, Receiver
from tests.fixtures.storage import Sentinels
from tests.test_alerts import app, connect, log_rows, outbox_rows
from tests.test_moments import not_machine_form

# PagerDuty's Events API v2, "Send an Alert Event" (developer.pagerduty.com, and the OpenAPI
# description in PagerDuty/api-schema: reference/events-v2/openapiv3.json), as a JSON Schema.
# Stricter than PagerDuty only where it documents a field and we would never send another:
# no property it does not document.
LINK = {"type": "string", "pattern": "^https?://"}
EVENTS_API_V2 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["routing_key", "event_action"],
    "additionalProperties": False,
    "properties": {
        "routing_key": {"type": "string", "minLength": 32, "maxLength": 32},  # "the 32 character Integration Key"
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "additionalProperties": False,
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "format": "date-time"},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
        "client": {"type": "string"},
        "client_url": LINK,
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["href"],
                "additionalProperties": False,
                "properties": {"href": LINK, "text": {"type": "string"}},
            },
        },
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["src"],
                "additionalProperties": False,
                "properties": {
                    "src": {"type": "string", "pattern": "^https://"},
                    "href": LINK,
                    "alt": {"type": "string"},
                },
            },
        },
    },
    "allOf": [
        {"if": {"properties": {"event_action": {"const": "trigger"}}}, "then": {"required": ["payload"]}},
        {
            "if": {"properties": {"event_action": {"enum": ["acknowledge", "resolve"]}}},
            "then": {"required": ["dedup_key"]},
        },
    ],
}
VALIDATOR = jsonschema.Draft202012Validator(
    EVENTS_API_V2, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
ENQUEUE = "/v2/enqueue"
FAILING_SINCE = datetime(2025, 6, 2, 9, 28, tzinfo=UTC)


def integration_key() -> str:
    """A well-formed, greppable integration key: 32 letters and digits."""
    return f"SENTINELKEY{uuid.uuid4().hex[:21]}"


def messages(receiver: Receiver) -> list[dict[str, Any]]:
    """What the receiver got, each message checked against the Events API v2 schema."""
    found = []
    for request in receiver.received:
        assert (request.path, request.headers["content-type"]) == (ENQUEUE, "application/json")
        message = json.loads(request.body)
        VALIDATOR.validate(message)
        found.append(message)
    return found


def check_event(kind: EventKind = EventKind.FAILED, **changes: Any) -> Event:
    return sample_event(**{"kind": kind, "details": {"failures_in_a_row": 2, "failing_since": FAILING_SINCE}} | changes)


def send(receiver: Receiver, event: Event, key: str) -> Any:
    return deliver(Destination("pagerduty", receiver.url(ENQUEUE), key), event, allow=LOCAL)


# --- the schema means something ------------------------------------------------------------------

DOCUMENTED_EXAMPLE = {  # PagerDuty's own example request, less its image
    "payload": {
        "summary": "DISK at 99% on machine prod-datapipe03.example.com",
        "timestamp": "2015-07-17T08:42:58.315+00:00",
        "severity": "critical",
        "source": "prod-datapipe03.example.com",
        "component": "mysql",
        "group": "prod-datapipe",
        "class": "disk",
        "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75},
    },
    "routing_key": "e93facc04764012d7bfb002500d5d1a6",
    "dedup_key": "srv01/mysql",
    "event_action": "trigger",
    "client": "Sample Monitoring Service",
    "client_url": "https://monitoring.service.com",
    "links": [{"href": "http://pagerduty.example.com", "text": "An example link."}],
}


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda m: m["payload"].update(summary="x" * 1025), "payload.summary"),
        (lambda m: m["payload"].update(severity="fatal"), "payload.severity"),
        (lambda m: m["payload"].pop("source"), "payload"),
        (lambda m: m["payload"].update(timestamp="yesterday"), "payload.timestamp"),
        (lambda m: m.update(event_action="resolve", dedup_key="k" * 256), "dedup_key"),
        (lambda m: (m.pop("dedup_key"), m.update(event_action="resolve")), ""),
        (lambda m: m.pop("payload"), ""),
        (lambda m: m.update(routing_key="short"), "routing_key"),
        (lambda m: m.update(severity="error"), ""),  # in the wrong place
    ],
)
def test_the_schema_takes_pagerdutys_example_and_refuses_what_pagerduty_would(change: Any, path: str) -> None:
    VALIDATOR.check_schema(EVENTS_API_V2)
    VALIDATOR.validate(DOCUMENTED_EXAMPLE)
    wrong = json.loads(json.dumps(DOCUMENTED_EXAMPLE))
    change(wrong)
    errors = list(VALIDATOR.iter_errors(wrong))
    assert errors and any(".".join(map(str, e.absolute_path)) == path for e in errors), errors


# --- a failure triggers, its recovery resolves: end to end ------------------------------------------


def stored(rt: Runtime, view: ConnectionView, outcome: str, at: datetime) -> None:
    """A check result stored as a check stores it, at ``at``: the rules run in its transaction."""
    with write_session(rt.engine) as session:
        checks.store(
            session,
            [CheckRecord(view.id, view.name, "cc_chat", outcome, 200 if outcome == "ok" else 401, 5, "", at, "r")],
            {},
            "test",
        )


def test_a_failure_triggers_and_its_recovery_resolves_the_same_alert_with_no_secret_anywhere(
    runtime: Runtime, sentinels: Sentinels, caplog: pytest.LogCaptureFixture
) -> None:
    install(caplog.handler)  # as the server's and the commands' logging is set up
    caplog.set_level(logging.DEBUG)
    rt = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, public_origin="https://switchboard.example.com")
    )
    view = connect(rt, app(sentinels.client_id, sentinels.client_secret), "Acme prod", "prod")
    key = integration_key()
    with Receiver(Answer(202)) as receiver:
        channels.add(
            rt.engine,
            rt.vault,
            "Pager",
            "pagerduty",
            SecretStr(receiver.url(ENQUEUE)),
            actor=ADMIN,
            allow=LOCAL,
            secret=SecretStr(key),
        )
        t0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
        for minutes, outcome in enumerate(
            [
                "ok",
                "bad_credentials",
                "bad_credentials",
                "ok",  # an episode
                "bad_credentials",
                "bad_credentials",
            ]
        ):  # and the next
            stored(rt, view, outcome, t0 + timedelta(minutes=minutes))
            delivery.deliver_due(rt, worker="w", send=local_send, now=lambda: t0 + timedelta(hours=1))
        assert alerts.send_test(rt, "Pager", actor=ADMIN, send=local_send).delivered
        sent = messages(receiver)
    assert [(m["event_action"], m["dedup_key"]) for m in sent] == [
        ("trigger", "switchboard/check/Acme prod/cc_chat/2030-01-07T12:01:00Z"),
        ("resolve", sent[0]["dedup_key"]),
        ("trigger", "switchboard/check/Acme prod/cc_chat/2030-01-07T12:04:00Z"),
        ("trigger", sent[3]["dedup_key"]),
        ("resolve", sent[3]["dedup_key"]),
    ]  # the test: an alert of its own
    assert sent[3]["dedup_key"].startswith("switchboard/evt_test_") and sent[3]["payload"]["severity"] == "info"
    failed = sent[0]
    link = "https://switchboard.example.com/connections?connection=Acme%20prod"
    assert {k: v for k, v in failed["payload"].items() if k != "custom_details"} == {
        "summary": "Acme prod: Contact Center Chat failing (Credentials refused) · environment prod · "
        "who must act: 8x8 admin (Admin Console)",
        "source": "Switchboard: Acme prod",
        "severity": "error",
        "timestamp": "2030-01-07T12:02:00Z",
        "component": "cc_chat",
        "group": "prod",
        "class": "bad_credentials",
    }
    details = failed["payload"]["custom_details"]
    assert details["Fix"] and details["Failing since"] == "2030-01-07 12:01 UTC" and details["Link"] == link
    assert (failed["client"], failed["client_url"], failed["links"]) == (
        "Switchboard",
        link,
        [{"href": link, "text": "Open in Switchboard"}],
    )
    assert set(sent[1]) == {"routing_key", "event_action", "dedup_key"}  # a resolve, as PagerDuty documents it
    assert {m["routing_key"] for m in sent} == {key} and not_machine_form(sent) == []
    with read_session(rt.engine) as session:
        texts = [
            repr(r)
            for model in (AlertOutbox, AlertDelivery, AuditEvent, AlertChannel)
            for r in session.exec(select(model)).all()
        ]  # type: ignore[call-overload]
    texts += [r.getMessage() for r in caplog.records] + [str(r.__dict__) for r in caplog.records]
    texts += [json.dumps({k: v for k, v in m.items() if k != "routing_key"}) for m in sent]
    for sentinel in (sentinels.client_id, sentinels.client_secret, key, "SENTINEL"):
        assert not [t for t in texts if sentinel in t], sentinel


def test_pagerdutys_429_is_retried_after_its_wait_and_its_400_is_never_retried(runtime: Runtime) -> None:
    view = connect(runtime, app())
    t0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
    with Receiver(Answer(429, {"Retry-After": "120"}), Answer(503), Answer(202), Answer(400)) as receiver:
        channels.add(
            runtime.engine,
            runtime.vault,
            "Pager",
            "pagerduty",
            SecretStr(receiver.url(ENQUEUE)),
            actor=ADMIN,
            allow=LOCAL,
            secret=SecretStr(integration_key()),
        )
        stored(runtime, view, "bad_credentials", t0)
        stored(runtime, view, "bad_credentials", t0)
        for seconds in (0, 119, 120, 125, 125 + 300):  # throttled, wait asked for; then a 503, then the back-off
            delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: t0 + timedelta(seconds=seconds))  # noqa: B023
        stored(runtime, view, "ok", t0 + timedelta(minutes=1))  # its resolve: PagerDuty calls it invalid
        for hours in (1, 2, 8):
            delivery.deliver_due(runtime, worker="w", send=local_send, now=lambda: t0 + timedelta(hours=hours))  # noqa: B023
        sent = messages(receiver)
    assert [m["event_action"] for m in sent] == ["trigger", "trigger", "trigger", "resolve"]
    assert [(r.kind, r.attempt, r.outcome, r.http_status) for r in log_rows(runtime)] == [
        ("check.failed", 1, "retrying", 429),
        ("check.failed", 2, "retrying", 503),
        ("check.failed", 3, "delivered", 202),
        ("check.recovered", 1, "refused", 400),
    ]
    assert [(r.status, r.attempts) for r in outbox_rows(runtime)] == [("delivered", 3), ("failed", 1)]
    assert "PagerDuty found the event invalid" in log_rows(runtime)[-1].error


# --- each event, one attempt -----------------------------------------------------------------------

EVENTS = {  # each kind, what PagerDuty is told: the actions in order, and a trigger's severity
    EventKind.FAILED: (["trigger"], "error"),
    EventKind.STILL_FAILING: (["trigger"], "error"),
    EventKind.RECOVERED: (["resolve"], None),
    EventKind.ACKNOWLEDGED: (["acknowledge"], None),
    EventKind.DRIFTED: (["trigger"], "warning"),
    EventKind.SECRET_AGING: (["trigger"], "warning"),
    EventKind.QUIET_SUMMARY: (["trigger"], "error"),
    EventKind.MAINTENANCE_ENDED: (["trigger"], "error"),
    EventKind.TEST: (["trigger", "resolve"], "info"),
}


def an_event(kind: EventKind) -> Event:
    if kind is EventKind.TEST:
        return channel_test_event("Pager", at=datetime.now(UTC), by="admin")
    if kind is EventKind.QUIET_SUMMARY:
        return summary_event(
            uuid.uuid4(),
            [check_event(EventKind.DRIFTED), check_event(), check_event(EventKind.RECOVERED)],
            at=datetime.now(UTC),
        )
    if kind is EventKind.MAINTENANCE_ENDED:
        at = datetime.now(UTC)
        return maintenance_event(
            7,
            "environment production",
            starts_at=at - timedelta(hours=2),
            ends_at=at,
            reason="Rotating secrets",
            still_failing=["Acme EU: Contact Center Chat"],
            connection=None,
            environment="production",
            at=at,
        )
    return check_event(kind)


def test_every_kind_of_event_has_its_actions() -> None:
    assert set(EVENTS) == set(EventKind)


@pytest.mark.parametrize("kind", list(EventKind))
def test_each_kind_of_event_is_sent_as_pagerduty_documents(kind: EventKind) -> None:
    actions, severity = EVENTS[kind]
    key = integration_key()
    with Receiver(Answer(202)) as receiver:
        attempt = send(receiver, an_event(kind), key)
        sent = messages(receiver)
    assert (attempt.delivered, attempt.status, attempt.error) == (True, 202, None)
    assert [m["event_action"] for m in sent] == actions
    assert len({m["dedup_key"] for m in sent}) == 1 and {m["routing_key"] for m in sent} == {key}
    assert [m["payload"]["severity"] for m in sent if "payload" in m] == [severity] * actions.count("trigger")


def test_a_failure_its_reminders_and_its_recovery_share_a_key_other_episodes_and_kinds_do_not() -> None:
    key = payloads.pagerduty_dedup_key
    failed = check_event()
    assert key(failed) == key(check_event(EventKind.STILL_FAILING)) == key(check_event(EventKind.RECOVERED))
    assert key(failed) == key(check_event(EventKind.ACKNOWLEDGED))  # someone took it on: PagerDuty acknowledges
    as_stored = check_event(EventKind.RECOVERED, details={"failing_since": FAILING_SINCE.isoformat()})
    assert key(as_stored) == key(failed)  # the outbox reads the moment back, or leaves it as text
    assert key(as_stored) == key(check_event(details={"failing_since": FAILING_SINCE.replace(tzinfo=None)}))
    assert (
        len(
            {
                key(failed),
                key(check_event(details={"failing_since": FAILING_SINCE + timedelta(seconds=1)})),
                key(check_event(product="cloud_storage")),
                key(check_event(connection="Acme US")),
                key(check_event(EventKind.DRIFTED)),
                key(check_event(EventKind.SECRET_AGING)),
            }
        )
        == 6
    )
    assert key(check_event(EventKind.DRIFTED, id="evt_1")) == key(check_event(EventKind.DRIFTED, id="evt_2"))


def test_a_quiet_windows_summary_is_as_severe_as_the_worst_it_held() -> None:
    def severity(*held: Event) -> str:
        body = payloads.pagerduty_body(summary_event(uuid.uuid4(), list(held), at=datetime.now(UTC)), "trigger")
        return str(body["payload"]["severity"])

    assert severity(check_event(EventKind.RECOVERED)) == "info"
    assert severity(check_event(EventKind.RECOVERED), check_event(EventKind.SECRET_AGING)) == "warning"
    assert severity(check_event(EventKind.DRIFTED), check_event(EventKind.STILL_FAILING)) == "error"


def test_long_words_are_cut_to_pagerdutys_limits() -> None:
    """A summary, a name or a detail longer than PagerDuty takes (a store may hold a name from
    before its limit) is cut, never refused by PagerDuty; an over-long key becomes its hash."""
    event = check_event(
        summary="Acme: " + "failing " * 300, connection="N" * 300, environment="e" * 300, fix="f" * 5000
    )
    body = payloads.pagerduty_body(event, "trigger")
    VALIDATOR.validate({"routing_key": integration_key(), **body})
    assert len(body["payload"]["summary"]) == 1024 and body["payload"]["summary"].endswith("…")
    assert len(body["payload"]["custom_details"]["Fix"]) == payloads.PAGERDUTY_DETAIL_MAX
    assert body["dedup_key"] == payloads.pagerduty_dedup_key(event) and len(body["dedup_key"]) < 255
    assert (
        body["dedup_key"]
        == payloads.pagerduty_body(dataclasses.replace(event, kind=EventKind.RECOVERED), "resolve")["dedup_key"]
    )


# --- PagerDuty's answers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "retry_after"),
    [
        (Answer(429, {"Retry-After": "30"}), 30.0),
        (Answer(429), None),  # PagerDuty need not say: the outbox's back-off
        (Answer(500), None),
        (Answer(503, {"Retry-After": "5"}), 5.0),
    ],
)
def test_throttled_and_server_errors_are_failures_to_retry(answer: Answer, retry_after: float | None) -> None:
    with Receiver(answer) as receiver:
        attempt = send(receiver, check_event(), integration_key())
    assert (attempt.delivered, attempt.refused, attempt.status, attempt.retry_after) == (
        False,
        False,
        answer.status,
        retry_after,
    )
    assert attempt.error and attempt.error.startswith(f"127.0.0.1 answered HTTP {answer.status}")


def test_an_invalid_event_is_not_sent_again() -> None:
    with Receiver(Answer(400)) as receiver:
        attempt = send(receiver, check_event(), integration_key())
    assert (attempt.delivered, attempt.refused, attempt.status) == (False, True, 400)
    assert attempt.error and attempt.error.startswith(
        "127.0.0.1 answered HTTP 400: PagerDuty found the event invalid, and sending it again would not change that. "
        "Check the channel's integration key"
    )


@pytest.mark.parametrize("second", [Answer(503), Answer(400)])
def test_a_test_whose_resolve_fails_is_not_delivered(second: Answer) -> None:
    with Receiver(Answer(202), second) as receiver:
        attempt = send(receiver, an_event(EventKind.TEST), integration_key())
        sent = messages(receiver)
    assert [m["event_action"] for m in sent] == ["trigger", "resolve"]
    assert (attempt.delivered, attempt.status, attempt.refused) == (False, second.status, second.status == 400)


def test_the_integration_key_is_in_no_error_log_line_or_payload(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = integration_key()
    attempts = []
    with Receiver(
        Answer(202),
        Answer(400),
        Answer(429, {"Retry-After": "3"}),
        Answer(500),
        Answer(302, {"Location": "http://10.0.0.1/x"}),
        Answer(hang=True),
    ) as receiver:
        for _ in range(6):
            attempts.append(
                deliver(Destination("pagerduty", receiver.url(ENQUEUE), key), check_event(), allow=LOCAL, timeout=0.5)
            )
        sent = [json.loads(r.body) for r in receiver.received]
    attempts.append(
        deliver(
            Destination("pagerduty", "https://events.pagerduty.invalid/v2/enqueue", key), check_event(), allow=Allow()
        )
    )
    attempts.append(deliver(Destination("pagerduty", receiver.url(ENQUEUE), key + "x"), check_event(), allow=LOCAL))
    assert [a.delivered for a in attempts] == [True] + [False] * 7 and len(sent) == 6
    assert attempts[-1].refused and attempts[-1].error == "Integration key: is 33 characters long; at most 32."
    written = [a.error or "" for a in attempts] + [r.getMessage() for r in caplog.records]
    written += [str(r.__dict__) for r in caplog.records]
    written += [json.dumps({k: v for k, v in m.items() if k != "routing_key"}) for m in sent]
    assert caplog.records and all(m["routing_key"] == key for m in sent)
    assert not [text for text in written if key in text or "SENTINELKEY" in text]
    assert key not in repr(Destination("pagerduty", receiver.url(ENQUEUE), key))


# --- the channel's fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", [pagerduty.EVENTS_URL, pagerduty.EU_EVENTS_URL, "https://events.pagerduty.com:443/v2/enqueue"]
)
def test_pagerdutys_us_and_eu_addresses_are_taken(url: str) -> None:
    pagerduty.KIND.check(url, integration_key(), allow=Allow())
    check_destination("pagerduty", url, allow=Allow())


@pytest.mark.parametrize(
    "url",
    [
        "https://events.pagerduty.com/v2/enqueue?x=1",
        "https://events.pagerduty.com/v1/enqueue",
        "https://events.pagerduty.com/v2/change/enqueue",
        "https://events.pagerduty.com.example.com/v2/enqueue",
        "https://example.com/v2/enqueue",
        "https://api.pagerduty.com/v2/enqueue",
        "https://events.pagerduty.com:8443/v2/enqueue",
        "https://pagerduty.com/v2/enqueue",
    ],
)
def test_any_other_address_is_refused_with_the_two_to_choose_from(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        pagerduty.KIND.check(url, integration_key(), allow=Allow())
    assert [(e.field, e.message) for e in refused.value.errors] == [
        (
            "url",
            (
                "must be PagerDuty's Events API v2 address: https://events.pagerduty.com/v2/enqueue, or "
                "https://events.eu.pagerduty.com/v2/enqueue for an account in PagerDuty's EU service region."
            ),
        )
    ]


def test_plain_http_and_internal_addresses_are_refused_and_an_allowed_host_takes_any_path() -> None:
    for url, said in [
        ("http://events.pagerduty.com/v2/enqueue", "must start with https://"),
        ("https://10.0.0.1/v2/enqueue", "10.0.0.1, a private address"),
    ]:
        with pytest.raises(ValidationError, match=said):
            check_destination("pagerduty", url, allow=Allow())
    pagerduty.KIND.check("http://127.0.0.1:8080/any/path", integration_key(), allow=LOCAL)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            None,
            (
                "is missing; copy the Integration Key from the service's Events API v2 integration in PagerDuty "
                "(Services > the service > Integrations)."
            ),
        ),
        ("e93facc04764012d7bfb002500d5d1a", "must be 32 letters and digits (this one has 31 characters); copy"),
        ("e93facc0-4764-012d-7bfb-002500d5", "must be 32 letters and digits (this one has other characters); copy"),
        ("e93facc04764012d7bfb002500d5d1ä6", "must be 32 letters and digits (this one has other characters); copy"),
        ("e93facc04764012d7bfb002500d5d1a6f", "is 33 characters long; at most 32."),
    ],
)
def test_the_integration_key_is_32_letters_and_digits_and_never_quoted(key: str | None, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        pagerduty.KIND.check(pagerduty.EVENTS_URL, key, allow=Allow())
    [error] = refused.value.errors
    assert (error.field, error.label) == ("secret", "Integration key") and error.message.startswith(message)
    assert not key or key not in str(refused.value)
    for good in ("e93facc04764012d7bfb002500d5d1a6", "R0123ABCDEFGHIJKLMNOPQRSTUVWXYZ0"):  # a service's, a ruleset's
        pagerduty.KIND.check(pagerduty.EVENTS_URL, good, allow=Allow())
