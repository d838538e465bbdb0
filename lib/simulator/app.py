"""The simulator's ASGI app: 8x8's token endpoint, the five product probes, a control API.

Request flow for every simulated route: identify the client (Basic user name or bearer
token), count the request and its concurrency, sleep the scenario latency, apply the first
matching fault, then answer as 8x8 documents it (``reference/8x8-api.md`` in the shared docs).
The probe paths are generated from ``lib.catalogue`` so the simulator and the prober cannot
drift apart.

8x8's routes are matched here and answered with Starlette's Request and Response objects,
without Starlette's application, router and middleware layers: the benchmarks send a thousand
requests a second, and those layers were about a quarter of the simulator's CPU per request,
which the client under test then waited for. The control API (``/_sim/...``) is a Starlette app.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, compile_path
from starlette.types import Receive, Scope, Send

from lib.catalogue.products import ANALYTICS_PATH_PREFIX, PRODUCTS, SETTINGS, STORAGE_REGIONS, TOKEN
from lib.simulator.scenario import (
    ROUTE_NAMES,
    App,
    Fault,
    Scenario,
    ScenarioError,
    check_knobs,
)

UNMATCHED = "unmatched"  # stats bucket for paths 8x8 does not serve
_PAUSE_STEP_S = 0.05  # a delay is slept in steps this long, checking between them that the client is still there
_TIMER_RESOLUTION_S = 0.001  # the event loop's timers (libuv: milliseconds); less than this left counts as done
JSON = "application/json"
# The Chat spec declares its error bodies (and the token endpoint's) as problem+json.
PROBLEM_JSON = "application/problem+json"
ERROR_MEDIA_TYPE: dict[str, str] = {TOKEN: PROBLEM_JSON, "cc_chat": PROBLEM_JSON}

# Canned customer data; the values are ours, the shapes are 8x8's.
QUEUES: tuple[dict[str, str], ...] = (
    {"id": "101", "name": "Sales"},
    {"id": "102", "name": "Support"},
    {"id": "103", "name": "Billing"},
    {"id": "104", "name": "Callbacks"},
)
REPORT_TYPES: tuple[dict[str, Any], ...] = (
    {
        "type": "agent-interactions-summary",
        "groupBy": [
            {"name": "agent", "filters": ["agent"]},
            {"name": "group-and-agent", "filters": ["group", "agent"]},
        ],
        "metrics": ["accepted", "avgHandlingTime", "rejected"],
    },
    {
        "type": "queue-interactions-summary",
        "groupBy": [{"name": "queue", "filters": ["queue", "channel"]}],
        "metrics": ["entered", "abandoned", "avgWaitTime"],
    },
    {"type": "script-paths", "groupBy": [{"name": "script", "filters": ["script"]}], "metrics": ["count"]},
)
QM_USER_COUNT = 12
REALTIME_MAX_SIZE = 1000

Answer = Callable[[Request], Awaitable[Response]]
CONTROL_PREFIX = "/_sim/"


@dataclass(frozen=True)
class _Route:
    """One of 8x8's paths (placeholders match one path segment each) and what answers it."""

    pattern: re.Pattern[str]
    methods: frozenset[str]
    endpoint: Answer

    @classmethod
    def of(cls, path: str, method: str, endpoint: Answer) -> _Route:
        methods = {method, "HEAD"} if method == "GET" else {method}
        return cls(compile_path(path)[0], frozenset(methods), endpoint)


# --- Shared runtime state ----------------------------------------------------------------


@dataclass
class _Token:
    client_id: str
    expires_at: float  # on SimulatorState.clock


@dataclass
class _ArmedFault:
    fault: Fault
    remaining: int | None  # None: never runs out


class SimulatorState:
    """Knobs, faults, tokens and statistics of one running simulator.

    Requests run on one asyncio loop, but tests and the control API may touch the state from
    other threads, so every read-modify-write holds a lock (never across an ``await``).
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.latency_ms = scenario.latency_ms
        self.token_lifetime_s = scenario.token_lifetime_s
        self.stopping = False  # set by the server before it shuts down: cut pauses short
        self.clock: Callable[[], float] = time.monotonic  # token lifetimes run on it (a test moves it on)
        self._lock = threading.Lock()
        self._faults = [_ArmedFault(f, f.times) for f in scenario.faults]
        self._tokens: dict[str, _Token] = {}
        self._in_flight = 0
        self._in_flight_by_client: dict[str, int] = {}
        self._zero_stats()

    def _zero_stats(self) -> None:
        self._requests = dict.fromkeys((*ROUTE_NAMES, UNMATCHED), 0)
        self._token_requests: dict[str, int] = {}
        self._max_in_flight = self._in_flight
        self._max_by_client = {c: n for c, n in self._in_flight_by_client.items() if n}

    # knobs
    def knobs(self) -> dict[str, int]:
        return {"latency_ms": self.latency_ms, "token_lifetime_s": self.token_lifetime_s}

    def set_knobs(self, **knobs: int) -> dict[str, int]:
        with self._lock:
            for name, value in check_knobs(knobs).items():
                setattr(self, name, value)
            return self.knobs()

    # faults
    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(a.fault) | {"remaining": a.remaining} for a in self._faults]

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(_ArmedFault(fault, fault.times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, route: str, client_id: str | None) -> Fault | None:
        """The first fault matching this call, counting it against its ``times``."""
        with self._lock:
            for armed in self._faults:
                fault = armed.fault
                if fault.route != route or fault.client_id not in (None, client_id):
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._faults.remove(armed)
                return fault
        return None

    # tokens
    def issue_token(self, client_id: str) -> tuple[str, int]:
        token = secrets.token_urlsafe(21)  # 28 characters, like 8x8's samples
        with self._lock:
            lifetime = self.token_lifetime_s
            self._tokens[token] = _Token(client_id, self.clock() + lifetime)
        return token, lifetime

    def issued_tokens(self) -> list[str]:
        """Every access token handed out so far (leak tests look for them)."""
        with self._lock:
            return list(self._tokens)

    def token(self, token: str | None) -> _Token | None:
        return self._tokens.get(token) if token else None

    # statistics
    @contextmanager
    def track(self, route: str, client_id: str | None) -> Iterator[None]:
        """Count one request and keep it in the in-flight figures while it runs."""
        with self._lock:
            self._requests[route] += 1
            if route == TOKEN and client_id:
                self._token_requests[client_id] = self._token_requests.get(client_id, 0) + 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            if client_id:
                now = self._in_flight_by_client.get(client_id, 0) + 1
                self._in_flight_by_client[client_id] = now
                self._max_by_client[client_id] = max(self._max_by_client.get(client_id, 0), now)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                if client_id:
                    self._in_flight_by_client[client_id] -= 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "token_requests": dict(self._token_requests),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "max_in_flight_by_client": dict(self._max_by_client),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._zero_stats()


# --- Response helpers --------------------------------------------------------------------


def _json(body: Any, status: int = 200, *, media_type: str = JSON, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status, headers=headers, media_type=media_type)


def _apigee_fault(route: str, status: int, faultstring: str, errorcode: str) -> Response:
    body = {"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}}
    return _json(body, status, media_type=ERROR_MEDIA_TYPE.get(route, JSON))


def _problem(route: str, status: int, message: str, *errors: str) -> Response:
    return _json({"message": message, "errors": list(errors)}, status, media_type=ERROR_MEDIA_TYPE.get(route, JSON))


def _oauth_error(status: int, code: str, error: str) -> Response:
    return _json({"ErrorCode": code, "Error": error}, status, media_type=PROBLEM_JSON)


def _fault_response(route: str, fault: Fault) -> Response:
    if fault.malformed == "html":
        html = "<html><body><h1>Service temporarily unavailable</h1></body></html>"
        return HTMLResponse(html, fault.status or 200)
    if fault.malformed == "json":
        return _json({"unexpected": True}, fault.status or 200)
    assert fault.status is not None  # Fault validation: no status means delay only
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
    media_type = ERROR_MEDIA_TYPE.get(route, JSON)
    if fault.status == 429:  # Apigee's spike-arrest fault
        body: dict[str, Any] = {
            "fault": {
                "faultstring": "Spike arrest violation. Allowed rate : 10ps",
                "detail": {"errorcode": "policies.ratelimit.SpikeArrestViolation"},
            }
        }
    elif fault.status >= 500:
        body = {
            "message": f"Could not process this request: {HTTPStatus(fault.status).phrase}.",
            "errors": [],
            "referenceId": str(uuid.uuid4()),
        }
    else:
        body = {"message": HTTPStatus(fault.status).phrase, "errors": []}
    return _json(body, fault.status, media_type=media_type, headers=headers)


async def _no_proxy(request: Request, exc: Exception | None = None) -> Response:
    """Apigee's answer for a path no API proxy serves (also a Starlette 404 handler)."""
    return _apigee_fault(
        UNMATCHED,
        404,
        f"Unable to identify proxy for host: default and url: {request.url.path}",
        "messaging.adaptors.http.flow.ApplicationNotFound",
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon and client_id else None


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _int_param(request: Request, name: str, default: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


# --- The simulated 8x8 -------------------------------------------------------------------


class _Simulated8x8:
    """The simulated API's endpoints; ``_answer_*`` runs after tracking, latency and faults."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self._routes = self.routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._dispatch(request)
        await response(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        """The route for the request's path; a known path with another method is 405."""
        path, method = request.scope["path"], request.scope["method"]
        for route in self._routes:
            if match := route.pattern.match(path):
                if method not in route.methods:
                    return PlainTextResponse(
                        "Method Not Allowed", 405, headers={"Allow": ", ".join(sorted(route.methods))}
                    )
                request.scope["path_params"] = match.groupdict()
                return await route.endpoint(request)
        return await self._serve(UNMATCHED, request, _no_proxy)

    def routes(self) -> list[_Route]:
        routes = [_Route.of("/oauth/v2/token", "POST", self._endpoint(TOKEN, self._answer_token))]
        # Every setting becomes a path parameter of the same name, e.g. /qm/{qm_region}/...
        placeholders = {key: "{" + key + "}" for key in SETTINGS}
        for key, product in PRODUCTS.items():
            answer = getattr(self, f"_answer_{key}")
            # Analytics puts the region in front of the path, so one route per region.
            prefixes = ANALYTICS_PATH_PREFIX if "{analytics_prefix}" in product.probe.path else {"": ""}
            for region, prefix in prefixes.items():
                path = product.probe.path.format(analytics_prefix=prefix, **placeholders)
                routes.append(
                    _Route.of(path, product.probe.method, self._endpoint(key, self._product(key, answer, region)))
                )
        return routes

    def _endpoint(self, route: str, answer: Answer) -> Answer:
        async def endpoint(request: Request) -> Response:
            return await self._serve(route, request, answer)

        return endpoint

    async def _serve(self, route: str, request: Request, answer: Answer) -> Response:
        if route == TOKEN:
            credentials = _basic_credentials(request)
            client_id = credentials[0] if credentials else None
            await request.body()  # read (and cache) it now: _pause watches receive() for hang-ups
        else:
            token = self.state.token(_bearer(request))
            client_id = token.client_id if token else None
        with self.state.track(route, client_id):
            await self._pause(request, self.state.latency_ms)
            fault = self.state.take_fault(route, client_id) if route != UNMATCHED else None
            if fault is not None:
                await self._pause(request, fault.delay_ms)
                if fault.status is not None or fault.malformed is not None:
                    return _fault_response(route, fault)
            return await answer(request)

    async def _pause(self, request: Request, milliseconds: int) -> None:
        """Sleep, but stop early once the client hangs up or the server is stopping.

        Without this a test that times out, or stops the server, during a long ``delay_ms``
        would leave uvicorn to cancel the request after its grace period and log an error.
        The client is asked only from the second step on: a client that just sent its request
        is there, and asking (Starlette's is_disconnected) cost a quarter of the simulator's CPU
        when every request was asked (bench/schedule.py at 1,000 requests a second).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + milliseconds / 1000
        first = True
        while (left := deadline - loop.time()) > _TIMER_RESOLUTION_S:
            if self.state.stopping or not first and await request.is_disconnected():
                return
            first = False
            await asyncio.sleep(min(left, _PAUSE_STEP_S))

    # token endpoint
    async def _answer_token(self, request: Request) -> Response:
        form: dict[str, list[str]] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != "client_credentials":
            return _oauth_error(400, "invalid_request", f"Unsupported grant type : {grant_type}")
        credentials = _basic_credentials(request)
        if credentials is None:
            return _oauth_error(401, "invalid_client", "Client credentials must be sent with HTTP Basic authentication")
        app = self.state.scenario.app(credentials[0])
        if app is None:
            return _oauth_error(401, "invalid_client", "ClientId is Invalid")
        if not hmac.compare_digest(credentials[1].encode(), app.client_secret.encode()):
            return _oauth_error(401, "invalid_client", "Client credentials are invalid")
        token, lifetime = self.state.issue_token(app.client_id)
        names = list(dict.fromkeys(PRODUCTS[key].api_product for key in app.products))
        return _json(
            {
                "refresh_token_expires_in": "0",
                "api_product_list": "[" + ", ".join(names) + "]",
                "api_product_list_json": names,
                "organization_name": "8x8gateway",
                "developer.email": "deprecated",
                "token_type": "BearerToken",
                "issued_at": str(int(time.time() * 1000)),
                "client_id": "deprecated",
                "access_token": token,
                "application_name": app.application_name,
                "scope": "",
                "expires_in": str(lifetime),
                "refresh_count": "0",
                "status": "approved",
            }
        )

    # products: authorisation shared by all five
    def _product(self, key: str, answer: Callable[[Request, App, str], Response], region: str) -> Answer:
        """Wrap a product answer with 8x8's gateway checks (token, expiry, API product)."""

        async def checked(request: Request) -> Response:
            token = self.state.token(_bearer(request))
            if token is None:
                return _apigee_fault(key, 401, "Invalid Access Token", "keymanagement.service.invalid_access_token")
            if self.state.clock() >= token.expires_at:
                return _apigee_fault(key, 401, "Access Token expired", "keymanagement.service.access_token_expired")
            app = self.state.scenario.app(token.client_id)
            if app is None or key not in app.products:
                return _apigee_fault(
                    key,
                    401,
                    "Invalid API call as no apiproduct match found",
                    "keymanagement.service.InvalidAPICallAsNoApiProductMatchFound",
                )
            return answer(request, app, region or self._path_region(request))

        return checked

    @staticmethod
    def _path_region(request: Request) -> str:
        region: str = next(v for k, v in request.path_params.items() if k.endswith("_region"))
        return region

    @staticmethod
    def _not_found(key: str, region: str) -> Response:
        return _problem(key, 404, "Not Found", f"No {PRODUCTS[key].name} data for this customer in region {region!r}.")

    def _wrong_region(self, key: str, region: str, home: str) -> Response | None:
        return None if region == home else self._not_found(key, region)

    def _analytics_refusal(self, key: str, request: Request, app: App, region: str) -> Response | None:
        """Wrong region, or an ``X-Tenant-Info`` header that is missing (multi-tenant) or wrong.

        A single-tenant app may omit the header; when sent it must name one of the tenants.
        """
        if refusal := self._wrong_region(key, region, app.analytics_region):
            return refusal
        value = request.headers.get("x-tenant-info")
        if value is None and app.multi_tenant:
            return _json({"message": "Bad request: X-Tenant-Info header is missing."}, 400)
        if value is not None and value not in app.tenants:
            return _json({"message": "Bad request: Invalid value for X-Tenant-Info header."}, 400)
        return None

    def _answer_cc_realtime_analytics(self, request: Request, app: App, region: str) -> Response:
        if refusal := self._analytics_refusal("cc_realtime_analytics", request, app, region):
            return refusal
        page, size = _int_param(request, "page", 0), _int_param(request, "size", 100)
        if page is None or page < 0:
            return _json({"message": "Bad request: Field 'page' must be a whole number >= 0"}, 400)
        if size is None or size < 1:
            return _json({"message": "Bad request: Field 'size' must be a whole number >= 1"}, 400)
        if size > REALTIME_MAX_SIZE:
            return _json(
                {"message": f"Bad request: Field 'size' must be less than or equal to {REALTIME_MAX_SIZE}"}, 400
            )
        pages = math.ceil(len(QUEUES) / size)
        if page > 0 and page >= pages:
            return _json(
                {"message": f"Bad request: Page {page} does not exist; the total number of pages is {pages}"}, 400
            )
        headers = {
            "X-Page": str(page),
            "X-Page-Size": str(size),
            "X-Total-Pages": str(pages),
            "X-Total-Elements": str(len(QUEUES)),
        }
        return _json(list(QUEUES[page * size : (page + 1) * size]), headers=headers)

    def _answer_cc_historical_analytics(self, request: Request, app: App, region: str) -> Response:
        if refusal := self._analytics_refusal("cc_historical_analytics", request, app, region):
            return refusal
        return _json(list(REPORT_TYPES), media_type="application/json;charset=UTF-8")

    def _answer_cloud_storage(self, request: Request, app: App, region: str) -> Response:
        # Any valid region answers "where is my data"; only unknown regions are 404.
        if region not in STORAGE_REGIONS:
            return self._not_found("cloud_storage", region)
        return _json(list(app.storage_regions))

    def _answer_quality_management(self, request: Request, app: App, region: str) -> Response:
        if refusal := self._wrong_region("quality_management", region, app.qm_region):
            return refusal
        pbx = request.headers.get("pbx")
        if not pbx:
            return _json({"message": "Bad request: the pbx header is missing.", "errors": []}, 400)
        if pbx not in app.pbx_names:
            return _problem(
                "quality_management",
                403,
                "The pbx does not belong to customer.",
                f"Pbx {pbx} does not belong to customer {app.customer_id}.",
            )
        return _json(QM_USER_COUNT)

    def _answer_cc_chat(self, request: Request, app: App, region: str) -> Response:
        if refusal := self._wrong_region("cc_chat", region, app.chat_region):
            return refusal
        tenant = request.path_params["tenant_id"]
        if tenant not in app.tenants:
            return _problem(
                "cc_chat",
                403,
                "The tenant does not belong to customer.",
                f"Tenant {tenant} does not belong to customer {app.customer_id}.",
            )
        page, size = _int_param(request, "page", 0), _int_param(request, "size", 20)
        if page is None or page < 0 or size is None or size < 1:
            return _json(
                {"message": "Constraint Violation", "errors": ["page must be >= 0 and size must be >= 1"]},
                400,
                media_type=PROBLEM_JSON,
            )
        hooks = [
            {
                "id": str(n),
                "name": f"{tenant} {topic}",
                "version": "v2.0",
                "uri": f"https://hooks.example.com/{tenant}/{topic}",
            }
            for n, topic in enumerate(("conversations", "transcripts"), start=1)
        ]
        return _json(
            {
                "data": hooks[page * size : (page + 1) * size],
                "page": {
                    "pageSize": size,
                    "pageIndex": page,
                    "elementCount": len(hooks),
                    "pageCount": math.ceil(len(hooks) / size),
                },
            }
        )


# --- Control API -------------------------------------------------------------------------


def _control_routes(state: SimulatorState) -> list[Route]:
    async def read_json(request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"null")
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"the request body is not JSON ({exc.msg})") from None

    def refused(exc: ScenarioError) -> Response:
        return _json({"error": str(exc)}, 400)

    async def stats(request: Request) -> Response:
        return _json(state.stats())

    async def reset(request: Request) -> Response:
        state.reset_stats()
        return _json(state.stats())

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                state.add_fault(Fault.from_dict(await read_json(request)))
            except ScenarioError as exc:
                return refused(exc)
            return _json({"faults": state.faults()}, 201)
        if request.method == "DELETE":
            state.clear_faults()
        return _json({"faults": state.faults()})

    async def knobs(request: Request) -> Response:
        if request.method == "PUT":
            try:
                return _json(state.set_knobs(**check_knobs(await read_json(request))))
            except ScenarioError as exc:
                return refused(exc)
        return _json(state.knobs())

    return [
        Route("/_sim/stats", stats, methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/knobs", knobs, methods=["GET", "PUT"]),
    ]


class SimulatorApp:
    """The simulator as an ASGI app: 8x8's routes, and the control API under ``/_sim/``.

    Its runtime state (knobs, faults, tokens, statistics) is ``state``.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.state = SimulatorState(scenario)
        self._simulated = _Simulated8x8(self.state)
        self._control = Starlette(routes=_control_routes(self.state), exception_handlers={404: _no_proxy})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CONTROL_PREFIX):
            await self._simulated(scope, receive, send)
        else:
            await self._control(scope, receive, send)


def create_app(scenario: Scenario) -> SimulatorApp:
    """An ASGI app simulating 8x8 for ``scenario``; its runtime state is ``app.state``."""
    return SimulatorApp(scenario)
