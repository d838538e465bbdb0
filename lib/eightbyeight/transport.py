"""An httpx transport that spreads requests over several small connection pools.

httpcore's pool does work proportional to (connections x waiting requests) on every state
change, so one pool of 50 connections costs ~7 ms of CPU per request on this class of
machine; pools of 5 cost least (measured with bench/bulk_check.py: 1.1 ms per request at
concurrency 50 with pools of 5, 1.4 ms with pools of 10). The 8x8 client sends every request
through one shared instance (TLS verification on, timeouts on each request, no redirects);
each pool runs on the asyncio network backend of lib.eightbyeight.network instead of anyio's.
"""

from __future__ import annotations

import math
import ssl

import httpcore
import httpx

from lib.eightbyeight.network import AsyncioBackend

POOL_SIZE = 5  # connections per shard: past this httpcore's per-request cost climbs quickly


def _on_asyncio(transport: httpx.AsyncHTTPTransport, tls: ssl.SSLContext,
                limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx offers no way to choose its pool's network backend: give the transport the pool it
    would have built (HTTP/1.1, same TLS context and limits) on ours. tests/test_prober.py
    checks that the swap still takes after an httpx upgrade."""
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls, max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend())
    return transport


class ShardedTransport(httpx.AsyncBaseTransport):
    """Sends each request through the least busy of ``ceil(max_connections / POOL_SIZE)``
    pools. TLS verification is always on."""

    def __init__(self, max_connections: int, keepalive_expiry: float = 30.0) -> None:
        shards = max(1, math.ceil(max_connections / POOL_SIZE))
        per_shard = math.ceil(max_connections / shards)
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard,
                              keepalive_expiry=keepalive_expiry)
        tls = httpx.create_ssl_context()  # verification on; loading the CA list once is enough
        self._pools = [_on_asyncio(httpx.AsyncHTTPTransport(verify=tls, limits=limits), tls, limits)
                       for _ in range(shards)]
        self._busy = [0] * shards

    @property
    def shards(self) -> int:
        return len(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            return await self._pools[index].handle_async_request(request)
        finally:
            self._busy[index] -= 1

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
