"""The synchronous face of the 8x8 client, shared by the console and the CLI.

A Prober owns one background event loop and one EightByEight client created on it; callers
in any thread submit work and receive results in their own thread (so a Streamlit script
can update a progress bar and the database is written outside the event loop).

A check may be fed while it runs (``more``): when few of its targets are still open, the loop
asks the caller's thread for more through the same inbox that carries the results, and the
caller hands what it got (claimed and decrypted there, outside the loop) back to the running
loop, where it starts at once. So a worker's batches overlap and the HTTP side never drains
between them.

Closing a Prober cancels the checks still running on it and wakes every caller waiting for
their results; a caller also stops waiting when no result has come for longer than any check
may take. Either way the caller gets :class:`ProberClosed`, never a hang.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any

from lib.catalogue import policy
from lib.eightbyeight.client import EightByEight
from lib.eightbyeight.loop import BackgroundLoop, T
from lib.eightbyeight.models import Credentials, ProbeResult, Target
from lib.kernel.errors import SwitchboardError

_DONE = object()
_MORE = object()  # the loop asks the caller for more targets
_HAND_OVER_S = 0.02  # results reach the caller in batches at most this much later


class _Inbox:
    """Results from the event loop to the caller's thread, a batch at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[Any] = []
        self._ready = threading.Condition()
        self._scheduled = False

    def put(self, item: Any) -> None:
        """On the loop: keep ``item``; wake the caller soon (at once for a marker)."""
        with self._ready:
            self._items.append(item)
            if item is _DONE or item is _MORE:
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
# A check fed by ``more`` asks for more when fewer targets than this many times the client's
# in-flight limit are still open. A target is a connection, up to six requests (token and five
# products), so what is open then is ~12 rounds of in-flight requests queued: enough to cover
# what the caller does meanwhile (a claim, the intervals, decrypting a batch's credentials:
# ~0.2-0.4 s at bench rates) while few enough are open that leases are not taken too early.
LOW_WATER_PER_IN_FLIGHT = 2

More = Callable[[], Sequence[Target]]  # the next targets; empty: no more


class _Run:
    """One check on the event loop: its targets in one TaskGroup (cancelling the run cancels
    them all), how many are still open, and the asks for more (only ever touched on the loop)."""

    def __init__(self, client: EightByEight, inbox: _Inbox, low_water: int, *, fed: bool) -> None:
        self.client, self.inbox, self.low_water, self.fed = client, inbox, low_water, fed
        self.open = 0
        self.asking = False  # a _MORE is out; not again before its answer is handed over
        self.ended = False
        self._group = asyncio.TaskGroup()
        self._no_more: asyncio.Future[None] | None = None

    async def run(self, targets: Sequence[Target]) -> None:
        self._no_more = asyncio.get_running_loop().create_future()
        try:
            async with self._group:
                self._start(targets)
                if not self.fed:
                    self._no_more.set_result(None)
                self._ask()
                await self._no_more  # refills join the group meanwhile; then it waits for them all
        finally:  # also when cancelled: the caller is never left waiting
            self.ended = True
            self.inbox.put(_DONE)

    def hand_over(self, batch: Sequence[Target]) -> None:
        """Start a refill at once (or learn there is none)."""
        if self.ended or self._no_more is None:  # cancelled meanwhile
            return
        self.asking = False
        if not batch:
            self._no_more.set_result(None)
            return
        self._start(batch)
        self._ask()

    def _start(self, batch: Sequence[Target]) -> None:
        for target in batch:
            self.open += 1
            self._group.create_task(self._one(target))

    async def _one(self, target: Target) -> None:
        try:
            async for result in self.client.check(target):
                self.inbox.put((target, result))
        finally:
            self.open -= 1
        self._ask()  # not when cancelled: a run cut short asks for nothing more

    def _ask(self) -> None:
        """Ask the caller for more when few targets are left open."""
        if self._no_more is not None and not self._no_more.done() and not self.asking and self.open < self.low_water:
            self.asking = True
            self.inbox.put(_MORE)


class ProberClosed(SwitchboardError):
    """The checks were cut short; results that arrived before are kept."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"The test run was cut short: {why}. Results that arrived before were saved; run the test again."
        )


class Prober:
    def __init__(self, base_url: str, **client_options: Any) -> None:
        self._loop = BackgroundLoop()
        try:
            self.client: EightByEight = self._loop.run(self._make(base_url, client_options))
        except BaseException:  # e.g. a ConfigError for SWITCHBOARD_8X8_TRANSPORT: no loop left running
            self._loop.close()
            raise
        self.low_water: int = LOW_WATER_PER_IN_FLIGHT * client_options.get("max_connections", policy.MAX_IN_FLIGHT)
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

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
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

    def check(
        self,
        targets: Sequence[Target],
        on_result: Callable[[Target, ProbeResult], None],
        more: More | None = None,
        ahead: int | None = None,
    ) -> None:
        """Check every target concurrently; ``on_result`` runs in the calling thread, once per
        result, as results arrive (handed over in small batches: waking the caller for every
        single result cost more CPU than the result itself).

        With ``more``, once fewer than ``ahead`` targets (default ``low_water``) are still
        open, ``more()`` is called in the calling thread (once per refill: not again before
        what it returned was handed over) and what it returns starts at once, beside what still
        runs; an empty answer means there is no more. Returns when everything handed over has
        finished."""
        inbox = _Inbox(self._loop.loop)
        run = _Run(self.client, inbox, self.low_water if ahead is None else ahead, fed=more is not None)

        def refill() -> None:
            """In the caller's thread: ask ``more``, hand its answer to the loop."""
            try:
                self._loop.loop.call_soon_threadsafe(run.hand_over, more() if more else ())
            except RuntimeError:  # the loop was closed meanwhile: its end marker is in the inbox
                pass

        future = self._submit(run.run(targets))
        try:
            self._wait(inbox, on_result, refill)
        except BaseException:  # quiet too long, or on_result/more failed: nothing runs on for nobody
            future.cancel()
            raise
        try:
            future.result()
        except CancelledError:
            raise ProberClosed("the server is shutting its 8x8 client down") from None

    def _wait(
        self, inbox: _Inbox, on_result: Callable[[Target, ProbeResult], None], refill: Callable[[], None]
    ) -> None:
        """In the caller's thread: deliver results and answer the loop's asks for more until
        the end marker comes; quiet for longer than ``quiet_limit_s``: ProberClosed."""
        while True:
            batch = inbox.take(self.quiet_limit_s)
            if not batch:
                raise ProberClosed(f"no result came for {self.quiet_limit_s:g} s") from None
            for item in batch:
                if item is _DONE:
                    return
                if item is _MORE:
                    refill()
                else:
                    on_result(*item)

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
