"""The synchronous face of the 8x8 client, shared by the console and the CLI.

A Prober owns one background event loop and one EightByEight client created on it; callers
in any thread submit work and receive results in their own thread (so a Streamlit script
can update a progress bar and the database is written outside the event loop).

Closing a Prober cancels the checks still running on it and wakes every caller waiting for
their results; a caller also stops waiting when no result has come for longer than any check
may take. Either way the caller gets :class:`ProberClosed`, never a hang.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any

from lib.eightbyeight.client import EightByEight
from lib.eightbyeight.loop import BackgroundLoop
from lib.eightbyeight.models import Credentials, ProbeResult, Target
from lib.errors import SwitchboardError

_DONE = object()
_HAND_OVER_S = 0.02  # results reach the caller in batches at most this much later


class _Inbox:
    """Results from the event loop to the caller's thread, a batch at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[Any] = []
        self._ready = threading.Condition()
        self._scheduled = False

    def put(self, item: Any) -> None:
        """On the loop: keep ``item``; wake the caller soon (at once for the end marker)."""
        with self._ready:
            self._items.append(item)
            if item is _DONE:
                self._ready.notify()
            elif not self._scheduled:
                self._scheduled = True
                self._loop.call_later(_HAND_OVER_S, self._wake)

    def _wake(self) -> None:
        with self._ready:
            self._scheduled = False
            self._ready.notify()

    def take(self, timeout: float) -> list[Any]:
        """In the caller's thread: what arrived so far, waiting up to ``timeout`` for anything."""
        with self._ready:
            self._ready.wait_for(lambda: self._items, timeout)
            batch, self._items = self._items, []
        return batch
_SLACK_S = 5.0  # beyond the longest a check may take, before a caller stops waiting


class ProberClosed(SwitchboardError):
    """The checks were cut short; results that arrived before are kept."""

    def __init__(self, why: str) -> None:
        super().__init__(f"The test run was cut short: {why}. Results that arrived before were "
                         "saved; run the test again.")


class Prober:
    def __init__(self, base_url: str, **client_options: Any) -> None:
        self._loop = BackgroundLoop()
        self.client: EightByEight = self._loop.run(self._make(base_url, client_options))
        self._lock = threading.Lock()
        self._running: set[Future[Any]] = set()
        self._closed = False
        # The longest wait between two results of a run: a token step and a product step, each
        # under the per-check deadline.
        self.quiet_limit_s = 2 * self.client.deadline_s + _SLACK_S

    @staticmethod
    async def _make(base_url: str, options: dict[str, Any]) -> EightByEight:
        return EightByEight(base_url, **options)

    @property
    def closed(self) -> bool:
        return self._closed

    def _submit(self, coro: Any) -> Future[Any]:
        with self._lock:
            if self._closed:
                coro.close()
                raise ProberClosed("the server is shutting its 8x8 client down")
            future = self._loop.submit(coro)
            self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    def ask_token(self, credentials: Credentials) -> ProbeResult:
        """Ask 8x8 for a token with these credentials (verify before save)."""
        future = self._submit(self.client.ask_token(credentials))
        try:
            return future.result(self.quiet_limit_s)
        except (CancelledError, TimeoutError):
            future.cancel()
            raise ProberClosed("8x8 did not answer in time, or the server is shutting down") from None

    def check(self, targets: Sequence[Target], on_result: Callable[[Target, ProbeResult], None]) -> None:
        """Check every target concurrently; ``on_result`` runs in the calling thread, once per
        result, as results arrive (handed over in small batches: waking the caller for every
        single result cost more CPU than the result itself)."""
        inbox = _Inbox(self._loop.loop)

        async def run_all() -> None:
            async def one(target: Target) -> None:
                async for result in self.client.check(target):
                    inbox.put((target, result))

            try:
                await asyncio.gather(*(one(t) for t in targets))
            finally:  # also when cancelled: the caller is never left waiting
                inbox.put(_DONE)

        future = self._submit(run_all())
        while True:
            batch = inbox.take(self.quiet_limit_s)
            if not batch:
                future.cancel()
                raise ProberClosed(f"no result came for {self.quiet_limit_s:g} s") from None
            for item in batch:
                if item is _DONE:
                    break
                on_result(*item)
            else:
                continue
            break
        try:
            future.result()
        except CancelledError:
            raise ProberClosed("the server is shutting its 8x8 client down") from None

    def close(self) -> None:
        """Cancel what still runs (its callers are woken), close the HTTP client, stop the loop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = list(self._running)
        for future in running:
            future.cancel()

        async def shutdown() -> None:
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*pending, return_exceptions=True)
            await self.client.aclose()

        self._loop.run(shutdown(), timeout=self.quiet_limit_s)
        self._loop.close()
