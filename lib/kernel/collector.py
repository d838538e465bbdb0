"""Python's cycle collector, set up for Switchboard's long-running work: the server, a worker,
a command that checks many connections.

A full collection walks every object in the process and holds the GIL while it does: about
0.2 s in a worker checking thousands of connections, during which the prober's event loop
reads no answer and the answers in flight pile up, so that each then waits for the others to
be handled. Measured with bench/schedule.py at 2,000 connections, one tick went from 1.44x its
lower bound to 1.28x with what :func:`settle` does. Young collections, which free the event
loop's short-lived cycles, run as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FULL_EVERY = 100  # young-generation collections between full ones (Python's default: 10)


def settle() -> None:
    """Freeze what the process holds now (modules, settings, what it loaded to start: it lives
    as long as the process, so no collection needs to walk it again) and make full
    collections a tenth as frequent. Call once the process has loaded what it runs on."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)


@contextmanager
def paused() -> Iterator[None]:
    """No collection during a burst of imports (each full one would walk everything loaded
    before: 0.1 s of the 0.6 s the server's opening imports take here), then :func:`settle`."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        settle()
        if was_enabled:
            gc.enable()
