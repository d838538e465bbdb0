"""What the server answers before Streamlit sees a request.

- Page loads of protected pages without a live session go to the sign-in page, and those of
  someone whose password an admin chose go to the change-password page; either goes on
  afterwards to the address asked for, path and query (a link from an alert, say). A convenience in
  front of the real check, which every page script makes itself on every run (a WebSocket
  can reach a script without a page load, and Streamlit's legacy pages/ mode can skip
  app.py). It also means a reload after signing out elsewhere lands on the sign-in page.
- Streamlit's own endpoints the console does not use are closed: uploads (the console
  uploads nothing) and its metrics. Files it serves from /media (downloads) go only to a
  browser with a live session.
- While the server cannot open its data, protected paths answer 503 with the reason.
"""

from __future__ import annotations

from urllib.parse import quote, quote_from_bytes

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from lib.services.accounts import first_run, sessions
from lib.services.content.navigation import protected_paths
from lib.web import html
from lib.web.state import ServerState

CLOSED_PREFIXES = ("/_stcore/upload_file", "/_stcore/metrics")
SESSION_PREFIXES = ("/media/",)
PASSWORD_PATH = "/account/password"
# Characters a URL's query holds as they are (RFC 3986), '%' keeping the escapes already made.
QUERY_SAFE = "-._~!$&'()*+,;=:@/?%"


def page_address(scope: Scope) -> str:
    """The path and query a page load asked for, everything outside ``QUERY_SAFE`` in the
    query percent-encoded (browsers send a few characters, such as '|', raw)."""
    query = quote_from_bytes(scope.get("query_string", b""), safe=QUERY_SAFE)
    path: str = scope["path"]
    return path + (f"?{query}" if query else "")


def password_path(next_path: str) -> str:
    """The change-password page, going on to ``next_path`` afterwards."""
    return f"{PASSWORD_PATH}?next={quote(next_path, safe='/')}"


def session_key(request: Request, state: ServerState) -> sessions.Key | None:
    """The session a request belongs to: our cookie, or with OIDC the identity in Streamlit's
    signed user cookie."""
    if state.local_accounts:
        token = request.cookies.get(sessions.COOKIE_NAME)
        return sessions.Key.of(token) if token else None
    claims = state.hooks.oidc_claims(request)
    return sessions.oidc_key(claims) if claims else None


class SignInGate:
    def __init__(self, app: ASGIApp, *, state: ServerState) -> None:
        self.app = app
        self.state = state
        self.paths = protected_paths()

    async def _live(self, request: Request) -> sessions.SignedIn | None:
        key = session_key(request, self.state)
        return await run_in_threadpool(sessions.resume, self.state.engine, key, self.state.limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(CLOSED_PREFIXES):
            await PlainTextResponse("Not available in Switchboard.", status_code=404)(scope, receive, send)
            return
        if self.state.problem and (path in self.paths or path.startswith(("/account/", *SESSION_PREFIXES))):
            await HTMLResponse(html.cannot_start(self.state.problem), status_code=503)(scope, receive, send)
            return
        if path.startswith(SESSION_PREFIXES):
            live = await self._live(Request(scope))
            if live is None or live.must_change_password:
                refusal = "Change your password first." if live else "Sign in to Switchboard first."
                await PlainTextResponse(refusal, status_code=403)(scope, receive, send)
                return
        if scope["method"] == "GET" and self.state.local_accounts and path in self.paths:
            live = await self._live(Request(scope))
            if live is None:
                if await run_in_threadpool(first_run.needs_setup, self.state.engine):
                    target = "/account/setup"
                else:
                    target = "/account/sign-in?next=" + quote(page_address(scope), safe="/")
                await RedirectResponse(target, status_code=303)(scope, receive, send)
                return
            if live.must_change_password:
                await RedirectResponse(password_path(page_address(scope)), status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)
