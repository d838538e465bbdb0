"""What an alert event carries, where it goes, and how one delivery attempt ended.

These are the contract between lib.services.alerts (which decides what to send, keeps the outbox and
retries) and the senders in lib.notify (which turn an event into one request or one e-mail).
Nothing here holds a secret beyond ``Destination``, which lives only for one attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    FAILED = "check.failed"  # a ticked product failed N times in a row
    RECOVERED = "check.recovered"  # it works again, after a check.failed was sent for it
    STILL_FAILING = "check.still_failing"  # a reminder while it stays down (or a daily digest)
    ACKNOWLEDGED = "incident.acknowledged"  # someone took on a failure: its reminders stop
    DRIFTED = "products.drifted"  # 8x8's token grants other products than were granted or ticked
    SECRET_AGING = "secret.aging"  # the Client Secret is older than the policy age
    QUIET_SUMMARY = "window.summary"  # what a quiet window held, sent when it ends
    MAINTENANCE_ENDED = "maintenance.ended"  # what still fails when a maintenance window ends
    TEST = "channel.test"  # an admin's "Send test"


@dataclass(frozen=True)
class Event:
    """One thing worth telling admins. ``id`` is stable: the same event always has the same id,
    so a receiver (and our outbox) can drop a repeat. Never holds a secret, a token or a Client
    ID beyond its masked hint."""

    id: str
    kind: EventKind
    occurred_at: datetime
    summary: str  # one line a person reads first, e.g. "Acme EU: CC Chat failing (Bad credentials)"
    connection: str | None = None
    environment: str | None = None
    product: str | None = None  # catalogue key
    product_label: str | None = None
    outcome: str | None = None  # catalogue outcome key
    previous_outcome: str | None = None
    cause: str | None = None
    who_must_act: str | None = None
    fix: str | None = None
    http_status: int | None = None
    checked_at: datetime | None = None
    link: str | None = None  # the connection in the console (SWITCHBOARD_PUBLIC_URL), when known
    client_id_hint: str | None = None  # masked, e.g. "ab12…9f3e"
    details: Mapping[str, Any] = field(
        default_factory=dict
    )  # per kind: failures in a row, drift sets, age, digest items


@dataclass(frozen=True)
class Destination:
    """Where one attempt goes, decrypted for that attempt only: ``kind`` is a key of
    lib.notify.kinds, whose fields say what ``url`` and ``secret`` are (e.g. a webhook's https
    endpoint and its ``whsec_…`` signing secret; an e-mail channel's
    ``smtp://[user@]host[:port]?from=ADDR&to=ADDR[,ADDR]`` and SMTP password)."""

    kind: str
    url: str
    secret: str | None = None

    def __repr__(self) -> str:  # never print the URL (Slack/Teams URLs are credentials) or the secret
        return f"Destination(kind={self.kind!r})"


@dataclass(frozen=True)
class Attempt:
    """How one delivery attempt ended. ``error`` is for people and the delivery log: it never
    quotes the URL's path or query, a secret or a response body."""

    delivered: bool
    status: int | None = None  # HTTP status, or the SMTP reply code
    retry_after: float | None = None  # seconds the receiver asked us to wait (429/503 Retry-After)
    gone: bool = False  # 410: the receiver says this endpoint is gone for good (disable the channel)
    refused: bool = False  # our SSRF guard or the URL rules refused it: retrying will not help
    error: str | None = None
    duration_ms: int = 0
