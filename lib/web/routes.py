"""Switchboard's own routes in front of Streamlit, and their answers to requests they do not take.

Starlette's router answers a known path asked with another method by raising HTTPException,
which only an exception middleware turns into an answer; ours runs in front of Streamlit's, not
inside it, so such a request (``DELETE /metrics``, anybody's) ended as a 500 with a traceback in
the log. Here the route table itself decides: a path of ours asked with a method none of its
routes takes answers 405 with ``Allow`` (every method its routes take), and an HTTPException a
handler raises (a refused form: ``lib.web.forms``) answers with its own status and one line in
the log. Every other path goes on to Streamlit."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("switchboard.web")


class OwnRoutes:
    def __init__(self, routes: Sequence[Route], *, default: ASGIApp) -> None:
        self.routes = routes
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.default(scope, receive, send)
            return
        allowed: set[str] = set()
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                await self._handle(route, {**scope, **child}, receive, send)
                return
            if match is Match.PARTIAL:
                allowed |= route.methods or set()
        if allowed:
            await PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"Allow": ", ".join(sorted(allowed))}
            )(scope, receive, send)
            return
        await self.default(scope, receive, send)

    @staticmethod
    async def _handle(route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await route.handle(scope, receive, send)
        except HTTPException as exc:
            log.info("Refused %s %s with %d: %s", scope["method"], route.path, exc.status_code, exc.detail)
            await PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)(scope, receive, send)
