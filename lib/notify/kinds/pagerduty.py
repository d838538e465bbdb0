"""PagerDuty: an alert through the Events API v2, which a failure triggers and its recovery
resolves (one dedup key per episode: lib.notify.payloads.pagerduty_dedup_key). The secret is the
integration's routing key, which travels in each message's body; the URL is PagerDuty's own,
its US or its EU service region's."""

from __future__ import annotations

import re
import ssl
from dataclasses import replace
from typing import Any
from urllib.parse import SplitResult

from lib.notify import payloads
from lib.notify.deadline import Deadline
from lib.notify.models import Attempt, Destination, Event
from lib.notify.posting import JsonPost
from lib.notify.spec import Field, Given, Kind, Sender
from lib.notify.ssrf import Pinned
from lib.notify.urls import web_url

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
EU_EVENTS_URL = "https://events.eu.pagerduty.com/v2/enqueue"  # accounts in PagerDuty's EU service region
_HOSTS = ("events.pagerduty.com", "events.eu.pagerduty.com")
_PATH = "/v2/enqueue"
INTEGRATION_KEY_LENGTH = 32
_INTEGRATION_KEY = re.compile(r"[A-Za-z0-9]{32}")  # a service integration's (hex) or a ruleset's (R…)
WHERE_THE_KEY_IS = (
    "copy the Integration Key from the service's Events API v2 integration in PagerDuty "
    "(Services > the service > Integrations)"
)


def _shape(parts: SplitResult) -> str | None:
    if parts.hostname in _HOSTS and parts.path == _PATH and not parts.query and parts.port in (None, 443):
        return None
    return (
        f"must be PagerDuty's Events API v2 address: {EVENTS_URL}, or {EU_EVENTS_URL} for an account "
        "in PagerDuty's EU service region."
    )


def _integration_key(key: str, given: Given) -> str | None:
    if not key:
        return f"is missing; {WHERE_THE_KEY_IS}."
    if not _INTEGRATION_KEY.fullmatch(key):
        has = f"{len(key)} characters" if len(key) != INTEGRATION_KEY_LENGTH else "other characters"
        return f"must be {INTEGRATION_KEY_LENGTH} letters and digits (this one has {has}); {WHERE_THE_KEY_IS}."
    return None


class _Message(JsonPost):
    """One message to the Events API: ``action`` for an event, with the channel's routing key,
    which PagerDuty reads from the body (JsonPost makes a body from the event alone, so each
    attempt makes its messages with the key)."""

    def __init__(self, routing_key: str, action: payloads.PagerDutyAction) -> None:
        self.routing_key, self.action = routing_key, action

    def body(self, event: Event) -> dict[str, Any]:
        return {"routing_key": self.routing_key, **payloads.pagerduty_body(event, self.action)}


class PagerDuty(Sender):
    """Each message an event needs (lib.notify.payloads.pagerduty_actions: a test's trigger, then
    its resolve), in order, within the attempt's one deadline. The attempt is delivered when
    PagerDuty accepted them all; sending them again is harmless, as their dedup key is the same."""

    def address(self, url: str) -> tuple[str, int]:
        return _Message("", "trigger").address(url)  # every message goes where the URL says

    def send(
        self, destination: Destination, event: Event, *, pinned: Pinned, deadline: Deadline, ssl_context: ssl.SSLContext
    ) -> Attempt:
        for action in payloads.pagerduty_actions(event):
            attempt = _Message(destination.secret or "", action).send(
                destination, event, pinned=pinned, deadline=deadline, ssl_context=ssl_context
            )
            if not attempt.delivered:
                return _invalid(pinned.host, attempt) if attempt.status == 400 else attempt
        return attempt


def _invalid(host: str, attempt: Attempt) -> Attempt:
    """PagerDuty's 400: the event is invalid, and it says not to send it again. (429 and 5xx
    are retried, as posting says: after the Retry-After it gave, or the outbox's back-off.)"""
    return replace(
        attempt,
        refused=True,
        error=(
            f"{host} answered HTTP 400: PagerDuty found the event invalid, and sending it again would not "
            f"change that. Check the channel's integration key ({INTEGRATION_KEY_LENGTH} letters and digits; "
            f"{WHERE_THE_KEY_IS}); if it is right, report this message."
        ),
    )


KIND = Kind(
    key="pagerduty",
    label="PagerDuty",
    summary="an alert through the Events API v2",
    listed=5,
    fields=(
        web_url(
            f"use {EVENTS_URL}, or {EU_EVENTS_URL} for an account in PagerDuty's EU service region",
            EVENTS_URL,
            shape=_shape,
        ),
        Field(
            "secret",
            "Integration key",
            "The Integration Key of an Events API v2 integration on the PagerDuty "
            f"service that should get the alerts: {INTEGRATION_KEY_LENGTH} letters and digits (PagerDuty "
            "calls it the routing key). It is sent inside each alert, and never shown back.",
            INTEGRATION_KEY_LENGTH,
            _integration_key,
            example=f"{INTEGRATION_KEY_LENGTH} letters and digits",
            required=True,
            secret=True,
        ),
    ),
    sender=PagerDuty(),
)
