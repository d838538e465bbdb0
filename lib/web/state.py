"""What the server's own routes and middleware share: the runtime and the sign-in mode.

The server listens before its data is open. Opening it (``lib.web.console``: the database at
head, the keyring proven, the setup code announced) loads SQLAlchemy, the table models and
the console's own routes, about half a second of imports, so it runs in a thread the
lifespan starts while ``lib.web.startup`` holds every request but the health probes until it
is done. This module therefore imports nothing heavy; it reaches ``lib.web.console`` only
once the opening thread has loaded it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lib import collector
from lib.config import Settings
from lib.web.hooks import StreamlitHooks

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from lib.runtime import Runtime
    from lib.sessions import Limits

NOT_OPEN = "The server has not opened its data yet."


@dataclass
class ServerState:
    hooks: StreamlitHooks
    local_accounts: bool = True  # False when OIDC ([auth] in secrets.toml) signs people in
    runtime: Runtime | None = None
    problem: str | None = None  # why the runtime could not open (fail closed, but say why)
    settings: Settings | None = None  # None only when the environment itself is wrong
    halt_worker: Callable[[], None] | None = None  # stops the in-process worker, when one runs
    _opening: asyncio.Future[None] | None = field(default=None, repr=False)

    def start_opening(self, *, local_accounts: bool) -> None:
        """Open the data in a thread (call from the server's event loop); ``opened`` waits."""
        def open_data() -> None:
            with collector.paused():
                from lib.web import console
            console.open_data(self, local_accounts=local_accounts)

        self._opening = asyncio.ensure_future(asyncio.to_thread(open_data))

    async def opened(self) -> None:
        """Return once the data is open, or has failed to open (``problem`` then says why)."""
        assert self._opening is not None, "the server has not started"
        await asyncio.shield(self._opening)

    async def close(self) -> None:
        if self._opening is None:
            return
        await self.opened()
        from lib.web import console

        await asyncio.to_thread(console.close_data, self)

    def not_ready(self) -> str | None:
        """Why this server should get no traffic now, or None. Blocking: call in a thread."""
        if self.problem or self.runtime is None:
            return self.problem or NOT_OPEN
        from lib.runtime import not_ready

        return not_ready(self.runtime)

    @property
    def engine(self) -> Engine:
        assert self.runtime is not None, "the server has not opened its data"
        return self.runtime.engine

    @property
    def limits(self) -> Limits:
        assert self.runtime is not None, "the server has not opened its data"
        from lib.sessions import Limits

        return Limits(self.runtime.settings.session_idle, self.runtime.settings.session_lifetime)

