"""Status for machines: the JSON status API and /metrics, for API tokens (``Authorization:
Bearer sbt_…``, lib.services.accounts.api_tokens) and, for /metrics only, scrapers on SWITCHBOARD_METRICS_ALLOW.

Status answers carry a verdict (``ok``, ``counts``: lib.services.reporting.machine_status); with ``?fail=503``
they are 503 instead of 200 when something that counts is failing, for HTTP monitors that read
no JSON. An operator token may test one connection (``POST …/{name}/test``).

These paths are no pages: the sign-in gate lets them through, and they answer 401 (with
``WWW-Authenticate: Bearer``) without a usable token, 403 for a role that may not, 503 while
the server cannot open its data. They read bearer tokens only, never a cookie, so no other
site can make a signed-in browser act through them. Answers are never cached.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from lib.catalogue.limits import ENVIRONMENT_MAX, NAME_MAX
from lib.kernel.errors import NotFoundError
from lib.services.accounts import api_tokens
from lib.services.guard.access import NotAllowed, Permission, Principal, SignInEnded, require
from lib.web.account import client_address
from lib.web.badges import badge_routes
from lib.web.state import ServerState

NO_STORE = {"Cache-Control": "no-store"}
NOT_READY = "Switchboard is not ready; see the server's log."


def _json(body: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={**NO_STORE, **(headers or {})})


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def unauthorized(exc: api_tokens.TokenRefused) -> JSONResponse:
    """RFC 6750: a challenge always; ``invalid_token`` when a token was sent but is no good."""
    challenge = 'Bearer realm="Switchboard"' + ("" if exc.reason == "no token" else ', error="invalid_token"')
    return _json({"error": str(exc)}, 401, {"WWW-Authenticate": challenge})


def forbidden(exc: NotAllowed) -> JSONResponse:
    return _json({"error": str(exc)}, 403)


def answer(
    state: ServerState, request: Request, work: Callable[[Principal], Response], fallback: Principal | None = None
) -> Response:
    """Run ``work`` for the principal of the request's token (or ``fallback`` when none was
    sent), turning refusals into their HTTP answers. Blocking: call in a thread."""
    if state.runtime is None:
        return _json({"error": NOT_READY}, 503)
    engine, target = state.engine, f"{request.method} {request.url.path}"
    presented = bearer(request)
    try:
        principal = (
            fallback
            if fallback is not None and presented is None
            else api_tokens.authenticate(engine, presented, address=client_address(request) or None, target=target)
        )
    except api_tokens.TokenRefused as exc:
        return unauthorized(exc)
    try:
        return work(principal)
    except SignInEnded:  # revoked while this request ran
        return unauthorized(api_tokens.TokenRefused("revoked token"))
    except NotAllowed as exc:
        if principal.via == "token":
            api_tokens.refuse(principal, exc.permission, target)
        return forbidden(exc)
    except NotFoundError as exc:
        return _json({"error": str(exc)}, 404)


# --- query parameters ----------------------------------------------------------------------
# Every parameter a path takes is listed; any other is refused (400 naming it), so a monitor's
# misspelt filter (?enviroment=prod) fails loudly instead of watching more, or less, than meant.
FAIL = "fail"
FAIL_VALUE = "503"  # ?fail=503: answer 503 instead of 200 when a product that counts is failing
VALUES_MAX = 50  # values of one repeatable parameter a request may give
# The repeatable filters of /api/v1/status: (longest value, what one value is, with its article).
# Repeat a parameter for several values; a comma is part of a value (connection names may hold one).
FILTERS = {
    "environment": (ENVIRONMENT_MAX, "environment", "an environment label"),
    "connection": (NAME_MAX, "connection", "a connection name"),
}
SHOWN_MAX = 40  # of an unknown parameter's name, in the message refusing it


def _query_problem(request: Request, takes: tuple[str, ...]) -> str | None:
    """What is wrong with the request's query parameters (this path takes ``takes``), in words
    naming the parameter and the fix; None if nothing."""
    params = request.query_params
    for key in params:
        if key not in takes:
            shown = key if len(key) <= SHOWN_MAX else key[:SHOWN_MAX] + "…"
            return f"{shown}: this path takes no such query parameter; it takes {', '.join(takes)}."
    if FAIL in takes and params.getlist(FAIL) not in ([], [FAIL_VALUE]):
        return (
            f"{FAIL}: the one allowed value is {FAIL_VALUE} (?{FAIL}={FAIL_VALUE} answers 503 instead of 200 "
            f"when a product that counts is failing); leave it out for 200 always."
        )
    for key, (longest, what, one) in FILTERS.items():
        values = params.getlist(key) if key in takes else []
        if len(values) > VALUES_MAX:
            return f"{key}: give at most {VALUES_MAX} {what}s (repeat ?{key}= for each)."
        if any(len(v) > longest for v in values):
            return f"{key}: {one} has at most {longest} characters."
    return None


def _verdict_answer(request: Request, body: dict[str, Any]) -> Response:
    """``body`` (a status answer with its ``ok``) as 200, or as 503 when ?fail=503 was asked
    for and something that counts is failing: the same body either way."""
    failing = request.query_params.get(FAIL) == FAIL_VALUE and not body["ok"]
    return _json(body, 503 if failing else 200)


# --- tests asked for over the API ----------------------------------------------------------
TESTS_AT_ONCE = 4  # API tests one server runs at once, over all connections: each holds a thread and an 8x8 client
BUSY_RETRY_S = 5


class Running:
    """The connections an API test runs for in this server now. One test of a connection at a
    time: a second is answered 409 at once rather than queued (a pipeline waiting behind a test
    it did not ask for learns nothing newer); at most TESTS_AT_ONCE in all (429)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[uuid.UUID] = set()

    @contextmanager
    def claimed(self, connection_id: uuid.UUID, name: str) -> Iterator[Response | None]:
        """The refusal to send, or None while this request holds the connection."""
        with self._lock:
            refusal = (
                _json({"error": f"A test of '{name}' is running already; ask again once it has answered."}, 409)
                if connection_id in self._ids
                else _json(
                    {"error": f"{TESTS_AT_ONCE} tests are running already; ask again in a moment."},
                    429,
                    {"Retry-After": str(BUSY_RETRY_S)},
                )
                if len(self._ids) >= TESTS_AT_ONCE
                else None
            )
            if refusal is None:
                self._ids.add(connection_id)
        try:
            yield refusal
        finally:
            if refusal is None:
                with self._lock:
                    self._ids.discard(connection_id)


def _test(state: ServerState, running: Running, request: Request, name: str, me: Principal) -> Response:
    """Test every product of the connection that counts, as the console's Test button does
    (lib.services.checking.checks.run_checks, audited under the token's name), with a fresh 8x8 client of its own
    (a token is never carried into a later run), then answer as GET /api/v1/connections/{name}."""
    from lib.eightbyeight.prober import Prober, ProberClosed
    from lib.services import connections
    from lib.services.checking import checks
    from lib.services.reporting import machine_status

    require(me, Permission.RUN_TESTS)  # before anything else: a viewer learns nothing here
    try:
        view = connections.find_by_name(state.engine, name)
    except NotFoundError:
        raise machine_status.not_found(name) from None
    with running.claimed(view.id, view.name) as refusal:
        if refusal is not None:
            return refusal
        assert state.runtime is not None  # answer() made sure
        prober = Prober(state.runtime.settings.base_url)
        try:
            checks.run_checks(state.runtime, prober, connection_ids=[view.id], triggered_by=me)
        except ProberClosed as exc:
            return _json({"error": str(exc)}, 503)
        finally:
            prober.close()
        return _verdict_answer(request, machine_status.one(state.engine, view.name, actor=me))


class _ConnectionRoute(Route):
    """``/api/v1/connections/{name}`` (``action`` False) or ``…/{name}/test`` (True), told apart
    by the path as sent: only an unescaped slash before ``test`` makes it the action, so a
    connection named "Acme/test" is read at ``…/Acme%2Ftest`` and tested at ``…/Acme%2Ftest/test``."""

    _ACTION = re.compile(rb"/api/v1/connections/.+/test$")

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: list[str], action: bool) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.action = action

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path") or scope["path"].encode()
        if bool(self._ACTION.search(raw)) != self.action:
            return Match.NONE, {}
        return super().matches(scope)


def api_routes(state: ServerState) -> list[Route]:
    # The answers' modules (pandas, prometheus_client) load at the first call, not on the
    # path to a server that answers /healthz.
    running = Running()

    async def status(request: Request) -> Response:
        from lib.services.reporting import machine_status

        problem = _query_problem(request, (*FILTERS, FAIL))

        def work(me: Principal) -> Response:
            if problem:
                return _json({"error": problem}, 400)
            return _verdict_answer(
                request,
                machine_status.everything(
                    state.engine,
                    actor=me,
                    environments=request.query_params.getlist("environment"),
                    names=request.query_params.getlist("connection"),
                ),
            )

        return await run_in_threadpool(answer, state, request, work)

    async def connection(request: Request) -> Response:
        from lib.services.reporting import machine_status

        name, problem = request.path_params["name"], _query_problem(request, (FAIL,))

        def work(me: Principal) -> Response:
            if problem:
                return _json({"error": problem}, 400)
            return _verdict_answer(request, machine_status.one(state.engine, name, actor=me))

        return await run_in_threadpool(answer, state, request, work)

    async def test(request: Request) -> Response:
        """Bearer tokens only, like every API route (``answer`` never reads a cookie), so a
        page on another site cannot make a signed-in browser start a test."""
        name, problem = request.path_params["name"], _query_problem(request, (FAIL,))

        def work(me: Principal) -> Response:
            if problem:
                return _json({"error": problem}, 400)
            return _test(state, running, request, name, me)

        return await run_in_threadpool(answer, state, request, work)

    async def scrape(request: Request) -> Response:
        from lib.services.reporting import metrics

        settings = state.settings
        allowed = settings.metrics_allow if settings else ()
        per_connection = settings.metrics_connection_label if settings else True

        def work(me: Principal) -> Response:
            body, content_type = metrics.exposition(
                state.engine, per_connection=per_connection, actor=me, accept=request.headers.get("accept", "")
            )
            return Response(body, media_type=content_type, headers=NO_STORE)

        scraper = metrics.scraper(client_address(request), allowed)
        return await run_in_threadpool(answer, state, request, work, scraper)

    return [
        Route("/api/v1/status", status, methods=["GET"]),
        _ConnectionRoute("/api/v1/connections/{name:path}", connection, methods=["GET"], action=False),
        _ConnectionRoute("/api/v1/connections/{name:path}/test", test, methods=["POST"], action=True),
        Route("/metrics", scrape, methods=["GET"]),
        *badge_routes(state),
    ]
