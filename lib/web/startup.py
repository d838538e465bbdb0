"""Requests that arrive while the server opens its data wait for it, then meet the console's
guards (``lib.web.console.protect``). Only the health probes answer at once: ``/healthz`` and
Streamlit's ``/_stcore/health`` say the process answers, ``/readyz`` says whether the data
is open. Nothing reaches Streamlit or our routes before the sign-in gate stands."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from lib.web.state import ServerState

PROBES = frozenset({"/healthz", "/readyz", "/_stcore/health"})


class OnceOpen:
    def __init__(self, app: ASGIApp, *, state: ServerState) -> None:
        self.app = app
        self.state = state
        self.guarded: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and scope["path"] in PROBES):
            await self.app(scope, receive, send)
            return
        if self.guarded is None:
            await self.state.opened()
            from lib.web.console import protect  # loaded by the thread that opened the data

            self.guarded = self.guarded or protect(self.app, self.state)  # one, for all who waited
        await self.guarded(scope, receive, send)
