"""The whole time one delivery attempt may take, whatever the receiver does.

Socket timeouts bound each connect, read and write, and a read's timeout starts again with
every byte that arrives. A receiver that trickles its answer a byte at a time therefore held
an attempt for hours: past the delivery lease (lib.alerts.delivery), so another worker took
the row back and sent the event a second time, and every alert behind it waited. A
:class:`Deadline` shuts the attempt's connections when its time is up.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress
from typing import Self


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._ends = time.monotonic() + seconds
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Self:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for held in self._held:
                held.close()
            self._held.clear()

    def bound(self, timeout: float | None) -> float:
        """``timeout`` for one blocking step (a connect), cut to the time left."""
        left = max(self._ends - time.monotonic(), 0.001)
        return left if timeout is None else min(timeout, left)

    def watch(self, connection: socket.socket) -> None:
        """Shut ``connection`` down when the time is up. A duplicate of its descriptor is held
        until the attempt ends: shutting that down ends the connection for the thread reading
        it, and holding it keeps the number from going to another socket meanwhile."""
        with self._lock:
            held = connection.dup()
            self._held.append(held)
            if self.expired:
                _shut(held)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for held in self._held:
                _shut(held)


def _shut(connection: socket.socket) -> None:
    with suppress(OSError):  # the receiver may have closed it already
        connection.shutdown(socket.SHUT_RDWR)
