"""The prober's sockets run on lib.eightbyeight.network (asyncio streams, not anyio): the swap
takes after an httpx upgrade, and a kept-alive connection the server closed is not reused."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from lib.eightbyeight.loop import BackgroundLoop
from lib.eightbyeight.network import AsyncioBackend
from lib.eightbyeight.transport import ShardedTransport

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


def test_every_pool_of_the_transport_runs_on_the_asyncio_backend() -> None:
    transport = ShardedTransport(max_connections=12)
    assert transport.shards == 3
    # httpcore keeps its backend private; this reaches in to prove the pools still run on ours.
    assert all(isinstance(pool._network_backend, AsyncioBackend) for pool in transport._pools)


@pytest.fixture
def closes_after_each_answer() -> Iterator[tuple[str, list[int]]]:
    """A server that promises keep-alive, answers once per connection and hangs up: (url,
    connections accepted so far)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                accepted.append(1)
                conn.recv(65536)
                conn.sendall(ANSWER)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/", accepted
    listener.close()


def test_a_connection_the_server_closed_is_not_reused(closes_after_each_answer: tuple[str, list[int]]) -> None:
    url, accepted = closes_after_each_answer

    async def twice() -> list[int]:
        async with httpx.AsyncClient(transport=ShardedTransport(max_connections=1)) as client:
            first = await client.get(url)
            await asyncio.sleep(0.2)  # the server's close reaches us while the connection is idle
            second = await client.get(url)
        return [first.status_code, second.status_code]

    loop = BackgroundLoop()  # as the prober runs it (and the browser tests keep a loop in this thread)
    try:
        assert loop.run(twice(), timeout=30) == [200, 200]
    finally:
        loop.close()
    assert len(accepted) == 2  # the second request opened a new connection instead of failing on the old
