"""At most N requests in flight: N senders take the queued requests in order, each sending the
next one as soon as it has handed over an answer.

Why not a semaphore around the send: with a fixed latency the answers come back in bursts,
and asyncio runs ready tasks first in, first out. A slot a semaphore frees wakes its next
waiter only after every answer of the burst has been handled, so the burst's next requests
all left late. A sender hands its answer over (the caller carries on later) and sends the next
request in the same step, so new requests leave while the rest of the burst waits to be
handled (bench/schedule.py: ~0.05 less of the lower bound, at the same CPU per request).

A caller that stops waiting (cancelled: the check's deadline, a closing prober) takes its
request out of the queue, or has it cut short when it is already being sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class Senders(Generic[Request, Answer]):
    """Sends through ``send`` with at most ``limit`` requests in flight. Use on one event loop."""

    def __init__(self, send: Callable[[Request], Awaitable[Answer]], limit: int) -> None:
        self._send, self._limit = send, limit
        self._queue: deque[tuple[Request, asyncio.Future[Answer]]] = deque()
        self._senders: set[asyncio.Task[None]] = set()  # they end when the queue is empty

    async def send(self, request: Request) -> Answer:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        self._queue.append((request, answer))
        if len(self._senders) < self._limit:
            # Held here (the loop keeps only weak references to tasks) until it ends, see _run.
            self._senders.add(loop.create_task(self._run()))
        return await answer  # cancelled here: the future is cancelled too, see _run

    async def _run(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        current: asyncio.Future[Answer] | None = None

        def abandoned(future: asyncio.Future[Answer]) -> None:
            if future.cancelled() and future is current:  # still the one being sent
                me.cancel()

        try:
            while self._queue:
                request, current = self._queue.popleft()
                if current.done():  # its caller stopped waiting while it was queued
                    continue
                current.add_done_callback(abandoned)
                try:
                    answer = await self._send(request)
                except asyncio.CancelledError:
                    if not current.cancelled():
                        raise  # this sender itself is being stopped
                    me.uncancel()
                    continue
                except Exception as exc:  # noqa: BLE001 - raised to the caller, who handles it
                    if not current.done():
                        current.set_exception(exc)
                else:
                    if not current.done():
                        current.set_result(answer)
                finally:
                    current.remove_done_callback(abandoned)
        finally:
            # At once, not in a done callback: a request queued meanwhile must start a sender.
            self._senders.discard(me)
            if current is not None and not current.done():  # stopped mid-send: its caller is not left waiting
                current.cancel()
