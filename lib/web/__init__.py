"""What Switchboard adds to Streamlit's own server (``st.App``): account routes, the status
API, /metrics and health probes, the sign-in gate, security headers, and start-up work. No
Streamlit script code lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.middleware import Middleware

from lib.web.account import account_routes
from lib.web.api import api_routes
from lib.web.gate import SignInGate
from lib.web.headers import SecurityHeaders
from lib.web.health import health_routes
from lib.web.hooks import StreamlitHooks
from lib.web.proxies import trust_only_configured_proxies
from lib.web.state import ServerState
from lib.web.stream import StreamGuard
from lib.worker import Background


def server_options(hooks: StreamlitHooks) -> dict[str, Any]:
    """Keyword arguments for ``st.App``. Whether OIDC is configured is asked once the server
    starts, when Streamlit has read its secrets."""
    trust_only_configured_proxies()
    state = ServerState(hooks)

    @asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        state.open(local_accounts=not hooks.oidc_configured())
        # The scheduled checks run in this process unless SWITCHBOARD_WORKER=off.
        scheduled = Background(state.runtime).start() if state.runtime and state.runtime.settings.worker else None
        try:
            yield None
        finally:
            if scheduled is not None:
                scheduled.stop()
            state.close()

    return {
        "routes": [*account_routes(state), *api_routes(state), *health_routes(state)],
        "middleware": [Middleware(SecurityHeaders), Middleware(StreamGuard, state=state),
                       Middleware(SignInGate, state=state)],
        "lifespan": lifespan,
    }
