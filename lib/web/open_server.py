"""The server once its data is open: the runtime, the in-process worker, and what guards the
console (the session cookie, the WebSocket guard, the sign-in gate, the account and API
routes) in front of Streamlit. Loaded by the thread that opens the data
(``lib.web.lifecycle``), not on the path to a server that listens."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from starlette.routing import Route
from starlette.types import ASGIApp

from lib.kernel.config import get_settings
from lib.kernel.errors import SwitchboardError
from lib.services.accounts import first_run
from lib.services.runtime import Runtime, close_shared_runtime, shared_runtime
from lib.web.account import account_routes
from lib.web.api import api_routes
from lib.web.cookie import OneSessionCookie
from lib.web.gate import SignInGate
from lib.web.routes import OwnRoutes
from lib.web.state import ServerState
from lib.web.stream import StreamGuard

log = logging.getLogger("switchboard.web")
WORKER_DELAY_S = 2.0  # the in-process worker starts this long after the data is open
UNEXPECTED = "Switchboard could not open its data because of an unexpected error; the server's log has the details."


def open_data(state: ServerState, *, local_accounts: bool) -> None:
    """Open the runtime and start the in-process worker. Never raises: when the runtime cannot
    open, ``state.problem`` says why and the server answers with it (fail closed)."""
    state.local_accounts = local_accounts
    try:
        state.settings = get_settings()
        state.runtime = shared_runtime()
        if local_accounts:
            announce_setup_code(state.runtime.engine)
    except SwitchboardError as exc:
        # The server still runs so that the browser can say what is wrong; every protected
        # path answers 503 with the reason, and page scripts stop at their guard.
        state.problem = str(exc)
        print(f"\n  Switchboard cannot start: {exc}\n", file=sys.stderr, flush=True)
        return
    except Exception:
        log.exception("Switchboard could not open its data")
        state.problem = UNEXPECTED
        return
    if state.runtime.settings.worker:  # the scheduled checks run here unless SWITCHBOARD_WORKER=off
        state.halt_worker = scheduled_checks(state.runtime)


def close_data(state: ServerState) -> None:
    """Stop the in-process worker (it finishes the batch it is storing), then the runtime."""
    if state.halt_worker is not None:
        state.halt_worker()
    close_shared_runtime()


def guarded_routes(state: ServerState) -> list[Route]:
    """Our routes behind the sign-in gate (the health probes, which answer before the data is
    open, are ``lib.web.health``'s)."""
    return [*account_routes(state), *api_routes(state)]


def protect(app: ASGIApp, state: ServerState) -> ASGIApp:
    """``app`` (Streamlit) behind the console's guards, with our own routes in front of it."""
    routes = OwnRoutes(guarded_routes(state), default=app)
    return OneSessionCookie(StreamGuard(SignInGate(routes, state=state), state=state), state=state)


def scheduled_checks(rt: Runtime) -> Callable[[], None]:
    """Start the worker a moment after the data is open, in a thread that imports it: the
    worker's 8x8 client (httpx, the event loop) stays off the path to the first pages.
    Returns the function that stops it (and waits for the batch it is storing)."""
    stop = threading.Event()
    started: list[Any] = []

    def start() -> None:
        if stop.wait(WORKER_DELAY_S):
            return
        from lib.services.checking.worker import Background

        started.append(Background(rt).start())

    starter = threading.Thread(target=start, name="switchboard-worker-start", daemon=True)
    starter.start()

    def halt() -> None:
        stop.set()
        starter.join(60)
        for worker in started:
            worker.stop()

    return halt


def announce_setup_code(engine: Engine) -> None:
    """With no users yet, print a fresh one-time setup code on the server's console (never
    into a log file: whoever reads the console runs the server)."""
    code = first_run.issue(engine)
    if code:
        print(
            f"\n  Switchboard has no users yet. Open the console and create the first admin with\n"
            f"  this one-time setup code (valid for {first_run.CODE_LIFETIME.seconds // 60} minutes): {code}\n",
            file=sys.stderr,
            flush=True,
        )
