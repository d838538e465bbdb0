"""Running the simulator: in a background thread (tests, benchmarks) or blocking (the CLI).

Both run uvicorn with one worker on a loopback address only: the simulator hands out tokens
for made-up credentials and must never be reachable from another machine.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import uvicorn

from lib.kernel.config import is_loopback
from lib.kernel.errors import ConfigError
from lib.kernel.words import count
from lib.simulator.app import SimulatorApp, SimulatorState, create_app
from lib.simulator.scenario import Scenario, load_scenario

SAMPLE_SCENARIO = Path(__file__).with_name("sample_scenario.json")
DEFAULT_PORT = 8088


def require_loopback(host: str) -> None:
    """Refuse any host that is not ``localhost`` or a loopback IP literal."""
    if not is_loopback(host):
        raise ConfigError(
            f"The 8x8 simulator only listens on a loopback address such as 127.0.0.1 or ::1, "
            f"not {host!r}: it accepts made-up credentials and must stay on this machine."
        )


def _config(app: SimulatorApp, host: str, port: int, tls: TLSFiles | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=tls.certfile if tls else None,
        ssl_keyfile=tls.keyfile if tls else None,
        http="httptools",
        lifespan="off",
        proxy_headers=False,  # no proxy in front: X-Forwarded-* headers are not looked at
        log_level="warning",
        access_log=False,
        log_config=None,  # leave the process's logging configuration alone
        # The benchmark opens 200 connections x 5 products at once; keep them all queued.
        backlog=4096,
        limit_concurrency=None,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,  # then in-flight requests (e.g. long delays) are cancelled
    )


@dataclass(frozen=True)
class TLSFiles:
    """A certificate chain and its key (PEM files), to serve the simulator over https."""

    certfile: str
    keyfile: str


class SimulatorServer:
    """The simulator on a free port in a background thread; use as a context manager.

    ``port=0`` picks a free port; ``url`` is valid once :meth:`start` returns. The socket is
    bound here, before uvicorn starts, so the port is known without parsing logs.
    """

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0, tls: TLSFiles | None = None) -> None:
        require_loopback(host)
        self.scenario = scenario
        self.host = host
        self.port = port
        self.tls = tls
        self.app = create_app(scenario)
        self.state: SimulatorState = self.app.state
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("The simulator is not running; call start() first.")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("The simulator is already running.")
        family, kind, proto, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        self.state.stopping = False
        self._server = uvicorn.Server(_config(self.app, self.host, self.port, self.tls))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"8x8-simulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The 8x8 simulator did not start on {self.host}:{self.port}.")
            time.sleep(0.005)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and wait for the thread; safe to call twice."""
        if self._thread is None or self._server is None:
            return
        self.state.stopping = True
        self._server.should_exit = True
        self._thread.join(timeout_s)
        alive = self._thread.is_alive()
        if self._socket is not None:
            self._socket.close()
        self._thread, self._server, self._socket = None, None, None
        if alive:
            raise RuntimeError("The 8x8 simulator thread did not stop in time.")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, scenario_path: str | Path | None = None) -> None:
    """Serve until interrupted (Ctrl+C); without a scenario file, use the sample scenario."""
    require_loopback(host)
    path = Path(scenario_path) if scenario_path is not None else SAMPLE_SCENARIO
    scenario = load_scenario(path)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"8x8 simulator: http://{shown}:{port} serving {count(len(scenario.apps), 'app')} "
        f"from {path}. Press Ctrl+C to stop.",
        flush=True,
    )
    uvicorn.Server(_config(create_app(scenario), host, port)).run()
