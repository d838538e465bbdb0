"""The session cookie: its name and attributes, and the one cookie of that kind the server reads.

Browsers scope cookies by host, not by port, so a page on another port of the same host can set
a cookie that the console's pages then send: a "session swap", where the console acts as
whoever that cookie names. A ``__Host-`` cookie can only be set by a secure origin of this very
host, with ``Secure``, ``Path=/`` and no ``Domain``; where people reach the console over https,
neither a plain-http service on another port nor a sibling host can set or replace it. So the
session cookie is ``__Host-switchboard_session`` wherever the browser keeps such a cookie, and
the server then reads that name only, never the plain one:

- over https: the request's own scheme (TLS here, or ``X-Forwarded-Proto`` from a trusted
  proxy) or an https ``SWITCHBOARD_PUBLIC_URL``;
- over plain http to this machine (localhost, 127.0.0.0/8, ::1), which Chromium treats as a
  secure origin and Safari does not: when the browser kept the probe cookie that the sign-in
  and setup pages offer (itself a ``__Host-`` cookie), which shows that it keeps them here.

Anywhere else (plain http to a host name) a browser drops a ``Secure`` cookie, so the session
cookie keeps the plain name ``switchboard_session``. On loopback every port is a secure origin
to Chromium, so a page on another port of localhost can still set a ``__Host-`` cookie there:
only https on a real host name keeps other ports out (docs/operating/security.md).

:class:`OneSessionCookie` shows everything behind it (our routes, the sign-in gate, Streamlit's
WebSocket and so the console's pages) the chosen cookie under one name,
``sessions.COOKIE_NAME``, and drops the other one.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lib.kernel.config import Settings
from lib.services.accounts import sessions
from lib.web.state import ServerState

HOST_COOKIE = "__Host-" + sessions.COOKIE_NAME
PROBE = "__Host-switchboard_secure"  # kept only by a browser that keeps __Host- cookies here
PROBE_MAX_AGE = 400 * 24 * 3600  # the longest a browser keeps any cookie; it holds no secret
_NAMES = frozenset({sessions.COOKIE_NAME, HOST_COOKIE})
SAME_SITE: Final = "lax"  # why not strict: set_session


def host_of(scope: Scope) -> str:
    """The request's host name as the browser wrote it (Host header), without the port."""
    host = Headers(scope=scope).get("host", "").strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """localhost, a name under .localhost, 127.0.0.0/8 or ::1: this machine, to a browser."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _over_https(scope: Scope, settings: Settings | None) -> bool:
    return scope.get("scheme") in ("https", "wss") or (settings is not None and settings.secure_cookies)


def _cookies(scope: Scope) -> dict[str, str]:
    return HTTPConnection(scope).cookies


def prefixed(scope: Scope, settings: Settings | None) -> bool:
    """Whether this request's browser keeps a ``__Host-`` session cookie (see the module)."""
    if _over_https(scope, settings):
        return True
    return is_loopback(host_of(scope)) and PROBE in _cookies(scope)


def name_for(scope: Scope, settings: Settings | None) -> str:
    """The session cookie's name for this request: the one set, and the only one read."""
    return HOST_COOKIE if prefixed(scope, settings) else sessions.COOKIE_NAME


def set_session(response: Response, scope: Scope, settings: Settings | None, token: str, max_age: int) -> None:
    """HttpOnly (no script reads it), SameSite=Lax, Path=/; Secure with the ``__Host-`` name.

    Lax, not Strict: a link from another site (an alert in chat or webmail, a bookmark) is a
    top-level GET, and it should arrive signed in. That is all Lax lets another site do. No GET
    of the console changes anything (its pages act only on a click, sent over the WebSocket,
    which opens only for the console's own origin, ``lib.web.origins``; signing out is a POST
    or a click), every form POST must carry our own origin, and a browser sends a Lax cookie
    with no other cross-site request (forms posted, frames, images, scripts, fetches)."""
    secure = prefixed(scope, settings)
    response.set_cookie(
        HOST_COOKIE if secure else sessions.COOKIE_NAME,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite=SAME_SITE,
        secure=secure,
    )


def forget_session(response: Response, scope: Scope, settings: Settings | None) -> None:
    """Drop the session cookie (a browser refuses the deletion of a ``__Host-`` cookie unless
    it carries the same ``Secure``)."""
    secure = prefixed(scope, settings)
    response.delete_cookie(
        HOST_COOKIE if secure else sessions.COOKIE_NAME, path="/", httponly=True, samesite=SAME_SITE, secure=secure
    )


def offer_probe(response: Response, scope: Scope, settings: Settings | None) -> None:
    """On the pages before a sign-in, over plain http to this machine: a ``__Host-`` cookie
    that only a browser keeping such cookies here sends back (with the sign-in form). Lax like
    the session cookie: without it, a link from another site would be read under the plain name."""
    if not _over_https(scope, settings) and is_loopback(host_of(scope)) and PROBE not in _cookies(scope):
        response.set_cookie(PROBE, "1", max_age=PROBE_MAX_AGE, path="/", httponly=True, samesite=SAME_SITE, secure=True)


def only_the_session_cookie(scope: Scope, settings: Settings | None) -> Scope:
    """``scope`` whose Cookie header holds the session cookie of this request's name (the first
    one, if a browser sent several) as ``sessions.COOKIE_NAME``, and no other session cookie."""
    raw = [value.decode("latin-1") for name, value in scope["headers"] if name == b"cookie"]
    if not raw:
        return scope
    wanted, chosen, kept = name_for(scope, settings), None, []
    for piece in "; ".join(raw).split(";"):
        name, _, value = piece.strip().partition("=")
        if name.strip() not in _NAMES:
            if piece.strip():
                kept.append(piece.strip())
        elif name.strip() == wanted and chosen is None:
            chosen = value.strip()
    if chosen is not None:
        kept.append(f"{sessions.COOKIE_NAME}={chosen}")
    headers = [(name, value) for name, value in scope["headers"] if name != b"cookie"]
    if kept:
        headers.append((b"cookie", "; ".join(kept).encode("latin-1")))
    return {**scope, "headers": headers}


class OneSessionCookie:
    """Pure ASGI middleware: every HTTP request and WebSocket behind it sees only the session
    cookie :func:`name_for` names."""

    def __init__(self, app: ASGIApp, *, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = only_the_session_cookie(scope, self.state.settings)
        await self.app(scope, receive, send)
