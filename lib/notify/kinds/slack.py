"""Slack: a Block Kit message to an incoming webhook, whose URL is the credential."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult

from lib.notify import payloads
from lib.notify.models import Event
from lib.notify.posting import JsonPost
from lib.notify.spec import Kind
from lib.notify.urls import web_url

_PATH = re.compile(r"/services/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+")


def _shape(parts: SplitResult) -> str | None:
    if (
        parts.hostname == "hooks.slack.com"
        and _PATH.fullmatch(parts.path)
        and not parts.query
        and parts.port in (None, 443)
    ):
        return None
    return (
        "must be a Slack incoming webhook, https://hooks.slack.com/services/T…/B…/…; copy it from the "
        "Slack app's Incoming Webhooks page."
    )


class Slack(JsonPost):
    def body(self, event: Event) -> dict[str, Any]:
        return payloads.slack_body(event)


KIND = Kind(
    key="slack",
    label="Slack",
    summary="a message to an incoming webhook",
    listed=2,
    fields=(
        web_url(
            "copy it from the Slack app's Incoming Webhooks page",
            "https://hooks.slack.com/services/T…/B…/…",
            shape=_shape,
            credential=True,
        ),
    ),
    sender=Slack(),
)
