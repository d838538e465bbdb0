"""Status for machines: the JSON status API and /metrics, for API tokens (``Authorization:
Bearer sbt_…``, lib.tokens) and, for /metrics only, scrapers on SWITCHBOARD_METRICS_ALLOW.

These paths are no pages: the sign-in gate lets them through, and they answer 401 (with
``WWW-Authenticate: Bearer``) without a usable token, 403 for a role that may not, 503 while
the server cannot open its data. Answers are never cached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lib import tokens
from lib.access import NotAllowed, Principal, SignInEnded
from lib.errors import NotFoundError
from lib.web.account import client_address
from lib.web.state import ServerState

NO_STORE = {"Cache-Control": "no-store"}
NOT_READY = "Switchboard is not ready; see the server's log."


def _json(body: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={**NO_STORE, **(headers or {})})


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def unauthorized(exc: tokens.TokenRefused) -> JSONResponse:
    """RFC 6750: a challenge always; ``invalid_token`` when a token was sent but is no good."""
    challenge = 'Bearer realm="Switchboard"' + ("" if exc.reason == "no token" else ', error="invalid_token"')
    return _json({"error": str(exc)}, 401, {"WWW-Authenticate": challenge})


def forbidden(exc: NotAllowed) -> JSONResponse:
    return _json({"error": str(exc)}, 403)


def answer(state: ServerState, request: Request, work: Callable[[Principal], Response],
           fallback: Principal | None = None) -> Response:
    """Run ``work`` for the principal of the request's token (or ``fallback`` when none was
    sent), turning refusals into their HTTP answers. Blocking: call in a thread."""
    if state.runtime is None:
        return _json({"error": NOT_READY}, 503)
    engine, target = state.engine, f"{request.method} {request.url.path}"
    presented = bearer(request)
    try:
        principal = (fallback if fallback is not None and presented is None else
                     tokens.authenticate(engine, presented, address=client_address(request) or None, target=target))
    except tokens.TokenRefused as exc:
        return unauthorized(exc)
    try:
        return work(principal)
    except SignInEnded:  # revoked while this request ran
        return unauthorized(tokens.TokenRefused("revoked token"))
    except NotAllowed as exc:
        if principal.via == "token":
            tokens.refuse(principal, exc.permission, target)
        return forbidden(exc)
    except NotFoundError as exc:
        return _json({"error": str(exc)}, 404)


def api_routes(state: ServerState) -> list[Route]:
    # The answers' modules (pandas, prometheus_client) load at the first call, not on the
    # path to a server that answers /healthz.
    async def status(request: Request) -> Response:
        from lib import machine_status

        return await run_in_threadpool(answer, state, request, lambda me: _json(
            machine_status.everything(state.engine, actor=me)))

    async def connection(request: Request) -> Response:
        from lib import machine_status

        name = request.path_params["name"]
        return await run_in_threadpool(answer, state, request, lambda me: _json(
            machine_status.one(state.engine, name, actor=me)))

    async def scrape(request: Request) -> Response:
        from lib import metrics

        settings = state.settings
        allowed = settings.metrics_allow if settings else ()
        per_connection = settings.metrics_connection_label if settings else True

        def work(me: Principal) -> Response:
            body, content_type = metrics.exposition(state.engine, per_connection=per_connection, actor=me,
                                                    accept=request.headers.get("accept", ""))
            return Response(body, media_type=content_type, headers=NO_STORE)

        scraper = metrics.scraper(client_address(request), allowed)
        return await run_in_threadpool(answer, state, request, work, scraper)

    return [
        Route("/api/v1/status", status, methods=["GET"]),
        Route("/api/v1/connections/{name:path}", connection, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]

