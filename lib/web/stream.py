"""Streamlit's WebSocket (``/_stcore/stream``), the way the console uses it and no further.

- Only a page of the console's own origin may open it: a page on another port of the same
  host is another origin, but browsers send it our cookies, so without this check it could
  drive the console as the person signed in.
- Of the messages a browser can send, only those the console needs reach Streamlit. The rest
  are dropped: ``clear_cache`` (any anonymous socket could empty every cache, closing the
  Prober under running checks), ``set_run_on_save``, ``file_urls_request`` (uploads),
  ``debug_*``, ``load_git_info`` and the skills nudge's operations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lib.web.origins import origin_allowed
from lib.web.state import ServerState

STREAM_PATH = "/_stcore/stream"
ALLOWED_MESSAGES = frozenset(
    {
        "rerun_script",
        "stop_script",
        "app_heartbeat",
        "backend_operation_request/deferred_file",  # downloads
        "backend_operation_request/dataframe_chunk",
    }
)  # large tables

log = logging.getLogger("switchboard.web")


def wanted(message: Message, kind_of: Callable[[bytes], str | None]) -> bool:
    """Whether a frame from the browser may reach Streamlit. Frames that are not messages pass:
    Streamlit refuses those itself."""
    data = message.get("bytes")
    if message["type"] != "websocket.receive" or not data:
        return True
    kind = kind_of(data)
    return kind is None or kind in ALLOWED_MESSAGES


class StreamGuard:
    """Pure ASGI middleware for the WebSocket; everything else passes untouched."""

    def __init__(self, app: ASGIApp, *, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope["path"] != STREAM_PATH:
            await self.app(scope, receive, send)
            return
        if not origin_allowed(scope, self.state.settings):
            await receive()  # websocket.connect; closing before accepting answers HTTP 403
            await send({"type": "websocket.close", "code": 1008})
            return

        async def receive_wanted() -> Message:
            while True:
                message = await receive()
                if wanted(message, self.state.hooks.message_kind):
                    return message
                log.info("dropped a WebSocket message the console does not use")

        await self.app(scope, receive_wanted, send)
