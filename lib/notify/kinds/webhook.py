"""Webhook: every event as JSON (Standard Webhooks' shape), signed with the channel's ``whsec_…``
secret, which Switchboard makes when none is given."""

from __future__ import annotations

import time
from typing import Any

from lib.kernel.errors import ValidationError
from lib.notify import payloads, signing
from lib.notify.models import Destination, Event
from lib.notify.posting import JsonPost
from lib.notify.spec import Field, Given, Kind
from lib.notify.urls import web_url

SIGNING_SECRET_MAX = 100  # whsec_ and the base64 of at most 64 bytes: 94 characters


def _signing_secret(secret: str, given: Given) -> str | None:
    if not secret:
        return f"is missing; a webhook signs every message. {signing.MAKE_ONE}"
    try:
        signing.secret_key(secret)
    except ValidationError as exc:
        return exc.errors[0].message
    return None


class Webhook(JsonPost):
    def body(self, event: Event) -> dict[str, Any]:
        return payloads.webhook_body(event)

    def headers(self, destination: Destination, event: Event, body: bytes) -> dict[str, str]:
        if not destination.secret:  # checked before: it has one
            return {}
        return signing.signed_headers(destination.secret, event.id, int(time.time()), body)


KIND = Kind(
    key="webhook",
    label="Webhook",
    summary="signed JSON",
    listed=1,
    fields=(
        web_url("the receiver's admin can give it", "https://hooks.example.com/switchboard"),
        Field(
            "secret",
            "Signing secret",
            "The receiver's whsec_… secret (Standard Webhooks). Leave it blank when "
            "adding, and a new one is made and shown once, for you to give to the receiver.",
            SIGNING_SECRET_MAX,
            _signing_secret,
            example="whsec_…",
            secret=True,
            made=signing.new_secret,
            made_help="Give it to the receiver, which checks each message's webhook-signature header with it.",
        ),
    ),
    sender=Webhook(),
)
