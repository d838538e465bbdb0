"""Page loads of protected pages without a live session go to the sign-in page.

A convenience in front of the real check, which every page script makes itself on every run
(a WebSocket can reach a script without a page load, and Streamlit's legacy pages/ mode can
skip app.py). It also means a reload after signing out elsewhere lands on the sign-in page.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from lib import first_run, sessions
from lib.navigation import protected_paths
from lib.web import html
from lib.web.state import ServerState


class SignInGate:
    """Also answers 503 with the reason while the server cannot open its data (fail closed)."""

    def __init__(self, app: ASGIApp, *, state: ServerState) -> None:
        self.app = app
        self.state = state
        self.paths = protected_paths()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.state.problem and (
                scope["path"] in self.paths or scope["path"].startswith("/account/")):
            await HTMLResponse(html.cannot_start(self.state.problem), status_code=503)(scope, receive, send)
            return
        if (scope["type"] == "http" and scope["method"] == "GET" and self.state.local_accounts
                and scope["path"] in self.paths):
            request = Request(scope)
            live = await run_in_threadpool(sessions.resume, self.state.engine,
                                           request.cookies.get(sessions.COOKIE_NAME), self.state.limits)
            if live is None:
                if await run_in_threadpool(first_run.needs_setup, self.state.engine):
                    target = "/account/setup"
                else:
                    target = "/account/sign-in?next=" + quote(scope["path"], safe="/")
                await RedirectResponse(target, status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)
