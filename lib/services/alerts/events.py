"""The events the rules raise: their stable ids, how they are built from the catalogue's words,
and their stored form (JSON in the outbox; never a secret, a token or more of a Client ID than
its masked hint)."""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCTS
from lib.kernel.words import lasted
from lib.notify.models import Event, EventKind


def event_id(kind: EventKind, *parts: object) -> str:
    """The same kind and parts always give the same id: the outbox keeps one row per
    (channel, id), and receivers use it to drop a repeat."""
    digest = hashlib.sha256("|".join([kind.value, *map(str, parts)]).encode()).hexdigest()
    return f"evt_{digest[:32]}"


@dataclasses.dataclass(frozen=True)
class Subject:
    """The connection an event is about, as the rules read it (no ciphertext)."""

    id: uuid.UUID
    name: str
    environment: str
    client_id_hint: str


def _product_label(product: str) -> str:
    found = PRODUCTS.get(product)
    return found.name if found else product


def _after(details: dict[str, Any]) -> str:
    down = details.get("down_for_s")
    return f" after {lasted(timedelta(seconds=down))}" if isinstance(down, int) else ""


def check_event(
    kind: EventKind,
    subject: Subject,
    product: str,
    outcome: str,
    *,
    previous: str | None,
    checked_at: datetime,
    http_status: int | None,
    episode: str,
    details: dict[str, Any],
    extra: object = "",
) -> Event:
    """check.failed, check.recovered or check.still_failing for one product of one connection."""
    label = _product_label(product)
    shown = previous if kind is EventKind.RECOVERED else outcome
    explained = OUTCOMES.get(shown) if shown is not None else None
    said = explained.label if explained else outcome
    summary = {
        EventKind.FAILED: f"{subject.name}: {label} failing ({said})",
        EventKind.RECOVERED: f"{subject.name}: {label} works again{_after(details)} (was: {said})",
        EventKind.STILL_FAILING: f"{subject.name}: {label} still failing ({said})",
    }[kind]
    failing = OUTCOMES.get(outcome) if kind is not EventKind.RECOVERED else None
    return Event(
        id=event_id(kind, subject.id, product, episode, extra),
        kind=kind,
        occurred_at=checked_at,
        summary=summary,
        connection=subject.name,
        environment=subject.environment or None,
        product=product,
        product_label=label,
        outcome=outcome,
        previous_outcome=previous,
        cause=failing.cause if failing else None,
        who_must_act=failing.actor.value if failing else None,
        fix=failing.fix if failing else None,
        http_status=http_status,
        checked_at=checked_at,
        client_id_hint=subject.client_id_hint,
        details=details,
    )


def acknowledged_event(
    subject: Subject,
    product: str,
    outcome: str,
    *,
    episode: str,
    failing_since: datetime | None,
    by: str,
    at: datetime,
) -> Event:
    """incident.acknowledged: ``by`` took on the episode that check.failed opened, so its reminders
    stop. Its ``failing_since`` is the failure's, so a receiver (and PagerDuty's dedup key) puts it
    with that episode; its id names when it was acknowledged, since an acknowledgement cleared by a
    new failure can be given again."""
    label = _product_label(product)
    return Event(
        id=event_id(EventKind.ACKNOWLEDGED, subject.id, product, episode, at.isoformat()),
        kind=EventKind.ACKNOWLEDGED,
        occurred_at=at,
        summary=f"{subject.name}: {label} failing, acknowledged by {by}",
        connection=subject.name,
        environment=subject.environment or None,
        product=product,
        product_label=label,
        outcome=outcome,
        client_id_hint=subject.client_id_hint,
        details={"acknowledged_by": by, "acknowledged_at": at, "failing_since": failing_since},
    )


def drift_event(
    subject: Subject,
    *,
    granted: frozenset[str],
    previous: frozenset[str] | None,
    ticked: frozenset[str],
    since: datetime | None,
    at: datetime,
) -> Event:
    """8x8's token grants other products than it did, or than were ticked."""
    missing = sorted(ticked - granted)
    details: dict[str, Any] = {
        "granted": sorted(granted),
        "previously_granted": None if previous is None else sorted(previous),
        "ticked": sorted(ticked),
        "ticked_not_granted": missing,
    }
    if previous is not None:
        details |= {"added": sorted(granted - previous), "removed": sorted(previous - granted)}
    changes = [
        f"now grants {', '.join(map(_product_label, details['added']))}" if details.get("added") else "",
        f"no longer grants {', '.join(map(_product_label, details['removed']))}" if details.get("removed") else "",
        f"does not grant ticked {', '.join(map(_product_label, missing))}" if missing else "",
    ]
    return Event(
        id=event_id(EventKind.DRIFTED, subject.id, since.isoformat() if since else "never", sorted(granted)),
        kind=EventKind.DRIFTED,
        occurred_at=at,
        summary=f"{subject.name}: 8x8 {'; '.join(c for c in changes if c)}",
        connection=subject.name,
        environment=subject.environment or None,
        client_id_hint=subject.client_id_hint,
        details=details,
        who_must_act="8x8 admin (Admin Console)",
        fix="Compare the products ticked for the app in the 8x8 Admin Console (Home > API Management) "
        "with the ones ticked in Switchboard, and make them agree.",
    )


def aging_event(subject: Subject, *, secret_set_at: datetime, age_days: int, step: int, at: datetime) -> Event:
    return Event(
        id=event_id(EventKind.SECRET_AGING, subject.id, secret_set_at.isoformat(), step),
        kind=EventKind.SECRET_AGING,
        occurred_at=at,
        summary=f"{subject.name}: the Client Secret is {age_days} days old",
        connection=subject.name,
        environment=subject.environment or None,
        client_id_hint=subject.client_id_hint,
        details={"age_days": age_days, "secret_set_at": secret_set_at},
        who_must_act="8x8 admin (Admin Console), then a Switchboard admin",
        fix=aging_fix(subject.name),
    )


def aging_fix(connection: str) -> str:
    """The secret.aging fix: one command that stores the new secret in the same connection,
    so its history and alert state stay (removing and adding it again would lose both)."""
    return (
        "Regenerate the app's secret in the 8x8 Admin Console (Home > API Management), then pipe it to "
        f"`switchboard connections edit {shlex.quote(connection)} --secret-stdin` (or paste it into the "
        "connection on Switchboard's Connect page); the connection keeps its history."
    )


def channel_test_event(channel: str, *, at: datetime, by: str) -> Event:
    return Event(
        id=f"evt_test_{uuid.uuid4().hex}",
        kind=EventKind.TEST,
        occurred_at=at,
        summary=f"Test alert from Switchboard to the channel {channel}, sent by {by}",
        details={"channel": channel, "sent_by": by},
    )


STILL_NAMED = 5  # products named in a summary's one line; its details list up to STILL_LISTED
STILL_LISTED = 100


def summary_event(
    channel_id: uuid.UUID, held: list[Event], *, at: datetime, still_failing: Sequence[str] = ()
) -> Event:
    """What a quiet window held, in one event, sent when it ends, and which of its failures
    (``still_failing``, "connection: product") are failing still."""
    items = [
        {
            "id": e.id,
            "kind": e.kind.value,
            "summary": e.summary,
            "connection": e.connection,
            "product": e.product,
            "outcome": e.outcome,
            "occurred_at": e.occurred_at,
        }
        for e in held
    ]
    line = f"{len(held)} alert{'s' if len(held) != 1 else ''} held during a quiet window"
    if still_failing:
        line += f"; still failing: {_named(still_failing)}"
    return Event(
        id=event_id(EventKind.QUIET_SUMMARY, channel_id, sorted(e.id for e in held)),
        kind=EventKind.QUIET_SUMMARY,
        occurred_at=at,
        summary=line,
        details={"events": items, "still_failing": list(still_failing[:STILL_LISTED])},
    )


def _named(items: Sequence[str]) -> str:
    """The first STILL_NAMED items, and how many more there are."""
    more = len(items) - STILL_NAMED
    return ", ".join(items[:STILL_NAMED]) + (f" and {more} more" if more > 0 else "")


def maintenance_event(
    window_id: int,
    covered: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    still_failing: Sequence[str],
    connection: str | None,
    environment: str | None,
    at: datetime,
) -> Event:
    """What still fails ("connection: product") among the connections a maintenance window
    covered (``covered``, in words), sent once when it ends, as a quiet window's summary is.
    The same window and list give the same id, so channels routed alike share one event."""
    return Event(
        id=event_id(EventKind.MAINTENANCE_ENDED, window_id, sorted(still_failing)),
        kind=EventKind.MAINTENANCE_ENDED,
        occurred_at=at,
        summary=f"Maintenance of {covered} ended; still failing: {_named(still_failing)}",
        connection=connection,
        environment=environment,
        who_must_act="Switchboard admin",
        fix="Open each connection still failing in Switchboard: its outcome says who must act and how.",
        details={
            "window": covered,
            "reason": reason,
            "started_at": starts_at,
            "ended_at": ends_at,
            "still_failing": list(still_failing[:STILL_LISTED]),
            "failing_products": len(still_failing),
        },
    )


# --- Stored form --------------------------------------------------------------------------------

_TIMES = ("occurred_at", "checked_at")
# A detail named so holds a moment (failing_since, secret_set_at, a summary item's occurred_at):
# stored as ISO text, it is read back as a datetime, so each payload writes it in its one form.
_MOMENT_NAMES = ("_at", "_since")


def to_json(event: Event) -> dict[str, Any]:
    data = dataclasses.asdict(event)
    data["kind"] = event.kind.value
    for name in _TIMES:
        data[name] = data[name].isoformat() if data[name] else None
    data["details"] = _stored(data["details"])
    return data


def from_json(data: dict[str, Any]) -> Event:
    values = dict(data)
    values["kind"] = EventKind(values["kind"])
    for name in _TIMES:
        values[name] = datetime.fromisoformat(values[name]) if values.get(name) else None
    values["details"] = _read_back(values.get("details") or {})
    return Event(**values)


def _stored(value: Any) -> Any:
    """Details as JSON can hold them: moments as ISO text, at any depth."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _stored(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stored(item) for item in value]
    return value


def _read_back(value: Any, name: str = "") -> Any:
    """Stored details with their moments as datetimes again, whatever ISO form wrote them (rows
    queued by earlier versions too); text under a moment's name that is no date stays text."""
    if isinstance(value, str) and name.endswith(_MOMENT_NAMES):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {key: _read_back(item, key) for key, item in value.items()}
    if isinstance(value, list):
        return [_read_back(item) for item in value]
    return value
