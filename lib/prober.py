"""The synchronous face of the 8x8 client, shared by the console and the CLI.

A Prober owns one background event loop and one EightByEight client created on it; callers
in any thread submit work and receive results in their own thread (so a Streamlit script
can update a progress bar and the database is written outside the event loop).
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable, Sequence
from typing import Any

from lib.aio import BackgroundLoop
from lib.connections import Credentials
from lib.eightbyeight import EightByEight, ProbeResult, Target

_DONE = object()


class Prober:
    def __init__(self, base_url: str, **client_options: Any) -> None:
        self._loop = BackgroundLoop()
        self.client: EightByEight = self._loop.run(self._make(base_url, client_options))

    @staticmethod
    async def _make(base_url: str, options: dict[str, Any]) -> EightByEight:
        return EightByEight(base_url, **options)

    def verify(self, credentials: Credentials) -> ProbeResult:
        """Ask 8x8 for a token with these credentials (verify before save)."""
        return self._loop.run(self.client.verify(credentials))

    def check(self, targets: Sequence[Target], on_result: Callable[[Target, ProbeResult], None]) -> None:
        """Check every target concurrently; ``on_result`` runs in the calling thread, once per
        result, as results arrive."""
        results: queue.Queue[Any] = queue.Queue()

        async def run_all() -> None:
            async def one(target: Target) -> None:
                async for result in self.client.check(target):
                    results.put((target, result))

            try:
                await asyncio.gather(*(one(t) for t in targets))
            finally:
                results.put(_DONE)

        future = self._loop.submit(run_all())
        while (item := results.get()) is not _DONE:
            on_result(*item)
        future.result()

    def close(self) -> None:
        self._loop.run(self.client.aclose())
        self._loop.close()
