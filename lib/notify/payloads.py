"""What each kind of channel receives for an event: pure functions, no network.

Every payload says the same things (:func:`facts`) in the receiver's own format. Names and
8x8's words are user text: Slack would turn ``<!channel>`` in them into a ping, Teams would turn
``[text](url)`` into a link whose target it hides, and HTML mail would render markup, so each
format escapes them. Nothing here ever holds a secret, a token or
more of a Client ID than its masked hint, because :class:`Event` holds none (a PagerDuty
channel's routing key is added by its sender, lib.notify.kinds.pagerduty).
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from enum import Enum
from typing import Any, Literal

from lib.catalogue.outcomes import OUTCOMES
from lib.kernel.words import iso, lasted, shown
from lib.notify.models import Event, EventKind

PRODUCT_NAME = "Switchboard"
OPEN_LINK = "Open in Switchboard"
TITLES = {
    EventKind.FAILED: "Failing",
    EventKind.RECOVERED: "Recovered",
    EventKind.STILL_FAILING: "Still failing",
    EventKind.ACKNOWLEDGED: "Acknowledged",
    EventKind.DRIFTED: "Products drifted",
    EventKind.SECRET_AGING: "Client Secret ageing",
    EventKind.QUIET_SUMMARY: "While alerts were quiet",
    EventKind.MAINTENANCE_ENDED: "Maintenance ended",
    EventKind.TEST: "Test message",
}
ICONS = {
    EventKind.FAILED: "🔴",
    EventKind.RECOVERED: "✅",
    EventKind.STILL_FAILING: "🔴",
    EventKind.ACKNOWLEDGED: "🙋",
    EventKind.DRIFTED: "🟠",
    EventKind.SECRET_AGING: "🟠",
    EventKind.QUIET_SUMMARY: "🔕",
    EventKind.MAINTENANCE_ENDED: "🔧",
    EventKind.TEST: "🔔",
}


# ---- shared ---------------------------------------------------------------------------------


def _outcome(key: str | None) -> str | None:
    return OUTCOMES[key].label if key is not None and key in OUTCOMES else key


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return shown(value)
    if isinstance(value, (set, frozenset)):
        return ", ".join(sorted(_text(item) for item in value))
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{_label(k)}: {_text(v)}" for k, v in value.items())
    return str(value)


def _label(key: str) -> str:
    return str(key).replace("_", " ").capitalize()


def _detail(key: str, value: Any) -> tuple[str, Any]:
    if key == "down_for_s" and isinstance(value, int):
        return "Down for", lasted(timedelta(seconds=value))
    if key == "uptime_30d" and isinstance(value, float):
        return "Uptime over 30 days", f"{value:.1%}".replace("%", " %")
    return _label(key), value


def title(event: Event) -> str:
    return f"{ICONS[event.kind]} {TITLES[event.kind]}"


def facts(event: Event) -> list[tuple[str, str]]:
    """What the event says, as (label, text) in reading order; only what it has."""
    rows: list[tuple[str, Any]] = [
        ("Connection", event.connection),
        ("Environment", event.environment),
        ("Product", event.product_label or event.product),
        ("Outcome", _outcome(event.outcome)),
        ("Previous outcome", _outcome(event.previous_outcome)),
        ("Cause", event.cause),
        ("Who must act", event.who_must_act),
        ("Fix", event.fix),
        ("HTTP status", event.http_status),
        ("Checked at", event.checked_at),
        ("Client ID", event.client_id_hint),
        *(_detail(key, value) for key, value in event.details.items()),
    ]
    return [(label, _text(value)) for label, value in rows if value not in (None, "", (), [])]


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_json(item) for item in value)
    if isinstance(value, (list, tuple)):
        return [_json(item) for item in value]
    return value if value is None or isinstance(value, (str, int, float)) else str(value)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---- webhook --------------------------------------------------------------------------------


def webhook_body(event: Event) -> dict[str, Any]:
    """Standard Webhooks' suggested shape: ``type``, ``timestamp`` and every field in ``data``."""
    data = {f.name: _json(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return {"type": event.kind.value, "timestamp": iso(event.occurred_at), "data": data}


# ---- Slack ----------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities: ``<!channel>`` stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str) -> str:
    # Inside <url|label> a '|' or '>' would end the link early; real URLs have them encoded.
    url = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
    return f"<{url.replace('&', '&amp;')}|{OPEN_LINK}>"


def slack_body(event: Event) -> dict[str, Any]:
    """An incoming-webhook message: Block Kit ``blocks`` and the ``text`` notifications show."""
    heading = slack_escape(f"{title(event)}: {_one_line(event.summary)}")
    fields = [
        {"type": "mrkdwn", "text": _shorten(f"*{label}*\n{slack_escape(value)}", 2000)} for label, value in facts(event)
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _shorten(f"*{heading}*", 3000)}}
    ]
    blocks += [{"type": "section", "fields": fields[i : i + 10]} for i in range(0, len(fields), 10)]
    footer = [{"type": "mrkdwn", "text": slack_escape(f"{PRODUCT_NAME} · {event.kind.value}")}]
    if event.link:
        footer.insert(0, {"type": "mrkdwn", "text": _slack_link(event.link)})
    blocks.append({"type": "context", "elements": footer})
    return {"text": _shorten(heading, 3000), "blocks": blocks[:50]}


# ---- Microsoft Teams --------------------------------------------------------------------------

_ZERO_WIDTH_SPACE = "\u200b"


def teams_escape(text: str) -> str:
    """Adaptive Cards read TextBlock and Fact text as Markdown, and have no escape for it. A
    zero-width space between ``]`` and ``(`` keeps ``[Fix it here](https://…)`` from becoming
    a link that hides where it goes; the text reads the same. (Bare URLs are still linked by
    Teams, showing where they go; bold, italics and lists are left as written.)"""
    return text.replace("](", "]" + _ZERO_WIDTH_SPACE + "(")


def teams_body(event: Event) -> dict[str, Any]:
    """A message for a Teams Workflows webhook: one Adaptive Card (1.4)."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": teams_escape(title(event)), "size": "Small", "isSubtle": True, "wrap": True},
        {
            "type": "TextBlock",
            "text": teams_escape(_one_line(event.summary)),
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
        },
    ]
    rows = facts(event)
    if rows:
        body.append(
            {"type": "FactSet", "facts": [{"title": teams_escape(t), "value": teams_escape(v)} for t, v in rows]}
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if event.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": OPEN_LINK, "url": event.link}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


# ---- e-mail ---------------------------------------------------------------------------------


def email_message(event: Event, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """A plain-text e-mail with an HTML alternative; the subject is the event's summary."""
    rows = facts(event)
    message = EmailMessage()
    message["Subject"] = _one_line(event.summary)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to alerts
    lines = [title(event), _one_line(event.summary), ""]
    lines += [f"{label}: {value}" for label, value in rows]
    if event.link:
        lines += ["", f"{OPEN_LINK}: {event.link}"]
    message.set_content("\n".join(lines) + "\n")
    table = "".join(
        f'<tr><th align="left">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>' for label, value in rows
    )
    link = f'<p><a href="{html.escape(event.link, quote=True)}">{OPEN_LINK}</a></p>' if event.link else ""
    message.add_alternative(
        f"<html><body><p>{html.escape(title(event))}</p><h2>{html.escape(event.summary)}</h2>"
        f"<table>{table}</table>{link}</body></html>\n",
        subtype="html",
    )
    return message


# ---- PagerDuty ------------------------------------------------------------------------------
# Events API v2, "Send an Alert Event": what PagerDuty takes, and its limits.

PagerDutyAction = Literal["trigger", "acknowledge", "resolve"]
PAGERDUTY_SUMMARY_MAX = 1024
PAGERDUTY_DEDUP_KEY_MAX = 255
PAGERDUTY_FIELD_MAX = 255  # source, component, group and class: PagerDuty sets no limit; we keep them short
PAGERDUTY_DETAIL_MAX = 2000  # each custom detail, as Slack's fields are bounded
PAGERDUTY_SEVERITIES = ("info", "warning", "error")  # the ones we send, least severe first
PAGERDUTY_SEVERITY: dict[str, str] = {  # by event kind; a window.summary's is worked out
    EventKind.FAILED: "error",
    EventKind.STILL_FAILING: "error",
    EventKind.DRIFTED: "warning",
    EventKind.SECRET_AGING: "warning",
    EventKind.RECOVERED: "info",
    EventKind.TEST: "info",
    EventKind.MAINTENANCE_ENDED: "error",  # sent only when something still fails
}
_CHECK_KINDS = (EventKind.FAILED, EventKind.STILL_FAILING, EventKind.ACKNOWLEDGED, EventKind.RECOVERED)


def pagerduty_actions(event: Event) -> tuple[PagerDutyAction, ...]:
    """What PagerDuty is told for ``event``, in order. A recovery resolves the alert its failure
    opened, and an acknowledgement acknowledges it (PagerDuty stops escalating it). A test opens
    an alert of its own (severity info) and resolves it at once: it proves the routing key and
    leaves nothing open. Every other event opens an alert, or adds a log entry
    to the one its dedup key still has open (so a still-failing reminder never pages twice)."""
    if event.kind is EventKind.RECOVERED:
        return ("resolve",)
    if event.kind is EventKind.ACKNOWLEDGED:
        return ("acknowledge",)
    if event.kind is EventKind.TEST:
        return ("trigger", "resolve")
    return ("trigger",)


def pagerduty_dedup_key(event: Event) -> str:
    """The PagerDuty alert ``event`` belongs to. A product's failure, its reminders, its
    acknowledgement and its recovery share one key: the connection, the product and the episode
    (when it started failing, to the second), so a late retry of one episode's resolve never closes the next
    episode's alert. Drift and secret age have one key per connection (a repeat adds to the
    open alert); a test, a quiet window's summary or a maintenance window's end is an alert of
    its own."""
    if event.kind in _CHECK_KINDS:
        parts = ["check", event.connection, event.product, _moment(event.details.get("failing_since"))]
    elif event.kind in (EventKind.DRIFTED, EventKind.SECRET_AGING):
        parts = [event.kind.value, event.connection]
    else:
        parts = [event.id]
    key = "/".join([PRODUCT_NAME.lower(), *(str(part or "") for part in parts)])
    if len(key) <= PAGERDUTY_DEDUP_KEY_MAX:
        return key
    return f"{PRODUCT_NAME.lower()}/{hashlib.sha256(key.encode()).hexdigest()}"  # a name stored before a limit


def pagerduty_body(event: Event, action: PagerDutyAction) -> dict[str, Any]:
    """One Events API v2 message for ``event``, all but the routing key. A resolve or an
    acknowledge carries only its dedup key, as PagerDuty documents; a trigger says what happened
    in ``payload``."""
    body: dict[str, Any] = {"event_action": action, "dedup_key": pagerduty_dedup_key(event)}
    if action == "trigger":
        body |= {"payload": _pagerduty_payload(event), "client": PRODUCT_NAME}
        if event.link:
            body |= {"client_url": event.link, "links": [{"href": event.link, "text": OPEN_LINK}]}
    return body


def _pagerduty_payload(event: Event) -> dict[str, Any]:
    said = [event.summary]
    if event.environment:
        said.append(f"environment {event.environment}")
    if event.who_must_act:
        said.append(f"who must act: {event.who_must_act}")
    details = {label: _shorten(text, PAGERDUTY_DETAIL_MAX) for label, text in facts(event)}
    if event.link:
        details["Link"] = event.link
    payload = {
        "summary": _shorten(_one_line(" · ".join(said)), PAGERDUTY_SUMMARY_MAX),
        "source": _shorten(
            f"{PRODUCT_NAME}: {event.connection}" if event.connection else PRODUCT_NAME, PAGERDUTY_FIELD_MAX
        ),
        "severity": _pagerduty_severity(event),
        "timestamp": iso(event.occurred_at),
        "component": _shorten(event.product or "", PAGERDUTY_FIELD_MAX),
        "group": _shorten(event.environment or "", PAGERDUTY_FIELD_MAX),
        "class": _shorten(event.outcome or event.kind.value, PAGERDUTY_FIELD_MAX),
        "custom_details": details,
    }
    return {name: value for name, value in payload.items() if value}  # PagerDuty's optional fields: strings or absent


def _pagerduty_severity(event: Event) -> str:
    """A summary is as severe as the worst event its quiet window held."""
    if event.kind is not EventKind.QUIET_SUMMARY:
        return PAGERDUTY_SEVERITY[event.kind]
    held = event.details.get("events")
    kinds = [item.get("kind") for item in held if isinstance(item, Mapping)] if isinstance(held, list) else []
    return max(
        (PAGERDUTY_SEVERITY.get(kind, "info") for kind in kinds if isinstance(kind, str)),
        key=PAGERDUTY_SEVERITIES.index,
        default="info",
    )


def _moment(value: Any) -> str | None:
    """A moment in its one machine form, whether the outbox read it back as a datetime or it
    is still text."""
    if isinstance(value, str):
        text: str = value
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return text
    return iso(value) if isinstance(value, datetime) else None
