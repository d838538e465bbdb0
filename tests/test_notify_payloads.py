"""What each channel receives: Slack and Teams payloads valid against the shapes those services
document (tests/fixtures/schemas/), user text escaped so a name cannot ping or inject markup,
the webhook body carrying every field, and the e-mail saying the same."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lib.notify.models import Event, EventKind
from lib.notify.payloads import (
    ICONS,
    email_message,
    facts,
    slack_body,
    slack_escape,
    teams_body,
    webhook_body,
)
from tests.fixtures.notify import sample_event

SCHEMAS = Path(__file__).parent / "fixtures" / "schemas"
HOSTILE = sample_event(
    summary="<!channel> Acme & Co <@U024BE7LH> down",
    connection="<!channel> Acme & Co",
    environment="<!here|here>",
    cause="8x8 said: <b>no</b> & <https://evil.example|click>",
    fix="> quote <!everyone>",
    details={"note": "<!subteam^S012>"},
)


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def _texts(node: Any) -> list[str]:
    """Every "text" string in a Slack payload."""
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        return found + [t for value in node.values() for t in _texts(value)]
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []


@pytest.mark.parametrize("kind", list(EventKind))
def test_slack_payloads_are_valid_block_kit_for_every_kind(kind: EventKind) -> None:
    body = slack_body(sample_event(kind=kind))
    jsonschema.validate(body, schema("slack_message"))
    assert body["text"].startswith(ICONS[kind])  # each kind's own mark, new kinds included


@pytest.mark.parametrize("kind", list(EventKind))
def test_teams_payloads_are_valid_adaptive_card_messages_for_every_kind(kind: EventKind) -> None:
    body = teams_body(sample_event(kind=kind))
    jsonschema.validate(body, schema("teams_message"))
    card = body["attachments"][0]["content"]
    assert card["version"] == "1.4" and body["attachments"][0]["contentUrl"] is None
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open in Switchboard",
            "url": "https://switchboard.example.com/connections?connection=Acme%20EU",
        }
    ]


def test_the_schemas_catch_what_slack_and_teams_would_refuse() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"text": "x", "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]},
            schema("slack_message"),
        )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.hero", "content": {}}]},
            schema("teams_message"),
        )


def test_slack_escapes_every_piece_of_user_text_so_nothing_pings() -> None:
    body = slack_body(HOSTILE)
    jsonschema.validate(body, schema("slack_message"))
    texts = _texts(body)
    for special in ("<!channel>", "<!here", "<!everyone>", "<@U024BE7LH>", "<!subteam", "<b>", "<https://evil"):
        assert all(special not in text for text in texts), special
    # The only real link is ours; every "<" left opens it.
    assert [t.count("<") for t in texts if "<" in t] == [1]
    assert "<https://switchboard.example.com/connections?connection=Acme%20EU|Open in Switchboard>" in texts
    assert "&lt;!channel&gt; Acme &amp; Co &lt;@U024BE7LH&gt; down" in body["text"]
    assert "*Connection*\n&lt;!channel&gt; Acme &amp; Co" in texts
    assert "*Fix*\n&gt; quote &lt;!everyone&gt;" in texts


def test_slack_escape_is_exactly_slacks_three_characters() -> None:
    assert slack_escape("a & b < c > d *e* _f_") == "a &amp; b &lt; c &gt; d *e* _f_"


def test_a_link_cannot_break_out_of_slacks_link_syntax() -> None:
    body = slack_body(sample_event(link="https://sb.example/c?connection=a|b>c&x=1"))
    [link] = [t for t in _texts(body) if t.startswith("<https://")]
    assert link == "<https://sb.example/c?connection=a%7Cb%3Ec&amp;x=1|Open in Switchboard>"


def test_slack_keeps_within_its_limits_for_long_text() -> None:
    body = slack_body(sample_event(cause="x" * 5000, summary="y" * 4000, details={f"item_{i}": i for i in range(30)}))
    jsonschema.validate(body, schema("slack_message"))


def test_teams_shows_names_as_given_inside_json_strings() -> None:
    body = teams_body(HOSTILE)
    jsonschema.validate(body, schema("teams_message"))
    card = body["attachments"][0]["content"]
    assert card["body"][1]["text"] == HOSTILE.summary
    assert {"title": "Connection", "value": "<!channel> Acme & Co"} in card["body"][2]["facts"]


def test_teams_never_turns_a_name_or_8x8s_words_into_a_hidden_link() -> None:
    phishing = "[Reset the secret here](https://evil.example/login)"
    body = teams_body(sample_event(summary=f"{phishing} down", connection=phishing, cause=f"8x8 said: {phishing}"))
    jsonschema.validate(body, schema("teams_message"))
    card = body["attachments"][0]["content"]
    texts = [block["text"] for block in card["body"] if "text" in block]
    texts += [part for fact in card["body"][2]["facts"] for part in (fact["title"], fact["value"])]
    assert not any("](" in text for text in texts)
    shown = [text.replace("\u200b", "") for text in texts]  # what a reader sees is what was written
    assert f"{phishing} down" in shown and phishing in shown and f"8x8 said: {phishing}" in shown
    assert card["actions"][0]["url"].startswith("https://switchboard.example.com/")  # the only link is ours


def test_the_webhook_body_carries_every_event_field_with_utc_times() -> None:
    event = sample_event(
        occurred_at=datetime(2025, 6, 2, 11, 30), details={"granted": {"b", "a"}, "age": timedelta(days=181)}
    )
    body = webhook_body(event)
    assert body["type"] == "check.failed" and body["timestamp"] == "2025-06-02T11:30:00Z"
    assert set(body["data"]) == {f.name for f in dataclasses.fields(Event)}
    assert body["data"]["checked_at"] == "2025-06-02T09:29:58Z"
    assert body["data"]["kind"] == "check.failed"
    assert body["data"]["details"] == {"granted": ["a", "b"], "age": "181 days, 0:00:00"}  # never a TypeError
    assert body["data"]["client_id_hint"] == "ab12…9f3e"
    json.dumps(body)  # serialisable as it is


def test_what_people_read_includes_cause_actor_fix_and_previous_outcome() -> None:
    assert facts(sample_event()) == [
        ("Connection", "Acme EU"),
        ("Environment", "production"),
        ("Product", "Contact Center Chat"),
        ("Outcome", "Credentials refused"),
        ("Previous outcome", "OK"),
        ("Cause", "8x8 refused the Client ID and Client Secret."),
        ("Who must act", "8x8 admin (Admin Console)"),
        ("Fix", "Copy the Client ID and Client Secret again."),
        ("HTTP status", "401"),
        ("Checked at", "2025-06-02 09:29 UTC"),
        ("Client ID", "ab12…9f3e"),
        ("Failures in a row", "2"),
    ]
    bare = Event("e", EventKind.TEST, datetime(2025, 1, 1, tzinfo=UTC), "Test from Switchboard")
    assert facts(bare) == []
    jsonschema.validate(slack_body(bare), schema("slack_message"))
    jsonschema.validate(teams_body(bare), schema("teams_message"))


def test_uptime_and_time_down_read_as_people_say_them() -> None:
    event = dataclasses.replace(sample_event(), details={"down_for_s": 5_400, "uptime_30d": 0.99214})
    assert facts(event)[-2:] == [("Down for", "1 h 30 min"), ("Uptime over 30 days", "99.2 %")]


def test_the_email_has_the_summary_as_subject_and_escapes_html() -> None:
    event = sample_event(summary="Acme <b>EU</b>\r\nBcc: victim@example.com", connection="<script>x</script>")
    message = email_message(event, sender="alerts@example.com", recipients=["a@example.com", "b@example.com"])
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Acme <b>EU</b> Bcc: victim@example.com"
    assert parsed["Bcc"] is None and parsed["To"] == "a@example.com, b@example.com"
    assert parsed["Auto-Submitted"] == "auto-generated"
    plain = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert "Connection: <script>x</script>" in plain and "Cause: 8x8 refused" in plain
    assert "Open in Switchboard: https://switchboard.example.com/connections?connection=Acme%20EU" in plain
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
