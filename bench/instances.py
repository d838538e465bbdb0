"""Benchmark: Streamlit sessions served per second by one console instance, and by two behind
nginx (deploy/nginx.conf), each session a signed-in WebSocket client rendering the Connections
page with N connections (five products each, with history).

A session opens Streamlit's socket (``/_stcore/stream``) with its own session cookie, asks for
a run of the Connections page (a ``BackMsg``) and reads ``ForwardMsg``s until the run's
``script_finished``: what a browser opening the page costs the server, without the browser.
``--concurrency`` sessions are open at once. Prints sessions per second for each set-up, how the
sessions were spread, the CPU each process used, and the ratio of two to one (goal >= 1.6x on
this 2-core machine). Not a test: nothing here asserts a time.

    .venv/bin/python -m bench.instances [--connections 1000] [--sessions 60] [--concurrency 8]

The instances share one SQLite file here (the deployment shares PostgreSQL); sessions are made
directly in the database, so no password hashing is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import websockets
from pydantic import SecretStr
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import report
from bench.bulk_check import BENCH
from bench.connections_page import seed
from lib.kernel.config import load_settings
from lib.services.accounts import sessions, users
from lib.services.guard.access import Principal, Role
from lib.services.runtime import open_runtime
from tests.fixtures.nginx import nginx_binary, start_nginx
from tests.fixtures.server import PASSWORD, Server, start_server

PAGE = "connections"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process and its running children (nginx's workers) used so far."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for each in (pid, *map(int, children)):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(value) for value in fields[11:13]) / TICKS  # utime, stime
    return total


async def one_session(url: str, token: str) -> None:
    """Open the socket signed in, run the page, read until the run has finished."""
    stream = url.replace("http://", "ws://") + "/_stcore/stream"
    async with websockets.connect(
        stream,
        subprotocols=[websockets.Subprotocol("streamlit")],
        max_size=None,
        additional_headers={"Origin": url, "Cookie": f"{sessions.COOKIE_NAME}={token}"},
        open_timeout=60,
    ) as socket:
        ask = BackMsg()
        ask.rerun_script.query_string = ""
        ask.rerun_script.page_name = PAGE
        await socket.send(ask.SerializeToString())
        elements = 0
        while True:
            message = ForwardMsg()
            message.ParseFromString(await socket.recv())
            kind = message.WhichOneof("type")
            elements += kind == "delta" and message.delta.WhichOneof("type") == "new_element"
            if kind == "script_finished":
                if message.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY or elements < 10:
                    raise SystemExit(f"the page did not run to its end ({elements} elements drawn)")
                return


async def serve_all(url: str, tokens: list[str], concurrency: int) -> float:
    """Seconds for every token's session, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def limited(token: str) -> None:
        async with gate:
            await one_session(url, token)

    start = time.perf_counter()
    await asyncio.gather(*(limited(token) for token in tokens))
    return time.perf_counter() - start


@dataclass
class Measured:
    seconds: float
    sessions: int
    cpu: dict[str, float]  # CPU seconds per process during the run

    @property
    def per_second(self) -> float:
        return self.sessions / self.seconds

    @property
    def cores_busy(self) -> float:
        """Cores kept busy on average by the processes measured (this client included)."""
        return sum(self.cpu.values()) / self.seconds


def measure(url: str, tokens: list[str], concurrency: int, processes: dict[str, int]) -> Measured:
    before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    own = time.process_time()
    seconds = asyncio.run(serve_all(url, tokens, concurrency))
    used = {name: cpu_seconds(pid) - before[name] for name, pid in processes.items()}
    used["this client"] = time.process_time() - own
    return Measured(seconds, len(tokens), used)


def describe(label: str, measured: Measured) -> None:
    cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in measured.cpu.items())
    print(
        f"{label}: {measured.per_second:.1f} sessions/s in {measured.seconds:.1f} s; CPU used: {cpu} "
        f"({measured.cores_busy:.2f} cores busy on average)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=60, help="sessions per set-up")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("bench.instances needs nginx (apt-get install nginx)")

    with tempfile.TemporaryDirectory(prefix="switchboard-instances-bench-") as tmp:
        database_url, keyring = f"sqlite:///{tmp}/data/sb.db", Path(tmp) / "keys" / "keyring.json"
        seed(database_url, keyring, args.connections)
        rt = open_runtime(
            load_settings({"SWITCHBOARD_DATABASE_URL": database_url, "SWITCHBOARD_KEYRING_FILE": str(keyring)})
        )
        users.add(rt.engine, "ada", SecretStr(PASSWORD), "admin", actor=BENCH, own_password=True)
        ada = Principal("ada", Role.ADMIN, "127.0.0.1", "local")

        def signed_in(n: int) -> list[str]:
            tokens = [sessions.new_token() for _ in range(n)]
            for token in tokens:
                sessions.start(rt.engine, sessions.Key.of(token), ada)
            return tokens

        env = {
            "SWITCHBOARD_DATABASE_URL": database_url,
            "SWITCHBOARD_KEYRING_FILE": str(keyring),
            "SWITCHBOARD_TRUSTED_PROXIES": "127.0.0.1",
        }
        servers: list[Server] = []
        proxy = None
        try:
            servers.append(start_server(env, "http://127.0.0.1:9"))
            first = servers[0]
            asyncio.run(serve_all(first.url, signed_in(2), 1))  # imports, caches: what a running server has
            one = measure(first.url, signed_in(args.sessions), args.concurrency, {"instance A": first.process.pid})
            describe(f"one instance, {args.sessions} sessions, {args.concurrency} at a time", one)

            servers.append(start_server(env, "http://127.0.0.1:9"))
            second = servers[1]
            asyncio.run(serve_all(second.url, signed_in(2), 1))
            proxy = start_nginx(binary, [int(s.url.rsplit(":", 1)[1]) for s in servers])
            two = measure(
                proxy.url,
                signed_in(args.sessions),
                args.concurrency,
                {"instance A": first.process.pid, "instance B": second.process.pid, "nginx": proxy.process.pid},
            )
            describe(f"two instances behind nginx, {args.sessions} sessions, {args.concurrency} at a time", two)
            spread = Counter(proxy.served_by("/_stcore/stream"))
            print(
                "sessions per instance behind nginx (sticky by session cookie): "
                + ", ".join(f"{upstream} {n}" for upstream, n in sorted(spread.items())),
                flush=True,
            )
        finally:
            if proxy is not None:
                proxy.stop()
            for server in servers:
                server.stop()
            rt.engine.dispose()
    fair = max(spread.values()) / (args.sessions / 2)  # the instance with more sessions sets the pace
    print(
        f"what limits it: one instance is one Python process (Streamlit runs every session's script under "
        f"one GIL), so it kept {one.cores_busy:.2f} cores busy; two kept {two.cores_busy:.2f} of the "
        f"{os.cpu_count()} cores this machine shares with nginx, this client and whatever else runs here "
        f"(load average {os.getloadavg()[0]:.1f}); the sticky hash gave the busier instance {fair:.2f}x its "
        f"even share, which caps the ratio at {2 / fair:.2f}x",
        flush=True,
    )
    report.line(
        "sessions served per second, two instances behind nginx / one instance",
        two.per_second / one.per_second,
        "x",
        ">= 1.6x",
        report.at_least(1.6),
    )


if __name__ == "__main__":
    main()
