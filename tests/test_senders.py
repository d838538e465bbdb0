"""lib.eightbyeight.senders: the limit on requests in flight, the order they leave in, and
callers that stop waiting. ``send`` stands in for the transport (an event per request says
when its answer comes); the client over the real simulator is in test_prober and test_checks."""

from __future__ import annotations

import asyncio

import pytest

from lib.eightbyeight.senders import Senders
from tests.fixtures.simulator import run_in_new_loop


class Wire:
    """A transport whose answers arrive when a test says so; it logs what happens, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.arrive: dict[str, asyncio.Event] = {}
        self.in_flight = self.most_in_flight = 0

    async def send(self, request: str) -> str:
        self.log.append(f"sent {request}")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.arrive.setdefault(request, asyncio.Event()).wait()
        except asyncio.CancelledError:
            self.log.append(f"cut {request}")
            raise
        finally:
            self.in_flight -= 1
        if request.startswith("bad"):
            raise ConnectionError(f"{request} failed")
        return f"answer {request}"

    def answer(self, *requests: str) -> None:
        for request in requests:
            self.arrive.setdefault(request, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_the_next_request_leaves_before_the_burst_of_answers_is_handled() -> None:
    """Two answers arriving together: each sender sends the next queued request before either
    caller handles its answer (behind a semaphore, both callers ran first)."""

    async def main() -> list[str]:
        wire = Wire()
        senders: Senders[str, str] = Senders(wire.send, 2)

        async def caller(request: str) -> None:
            answer = await senders.send(request)
            wire.log.append(f"handled {answer}")

        tasks = [asyncio.create_task(caller(r)) for r in ("r1", "r2", "r3", "r4")]
        await settle()
        wire.answer("r1", "r2")
        await settle()
        wire.answer("r3", "r4")
        await asyncio.gather(*tasks)
        assert wire.most_in_flight == 2
        return wire.log

    log = run_in_new_loop(main())
    assert log[:2] == ["sent r1", "sent r2"]
    assert log.index("sent r3") < log.index("handled answer r1")
    assert log.index("sent r4") < log.index("handled answer r2")
    assert sorted(log) == sorted([*(f"sent r{n}" for n in range(1, 5)), *(f"handled answer r{n}" for n in range(1, 5))])


def test_at_most_limit_in_flight_and_every_request_answered() -> None:
    async def main() -> None:
        wire = Wire()
        senders: Senders[str, str] = Senders(wire.send, 3)
        requests = [f"r{n}" for n in range(20)]
        callers = asyncio.gather(*(senders.send(r) for r in requests))
        await settle()
        assert wire.in_flight == 3
        wire.answer(*requests)
        assert await callers == [f"answer {r}" for r in requests]
        assert wire.most_in_flight == 3
        assert wire.log == [f"sent {r}" for r in requests]  # in the order they were queued

    run_in_new_loop(main())


def test_a_failed_send_reaches_its_caller_and_the_rest_are_still_sent() -> None:
    async def main() -> None:
        wire = Wire()
        senders: Senders[str, str] = Senders(wire.send, 1)
        wire.answer("bad1", "r2")
        results = await asyncio.gather(senders.send("bad1"), senders.send("r2"), return_exceptions=True)
        assert isinstance(results[0], ConnectionError) and results[1] == "answer r2"

    run_in_new_loop(main())


def test_a_caller_that_stops_waiting_is_dropped_from_the_queue_or_cut_short() -> None:
    async def main() -> None:
        wire = Wire()
        senders: Senders[str, str] = Senders(wire.send, 1)
        sending = asyncio.create_task(senders.send("r1"))
        queued = asyncio.create_task(senders.send("r2"))
        last = asyncio.create_task(senders.send("r3"))
        await settle()
        queued.cancel()  # still queued: never sent
        sending.cancel()  # being sent: cut short, and the sender goes on
        await settle()
        assert wire.log == ["sent r1", "cut r1", "sent r3"]
        wire.answer("r3")
        assert await last == "answer r3"
        for task in (sending, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert wire.in_flight == 0

    run_in_new_loop(main())


def test_a_sender_stopped_mid_send_leaves_no_caller_waiting() -> None:
    async def main() -> None:
        wire = Wire()
        senders: Senders[str, str] = Senders(wire.send, 1)
        caller = asyncio.create_task(senders.send("r1"))
        await settle()
        sender = next(t for t in asyncio.all_tasks() if t not in (caller, asyncio.current_task()))
        sender.cancel()  # e.g. the loop shutting down
        with pytest.raises(asyncio.CancelledError):
            await caller

    run_in_new_loop(main())


def test_requests_sent_one_after_another_are_all_answered() -> None:
    async def main() -> None:
        wire = Wire()
        senders: Senders[str, str] = Senders(wire.send, 1)
        wire.answer("r1", "r2")
        assert await senders.send("r1") == "answer r1"  # its sender ended with the queue empty
        assert await asyncio.wait_for(senders.send("r2"), 5) == "answer r2"

    run_in_new_loop(main())
