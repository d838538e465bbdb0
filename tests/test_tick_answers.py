"""Issue 21, "prove the class", at the level of a scheduled tick: whatever one connection's
8x8 answers are (tests/test_prober_answers.py's generated answers over real sockets), the tick
completes, every due slot of every connection gets exactly one stored result of the catalogue,
the other connection's results are what its own answers said, and the alerts queued meanwhile
are delivered. A real worker, a real SQLite file, a real webhook receiver.

The steady connection's 404s must read as ``not_found`` however loaded the machine is, so this
tick's prober waits far longer than tests/test_prober_answers.py's (a 0.2 s read timeout once
turned a steady 404 into ``timeout`` under CI load while the wild app streamed a megabyte a byte
at a time); the wild app still meets a read timeout through the explicit example below."""

from __future__ import annotations

import base64

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import select

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.eightbyeight.prober import Prober
from lib.services.checking import checks, schedule
from lib.services.checking.worker import Worker
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.simulator import App
from lib.store.db import read_session, write_session
from lib.store.models import AlertOutbox, Check, utcnow
from tests.fixtures.alerts import Receiver, local_send
from tests.fixtures.answers import Answer, AnswerServer, Request, json_answer
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import RecordingSleep
from tests.test_alerts import app, channel, connect
from tests.test_prober_answers import answers
from tests.test_worker import make_due

PATIENT_READ_S = 2.0  # ten times the answers' longest pause: a margin no load on this machine eats

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

WILD, STEADY, CANARY = (app(f"{name}-client", f"{name}-secret") for name in ("wild", "steady", "canary"))


def _token_for(client: App) -> Answer:
    return json_answer(
        {
            "access_token": f"{client.client_id}-token",
            "expires_in": "1799",
            "api_product_list": "[storage, vcc, vcc-analytics, qm]",
        }
    )


def _client_of(request: Request) -> str:
    """Whose request this is: the Basic credentials of a token request, the token of a probe."""
    said = request.headers.get("authorization", "")
    if said.startswith("Basic "):
        return base64.b64decode(said[6:]).decode(errors="replace").partition(":")[0]
    return said.removeprefix("Bearer ").removesuffix("-token")


def routed(answer: Answer, where: str):  # type: ignore[no-untyped-def]
    """The steady app: a token, then 404 for every product (always failing, the same way). The
    wild app: ``answer`` for its token request or for its probes (a token otherwise)."""

    def answer_for(request: Request) -> Answer:
        token = request.path == "/oauth/v2/token"
        if _client_of(request) == STEADY.client_id:
            return _token_for(STEADY) if token else json_answer({"message": "no such resource"}, 404)
        return answer if token == (where == "token") else _token_for(WILD)

    return answer_for


def queue_alerts(rt: Runtime, canary_id: object) -> None:
    """The canary works, then fails twice: a check.failed (and a check.recovered when it was
    alerting) queued through the rules, as any stored check queues them."""
    for outcome in ("ok", "timeout", "timeout"):
        with write_session(rt.engine) as session:
            checks.store(
                session,
                [
                    CheckRecord(
                        canary_id,
                        "Canary",
                        "cc_chat",
                        outcome,
                        None,
                        5,
                        "",
                        utcnow(),  # type: ignore[arg-type]
                        "canary",
                    )
                ],
                {},
                "test",
            )


def test_a_tick_over_any_answers_stores_every_slot_once_and_still_delivers_alerts(
    runtime: Runtime, answer_server: AnswerServer, receiver: Receiver
) -> None:
    wild, steady = connect(runtime, WILD, name="Wild"), connect(runtime, STEADY, name="Steady")
    canary = connect(runtime, CANARY, name="Canary")
    schedule.set_paused(runtime.engine, True, actor=ADMIN, connection=canary)  # alerts only, never checked
    channel(runtime, receiver)
    prober = Prober(
        answer_server.url,
        timeout=httpx.Timeout(5.0, read=PATIENT_READ_S),
        deadline_s=2 * PATIENT_READ_S,
        sleep=RecordingSleep(),
    )
    worker = Worker(runtime, prober, send=local_send)
    worker.tick()  # plans the first slots

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(answer=answers(), where=st.sampled_from(["token", "products"]))
    @example(answer=json_answer({}, 429, (b"Retry-After", b"300000000000")), where="products")
    @example(answer=Answer(body=b"[]", piece_bytes=1, pause_s=PATIENT_READ_S + 0.5), where="products")  # read timeout
    def one_tick(answer: Answer, where: str) -> None:
        answer_server.reset(routed(answer, where))
        queue_alerts(runtime, canary.id)
        with read_session(runtime.engine) as session:
            before = session.exec(select(func.max(Check.id))).one() or 0
        make_due(runtime.engine)
        report = worker.tick()
        assert report.failure is None, report.failure
        assert report.checked == 2 * len(PRODUCT_KEYS)
        with read_session(runtime.engine) as session:
            new = session.exec(
                select(Check).where(Check.id > before, Check.product != TOKEN, Check.run_id == report.run_id)
            ).all()
            queued = session.exec(select(AlertOutbox.status)).all()
        assert sorted((r.connection_id, r.product) for r in new) == sorted(
            (c.id, p) for c in (wild, steady) for p in PRODUCT_KEYS
        )  # every slot once
        assert all(r.outcome in OUTCOMES for r in new)
        assert {r.outcome for r in new if r.connection_id == steady.id} == {"not_found"}
        assert set(queued) == {"delivered"}  # the canary's alerts (and the steady one's) went out

    one_tick()
    prober.close()
    assert "check.failed" in receiver.kinds() and "check.recovered" in receiver.kinds()
