"""Requests that arrive while the server opens its data wait for it, then meet the console's
guards (``lib.web.lifecycle.Lifecycle.protect``). Only the health probes answer at once: ``/healthz`` and
Streamlit's ``/_stcore/health`` say the process answers, ``/readyz`` says whether the data
is open. Nothing reaches Streamlit or our routes before the sign-in gate stands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

PROBES = frozenset({"/healthz", "/readyz", "/_stcore/health"})


class OnceOpen:
    """``opened`` returns once the data is open (or failed to); ``protect`` then puts the app
    behind the console's guards."""

    def __init__(
        self, app: ASGIApp, *, opened: Callable[[], Awaitable[None]], protect: Callable[[ASGIApp], ASGIApp]
    ) -> None:
        self.app = app
        self.opened = opened
        self.protect = protect
        self.guarded: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and scope["path"] in PROBES):
            await self.app(scope, receive, send)
            return
        if self.guarded is None:
            await self.opened()
            self.guarded = self.guarded or self.protect(self.app)  # one, for all who waited
        await self.guarded(scope, receive, send)
