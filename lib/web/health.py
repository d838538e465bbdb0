"""``/healthz`` and ``/readyz`` for load balancers and orchestrators: tiny, unauthenticated,
and saying nothing but ok or not (no version, no reason). Why a server is not ready goes to
its log, once each time the reason changes. Both answer while the server is still opening
its data (``/readyz`` with not ready)."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lib.web.state import ServerState

log = logging.getLogger("switchboard.web")
_HEADERS = {"Cache-Control": "no-store"}


def health_routes(state: ServerState) -> list[Route]:
    last_reason: str | None = None  # what the log said last

    async def healthz(_request: Request) -> Response:
        """The process answers."""
        return PlainTextResponse("ok", headers=_HEADERS)

    async def readyz(_request: Request) -> Response:
        """The data is open: the database answers, at the schema this code needs, and the
        keyring matches it."""
        nonlocal last_reason
        reason = await run_in_threadpool(state.not_ready)
        if reason != last_reason:
            if reason:
                log.warning("Not ready for traffic: %s", reason)
            else:
                log.info("Ready for traffic.")
            last_reason = reason
        if reason:
            return PlainTextResponse("not ready", status_code=503, headers=_HEADERS)
        return PlainTextResponse("ready", headers=_HEADERS)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
