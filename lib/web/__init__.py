"""What Switchboard adds to Streamlit's own server (``st.App``): account routes, the status
API, /metrics and health probes, the sign-in gate, security headers, and start-up work. No
Streamlit script code lives here.

The server listens before its data is open (``lib.web.lifecycle``): this package's import, on
the path from ``streamlit run serve.py`` to a listening server, loads only the health probes
and the middleware that holds other requests until the data is open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.middleware import Middleware

from lib.kernel.redaction import configure_logging
from lib.web.headers import SecurityHeaders
from lib.web.health import health_routes
from lib.web.hooks import StreamlitHooks
from lib.web.lifecycle import Lifecycle
from lib.web.proxies import trust_only_configured_proxies
from lib.web.startup import OnceOpen
from lib.web.state import ServerState


def server_options(hooks: StreamlitHooks) -> dict[str, Any]:
    """Keyword arguments for ``st.App``. Whether OIDC is configured is asked once the server
    starts, when Streamlit has read its secrets."""
    trust_only_configured_proxies()
    state = ServerState(hooks)
    data = Lifecycle(state)

    @asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        configure_logging()
        data.start(local_accounts=not hooks.oidc_configured())
        try:
            yield None
        finally:
            await data.close()

    return {
        "routes": health_routes(state),
        "middleware": [Middleware(SecurityHeaders), Middleware(OnceOpen, opened=data.opened, protect=data.protect)],
        "lifespan": lifespan,
    }
