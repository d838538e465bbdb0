"""What Switchboard adds to Streamlit's own server (``st.App``): account routes, the status
API, /metrics and health probes, the sign-in gate, security headers, and start-up work. No
Streamlit script code lives here."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.middleware import Middleware

from lib.runtime import Runtime
from lib.web.account import account_routes
from lib.web.api import api_routes
from lib.web.gate import SignInGate
from lib.web.headers import SecurityHeaders
from lib.web.health import health_routes
from lib.web.hooks import StreamlitHooks
from lib.web.proxies import trust_only_configured_proxies
from lib.web.state import ServerState
from lib.web.stream import StreamGuard

WORKER_DELAY_S = 2.0  # the in-process worker starts this long after the server does


def _scheduled_checks(rt: Runtime) -> Callable[[], None]:
    """Start the worker a moment after the server, in a thread that imports it: the worker's
    8x8 client (httpx, the event loop) stays off the path to a server that answers. Returns
    the function that stops it (and waits for the batch it is storing)."""
    stop = threading.Event()
    started: list[Any] = []

    def start() -> None:
        if stop.wait(WORKER_DELAY_S):
            return
        from lib.worker import Background

        started.append(Background(rt).start())

    starter = threading.Thread(target=start, name="switchboard-worker-start", daemon=True)
    starter.start()

    def halt() -> None:
        stop.set()
        starter.join(60)
        for worker in started:
            worker.stop()

    return halt


def server_options(hooks: StreamlitHooks) -> dict[str, Any]:
    """Keyword arguments for ``st.App``. Whether OIDC is configured is asked once the server
    starts, when Streamlit has read its secrets."""
    trust_only_configured_proxies()
    state = ServerState(hooks)

    @asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        state.open(local_accounts=not hooks.oidc_configured())
        # The scheduled checks run in this process unless SWITCHBOARD_WORKER=off.
        halt = _scheduled_checks(state.runtime) if state.runtime and state.runtime.settings.worker else None
        try:
            yield None
        finally:
            if halt is not None:
                halt()
            state.close()

    return {
        "routes": [*account_routes(state), *api_routes(state), *health_routes(state)],
        "middleware": [Middleware(SecurityHeaders), Middleware(StreamGuard, state=state),
                       Middleware(SignInGate, state=state)],
        "lifespan": lifespan,
    }
