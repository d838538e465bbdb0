"""httpcore's sockets on plain asyncio streams.

httpcore reaches the network through a backend; on asyncio its default is anyio's, which wraps
every read, write and timeout in a cancel scope and rebuilds a table of socket attributes each
time httpcore asks whether an idle connection is still usable. In a bulk check that layer was a
sixth of the prober's CPU (py-spy on bench/bulk_check.py). This backend does the same job with
asyncio's own StreamReader/StreamWriter and ``asyncio.timeout``, and raises the httpcore errors
httpx expects, so timeouts, TLS failures and refused connections read exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore

READ_LIMIT = 2**16  # StreamReader's buffer: 8x8's answers to our probes are a few KiB

_ErrorTable = dict[type[BaseException], type[Exception]]
_READ: _ErrorTable = {TimeoutError: httpcore.ReadTimeout, OSError: httpcore.ReadError}
_WRITE: _ErrorTable = {TimeoutError: httpcore.WriteTimeout, OSError: httpcore.WriteError}
_CONNECT: _ErrorTable = {TimeoutError: httpcore.ConnectTimeout, OSError: httpcore.ConnectError}


@contextlib.contextmanager
def _as_httpcore(table: _ErrorTable) -> Iterator[None]:
    """Re-raise socket errors (ssl.SSLError is an OSError) as the httpcore error httpx maps."""
    try:
        yield
    except tuple(table) as exc:
        raise next(ours for kind, ours in table.items() if isinstance(exc, kind))(exc) from exc


def _socket_readable(sock: Any) -> bool:
    """An idle connection whose socket has something to read was closed (or spoken to) by the
    server: httpcore must not reuse it. No socket at all counts as readable (unusable)."""
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _as_httpcore(_READ):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _as_httpcore(_WRITE):
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            with _as_httpcore(_CONNECT):
                async with asyncio.timeout(timeout):
                    await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except BaseException:
            await self.aclose()
            raise
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self._reader.at_eof() or _socket_readable(self._writer.get_extra_info("socket"))
        name = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
                "socket": "socket"}.get(info)
        return self._writer.get_extra_info(name) if name else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP for httpcore's connection pool (no Unix sockets: 8x8 is reached over TCP only)."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        with _as_httpcore(_CONNECT):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None, limit=READ_LIMIT)
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
