"""Opening and closing the server's data, and the one place the server reaches
``lib.web.open_server``.

The server listens before its data is open. Opening it (the database at head, the keyring
proven, the setup code announced) loads SQLAlchemy, the table models and the console's own
routes, about half a second of imports, so it runs in a thread the lifespan starts while
``lib.web.startup.OnceOpen`` holds every request but the health probes until it is done. The
module is imported in that thread, and only here: the rest of ``lib.web`` that is on
the path to a listening server never imports it.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp

from lib.kernel import collector
from lib.web.state import ServerState


class Lifecycle:
    """The server's data from the lifespan's start to its end (one per server)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._opening: asyncio.Future[None] | None = None

    def start(self, *, local_accounts: bool) -> None:
        """Open the data in a thread (call from the server's event loop); ``opened`` waits."""

        def open_data() -> None:
            with collector.paused():
                from lib.web import open_server
            open_server.open_data(self.state, local_accounts=local_accounts)

        self._opening = asyncio.ensure_future(asyncio.to_thread(open_data))

    async def opened(self) -> None:
        """Return once the data is open, or has failed to open (``state.problem`` says why)."""
        assert self._opening is not None, "the server has not started"
        await asyncio.shield(self._opening)

    def protect(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind the console's guards; call once ``opened`` has returned."""
        from lib.web import open_server  # loaded by the thread that opened the data

        return open_server.protect(app, self.state)

    async def close(self) -> None:
        if self._opening is None:
            return
        await self.opened()
        from lib.web import open_server

        await asyncio.to_thread(open_server.close_data, self.state)
