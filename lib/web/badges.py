"""Badge routes: ``GET /api/v1/badges/connections/{name}.svg?badge=…`` and
``…/environments/{environment}.svg?badge=…`` (lib.services.reporting.badges).

A wiki sends no headers, so the badge token is the one query parameter. These routes read
nothing else: never an ``Authorization`` header or a cookie, and an API token in the query is
refused like any other parameter (400), since a token in a URL ends up in logs. A token that
does not open the badge and a subject that does not exist get the same grey "unknown" badge
with 404.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lib.services.reporting.badges import PARAMETER, ROUTES, Badge, Kind, Subject, badge, unknown
from lib.web.account import client_address
from lib.web.state import ServerState

# An SVG is a document when opened on its own: it may run nothing, load nothing, and is
# sandboxed; an <img> never runs its scripts anyway.
HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; sandbox"}


def _svg(found: Badge) -> Response:
    return Response(found.svg, status_code=found.status_code, media_type="image/svg+xml", headers=HEADERS)


def _answer(state: ServerState, request: Request, kind: Kind) -> Response:
    """Blocking: call in a thread."""
    params = request.query_params
    if list(params) != [PARAMETER] or len(params.getlist(PARAMETER)) != 1:
        return _svg(unknown(400))  # only ?badge=…, once: an API token in the URL is refused here
    if state.runtime is None:
        return _svg(unknown(503))
    subject = Subject(kind, request.path_params["name"])
    return _svg(
        badge(
            state.engine,
            state.runtime.vault.keyring,
            subject,
            params[PARAMETER],
            address=client_address(request) or None,
        )
    )


def badge_routes(state: ServerState) -> list[Route]:
    """One route per kind of badge, at its path (``badges.ROUTES``)."""

    def route(kind: Kind) -> Route:
        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(_answer, state, request, kind)

        return Route(ROUTES[kind] + "{name:path}.svg", endpoint, methods=["GET"])

    return [route(kind) for kind in Kind]
