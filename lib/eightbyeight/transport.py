"""The prober's transport: httpcore connection pools on asyncio streams, behind httpx's
request and response models.

httpcore's pool does work proportional to (connections x waiting requests) on every state
change, so one pool of 50 connections costs ~7 ms of CPU per request on this class of
machine; pools of 5 cost least (measured with bench/bulk_check.py: 1.1 ms per request at
concurrency 50 with pools of 5, 1.4 ms with pools of 10). Requests go to the least busy pool.

Each answer is read whole before it is returned (8x8's answers to our probes are a few KiB):
that is all httpx's own transport and response streaming would add on top of httpcore, at a
tenth of a bulk check's CPU. httpcore's errors are raised as httpx's, as httpx maps them.
"""

from __future__ import annotations

import math

import httpcore
import httpx

from lib.eightbyeight.network import AsyncioBackend

POOL_SIZE = 5  # connections per shard: past this httpcore's per-request cost climbs quickly

# httpcore's error -> httpx's (the one the 8x8 client catches); looked up along the error's MRO.
_AS_HTTPX: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout, httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout, httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError, httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError, httpcore.NetworkError: httpx.NetworkError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError, httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol, httpcore.ProxyError: httpx.ProxyError,
}


def _as_httpx(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    kind = next((_AS_HTTPX[cls] for cls in type(exc).__mro__ if cls in _AS_HTTPX), httpx.TransportError)
    return kind(str(exc), request=request)


class ShardedTransport(httpx.AsyncBaseTransport):
    """Sends each request through the least busy of ``ceil(max_connections / POOL_SIZE)``
    HTTP/1.1 pools and returns the answer read whole. TLS verification is always on."""

    def __init__(self, max_connections: int, keepalive_expiry: float = 30.0) -> None:
        shards = max(1, math.ceil(max_connections / POOL_SIZE))
        per_shard = math.ceil(max_connections / shards)
        tls = httpx.create_ssl_context()  # verification on; loading the CA list once is enough
        self._pools = [httpcore.AsyncConnectionPool(
            ssl_context=tls, max_connections=per_shard, max_keepalive_connections=per_shard,
            keepalive_expiry=keepalive_expiry, network_backend=AsyncioBackend()) for _ in range(shards)]
        self._busy = [0] * shards

    @property
    def shards(self) -> int:
        return len(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._pools)), key=self._busy.__getitem__)
        url = request.url
        sent = httpcore.Request(request.method, httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                                                             target=url.raw_path),
                                headers=request.headers.raw, content=request.content, extensions=request.extensions)
        self._busy[index] += 1
        try:
            answer = await self._pools[index].handle_async_request(sent)
            try:
                body = await answer.aread()
            finally:
                await answer.aclose()
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                httpcore.UnsupportedProtocol, httpcore.ProxyError) as exc:
            raise _as_httpx(exc, request) from exc
        finally:
            self._busy[index] -= 1
        return httpx.Response(answer.status, headers=answer.headers, content=body, request=request,
                              extensions=answer.extensions)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
