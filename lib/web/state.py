"""What the server's own routes and middleware share: the runtime and the sign-in mode.

Plain data, filled in by ``lib.web.open_server.open_data`` when the data opens
(``lib.web.lifecycle``). It is on the path to a listening server, so it imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.kernel.config import Settings
from lib.web.hooks import StreamlitHooks

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from lib.services.accounts.sessions import Limits
    from lib.services.runtime import Runtime

NOT_OPEN = "The server has not opened its data yet."


@dataclass
class ServerState:
    hooks: StreamlitHooks
    local_accounts: bool = True  # False when OIDC ([auth] in secrets.toml) signs people in
    runtime: Runtime | None = None
    problem: str | None = None  # why the runtime could not open (fail closed, but say why)
    settings: Settings | None = None  # None only when the environment itself is wrong
    halt_worker: Callable[[], None] | None = None  # stops the in-process worker, when one runs

    def not_ready(self) -> str | None:
        """Why this server should get no traffic now, or None. Blocking: call in a thread."""
        if self.problem or self.runtime is None:
            return self.problem or NOT_OPEN
        from lib.services.runtime import not_ready

        return not_ready(self.runtime)

    @property
    def engine(self) -> Engine:
        assert self.runtime is not None, "the server has not opened its data"
        return self.runtime.engine

    @property
    def limits(self) -> Limits:
        assert self.runtime is not None, "the server has not opened its data"
        from lib.services.accounts.sessions import Limits

        return Limits(self.runtime.settings.session_idle, self.runtime.settings.session_lifetime)
