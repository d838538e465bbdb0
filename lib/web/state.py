"""What the server's own routes and middleware share: the runtime and the sign-in mode,
set up once when the server starts (the ASGI lifespan)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from sqlalchemy import Engine

from lib import first_run
from lib.config import Settings, get_settings
from lib.errors import SwitchboardError
from lib.redaction import configure_logging
from lib.runtime import Runtime, close_shared_runtime, shared_runtime
from lib.sessions import Limits
from lib.web.hooks import StreamlitHooks


@dataclass
class ServerState:
    hooks: StreamlitHooks
    local_accounts: bool = True  # False when OIDC ([auth] in secrets.toml) signs people in
    runtime: Runtime | None = None
    problem: str | None = None  # why the runtime could not open (fail closed, but say why)
    settings: Settings | None = None  # None only when the environment itself is wrong

    def open(self, *, local_accounts: bool) -> None:
        configure_logging()
        self.local_accounts = local_accounts
        try:
            self.settings = get_settings()
            self.runtime = shared_runtime()
        except SwitchboardError as exc:
            # The server still starts so that the browser can say what is wrong; every
            # protected path answers 503 with the reason, and page scripts stop at their guard.
            self.problem = str(exc)
            print(f"\n  Switchboard cannot start: {exc}\n", file=sys.stderr, flush=True)
            return
        if local_accounts:
            announce_setup_code(self.runtime.engine)

    def close(self) -> None:
        close_shared_runtime()

    @property
    def engine(self) -> Engine:
        assert self.runtime is not None, "the server has not started"
        return self.runtime.engine

    @property
    def limits(self) -> Limits:
        assert self.runtime is not None, "the server has not started"
        return Limits(self.runtime.settings.session_idle, self.runtime.settings.session_lifetime)


def announce_setup_code(engine: Engine) -> None:
    """With no users yet, print a fresh one-time setup code on the server's console (never
    into a log file: whoever reads the console runs the server)."""
    code = first_run.issue(engine)
    if code:
        print(f"\n  Switchboard has no users yet. Open the console and create the first admin with\n"
              f"  this one-time setup code (valid for {first_run.CODE_LIFETIME.seconds // 60} minutes): {code}\n",
              file=sys.stderr, flush=True)
