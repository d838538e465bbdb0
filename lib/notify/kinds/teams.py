"""Microsoft Teams: an Adaptive Card to a Teams workflow's webhook, whose URL is the credential."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

from lib.notify import payloads
from lib.notify.models import Event
from lib.notify.posting import JsonPost
from lib.notify.spec import Kind
from lib.notify.urls import web_url

# The hosts of the Microsoft services a Teams webhook URL comes from, and the start of their paths:
# Power Automate workflows (both generations) and the Office 365 connectors they replace.
_HOSTS = (
    (".logic.azure.com", "/workflows/"),
    (".environment.api.powerplatform.com", "/powerautomate/"),
    (".webhook.office.com", "/webhookb2/"),
)


def _shape(parts: SplitResult) -> str | None:
    host = parts.hostname or ""
    if parts.port in (None, 443) and any(
        host.endswith(suffix) and len(host) > len(suffix) and parts.path.startswith(path) for suffix, path in _HOSTS
    ):
        return None
    return (
        "must be the URL of a Teams workflow: https://….logic.azure.com/workflows/…, "
        "https://….environment.api.powerplatform.com/powerautomate/… or "
        'https://….webhook.office.com/webhookb2/…; copy it from the workflow "When a Teams webhook '
        'request is received".'
    )


class Teams(JsonPost):
    def body(self, event: Event) -> dict[str, Any]:
        return payloads.teams_body(event)


KIND = Kind(
    key="teams",
    label="Microsoft Teams",
    summary="an Adaptive Card to a workflow",
    listed=3,
    fields=(
        web_url(
            'copy it from the Teams workflow "When a Teams webhook request is received"',
            "https://….logic.azure.com/workflows/…",
            shape=_shape,
            credential=True,
        ),
    ),
    sender=Teams(),
)
