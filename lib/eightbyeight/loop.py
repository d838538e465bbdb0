"""One long-lived asyncio event loop in a background thread, for synchronous callers.

The 8x8 client's connections (its transport's pool) belong to the loop that made them. Streamlit runs scripts in threads
without a loop and the CLI is a plain process, so both submit coroutines to this loop.

The loop is uvloop's (libuv): a bulk check spends most of its CPU in the event loop and the
HTTP machinery on it; uvloop's loop takes 5-10 % off the CPU per request (bench/bulk_check.py,
alternating runs).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self, name: str = "switchboard-prober") -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result in the calling thread."""
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
