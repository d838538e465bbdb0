"""``/healthz`` and ``/readyz`` for load balancers and orchestrators: tiny, unauthenticated,
and saying nothing but ok or not (no version, no reason). Why a server is not ready goes to
its log, once each time the reason changes."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lib.runtime import not_ready
from lib.web.state import ServerState

log = logging.getLogger("switchboard.web")
_HEADERS = {"Cache-Control": "no-store"}


def health_routes(state: ServerState) -> list[Route]:
    last_reason: list[str | None] = [None]

    async def healthz(_request: Request) -> Response:
        """The process answers."""
        return PlainTextResponse("ok", headers=_HEADERS)

    async def readyz(_request: Request) -> Response:
        """The database answers, at the schema this code needs, and the keyring matches it."""
        reason = state.problem or (await run_in_threadpool(not_ready, state.runtime) if state.runtime else None)
        if reason != last_reason[0]:
            if reason:
                log.warning("Not ready for traffic: %s", reason)
            else:
                log.info("Ready for traffic.")
            last_reason[0] = reason
        if reason:
            return PlainTextResponse("not ready", status_code=503, headers=_HEADERS)
        return PlainTextResponse("ready", headers=_HEADERS)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
