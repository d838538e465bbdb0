"""The whole time one delivery attempt may take, whatever the receiver does.

Socket timeouts bound each connect, read and write, and a read's timeout starts again with
every byte that arrives. A receiver that trickles its answer a byte at a time therefore held
an attempt for hours: past the delivery lease (lib.services.alerts.delivery), so another worker took
the row back and sent the event a second time, and every alert behind it waited. A
:class:`Deadline` shuts the attempt's connections when its time is up, stops waiting for a
name lookup then, and shares what is left among the addresses still to try, so one that drops
packets leaves time for the next.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Self, TypeVar

T = TypeVar("T")


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False  # the time ran out while the attempt was under way
        self._ends = time.monotonic() + seconds
        self._held: list[socket.socket] = []
        self._over = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Self:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:  # a timer already firing finds the attempt over, and leaves it be
            self._over = True
            for held in self._held:
                held.close()
            self._held.clear()

    def share(self, timeout: float | None, ways: int = 1) -> float:
        """The time one blocking step (a connect) may take: ``timeout``, cut to an equal share
        of the time left among ``ways`` steps still to come. An address that drops packets
        does not use up the time of the next one."""
        left = max((self._ends - time.monotonic()) / ways, 0.001)
        return left if timeout is None else min(timeout, left)

    def call(self, work: Callable[[], T]) -> T:
        """``work()``, waited for at most the time left (then TimeoutError), for a step the
        timer cannot cut short: a name lookup. Its thread is left to end on its own."""
        outcome: list[tuple[bool, Any]] = []
        finished = threading.Event()

        def run() -> None:
            try:
                outcome.append((True, work()))
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                outcome.append((False, exc))
            finally:
                finished.set()

        threading.Thread(target=run, name="deadline-call", daemon=True).start()
        if not finished.wait(max(self._ends - time.monotonic(), 0.0)):
            raise TimeoutError("the time for the attempt ran out")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def watch(self, connection: socket.socket) -> None:
        """Shut ``connection`` down when the time is up. A duplicate of its descriptor is held
        until the attempt ends: shutting that down ends the connection for the thread reading
        it, and holding it keeps the number from going to another socket meanwhile. Closes
        ``connection`` and raises OSError when it cannot be watched (no descriptor left)."""
        with self._lock:
            try:
                held = connection.dup()
            except OSError:
                connection.close()
                raise
            self._held.append(held)
            if self.expired:
                _shut(held)

    def _expire(self) -> None:
        with self._lock:
            if self._over:
                return
            self.expired = True
            for held in self._held:
                _shut(held)


def _shut(connection: socket.socket) -> None:
    with suppress(OSError):  # the receiver may have closed it already
        connection.shutdown(socket.SHUT_RDWR)
