"""One vocabulary everywhere (issue 22): a run's audit row reads the same whoever started it;
environment labels that differ only in case are one environment on every surface; a product
nobody ticked reads "not ticked" in exports, never also "Never tested". Real simulator, real
SQLite files, a real server for the status API; faults come from the simulator and from the
database's own triggers."""

from __future__ import annotations

import io
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import text

from lib.cli.check import _selected
from lib.eightbyeight.prober import ProberClosed
from lib.kernel.config import load_settings
from lib.notify.models import Event, EventKind
from lib.services import connections
from lib.services.accounts import api_tokens
from lib.services.alerts.outbox import routes
from lib.services.checking import checks
from lib.services.checking.worker import Worker
from lib.services.connections import ConnectionInput
from lib.services.guard import audit
from lib.services.history import status
from lib.services.history.status import CheckRecord
from lib.services.reporting import connections_table, export
from lib.services.runtime import Runtime, open_runtime
from lib.simulator import Scenario
from lib.store.db import write_session
from lib.store.models import utcnow
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.fixtures.server import Server, start_server
from tests.fixtures.simulator import SimulatorFactory
from tests.test_alerts import SETTINGS, app, connect
from tests.test_worker import make_due

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# --- 1. a run's audit row: one wording, manual or scheduled ----------------------------------


def run_words(runtime: Runtime, run_id: str) -> tuple[str, str]:
    """The result and detail of the run's audit row, its id written as RUN."""
    row = next(
        e for e in reversed(audit.events(runtime.engine, ADMIN)) if e.action == "check.run" and run_id in e.detail
    )
    return row.result, row.detail.replace(run_id, "RUN")


@sqlite_only
def test_a_manual_and_a_scheduled_run_with_the_same_outcomes_are_audited_in_the_same_words(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    """The same five outcomes, once from a person's Test all and once from a scheduled tick:
    the same result and the same detail, clean and with a failing product and a result the
    database refuses (a trigger refuses every row of Quality Management, so neither the result
    nor its stand-in can be stored)."""
    sim = simulator_factory(Scenario(apps=[app()]))
    connect(runtime, sim.scenario.apps[0])
    prober = prober_factory(sim.url)
    worker = Worker(runtime, prober)
    worker.tick()  # makes the due rows; their first slots lie ahead
    said: list[str] = []

    def manual() -> str:
        return checks.run_checks(runtime, prober, triggered_by=ADMIN).run_id

    def scheduled() -> str:
        make_due(runtime.engine)
        report = worker.tick()
        said.append(report.describe())
        return report.run_id

    runs: tuple[Callable[[], str], ...] = (manual, scheduled)
    assert [run_words(runtime, run()) for run in runs] == [("ok", "5 OK, 0 failing (run RUN)")] * 2
    control(sim, "POST", "faults", {"route": "cc_chat", "status": 404})
    with runtime.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse_qm BEFORE INSERT ON check_result "
                "WHEN NEW.product = 'quality_management' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    assert [run_words(runtime, run()) for run in runs] == [("failed", "3 OK, 1 failing, 1 not stored (run RUN)")] * 2
    assert "5 OK, 0 failing (run " in said[0] and "3 OK, 1 failing, 1 not stored (run " in said[1]


@sqlite_only
def test_a_run_cut_short_says_so_before_the_same_counts_and_reads_as_unfinished(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    sim = simulator_factory(Scenario(apps=[app()]))
    connect(runtime, sim.scenario.apps[0])
    prober = prober_factory(sim.url)
    prober.quiet_limit_s = 0.5  # chat answers after 3 s: the Prober gives up on it
    control(sim, "POST", "faults", {"route": "cc_chat", "delay_ms": 3000})
    run_id = str(uuid.uuid4())
    with pytest.raises(ProberClosed):
        checks.run_checks(runtime, prober, triggered_by=ADMIN, run_id=run_id)
    prober.quiet_limit_s = 10  # closing it at teardown waits for the slow answer
    assert run_words(runtime, run_id) == ("failed", "cut short after 4 of 5 products: 4 OK, 0 failing (run RUN)")
    assert not checks.stored_run(runtime.engine, run_id, actor=ADMIN).finished


# --- 2. environment labels: one label whatever their case ------------------------------------


@dataclass(frozen=True)
class Served:
    server: Server
    runtime: Runtime  # this process's view of the server's database
    token: str


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """A real server (no worker, no 8x8 needed) and a viewer API token for its status API."""
    server = start_server({}, "http://127.0.0.1:9")
    try:
        rt = open_runtime(load_settings(server.env))
        issued = api_tokens.create(rt.engine, "vocabulary", "viewer", actor=ADMIN)
        yield Served(server, rt, issued.token.get_secret_value())
        rt.engine.dispose()
    finally:
        server.stop()


# Letters whose capitals are plain to compare (ß's capital is SS), digits, a space and a hyphen.
_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéÉüÜøØß0123456789 -"
_names = itertools.count()


def _in_case(label: str, capitals: list[bool]) -> str:
    return "".join(c.upper() if up else c.lower() for c, up in zip(label, itertools.cycle(capitals), strict=False))


@st.composite
def case_variants(draw: st.DrawFn) -> tuple[list[str], str]:
    """Several spellings of one label, each written with its own capitals, and how someone
    asks for it (other capitals, blanks around it)."""
    label = draw(st.text(_LABEL_CHARS, min_size=1, max_size=12).map(str.strip).filter(bool))
    spellings = draw(st.lists(st.lists(st.booleans(), min_size=1, max_size=12), min_size=2, max_size=4))
    asked = _in_case(label, draw(st.lists(st.booleans(), min_size=1, max_size=12)))
    return [_in_case(label, capitals) for capitals in spellings], draw(st.sampled_from(["", " ", "  "])) + asked + " "


def _add(rt: Runtime, environment: str) -> connections.ConnectionView:
    return connections.create(
        rt.engine,
        rt.vault,
        ConnectionInput(
            name=f"Env {next(_names):05d}",
            client_id=f"client-{uuid.uuid4().hex[:12]}",
            client_secret=SecretStr("secret-value-1234"),
            environment=environment,
            expected_products=("cloud_storage",),
            storage_region="uk",
        ),
        actor=ADMIN,
    )


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=case_variants())
def test_labels_that_differ_only_in_case_are_one_environment_on_every_surface(
    served: Served, case: tuple[list[str], str]
) -> None:
    """The Connections table and its filter's choices show one spelling (the one most of its
    connections use; on a tie the first connection's); the console's and exports' filter,
    ``check --environment``, the status API's ``?environment=`` and alert routing each pick
    exactly its connections, asked for in any case; another environment stays apart."""
    spellings, asked = case
    rt = served.runtime
    other = "elsewhere" if status.environment_key(spellings[0]) != "elsewhere" else "somewhere else"
    views = [_add(rt, spelling) for spelling in spellings]
    apart = [_add(rt, other), _add(rt, "")]
    try:
        mine = {v.name for v in views}
        tally = Counter(spellings)
        shown = max(spellings, key=lambda s: (tally[s], -spellings.index(s)))  # connections are listed by name

        overview = connections_table.Overview.build(rt.engine, status.data_stamp(rt.engine))  # what the console shows
        table, wide = overview.table, overview.wide
        assert set(table.loc[table["connection"].isin(mine), "environment"]) == {shown}
        assert sorted(e for e in wide["Environment"].unique() if e) == sorted({shown, other})  # the filter's choices

        selection = connections_table.Selection(environments=frozenset({asked}))
        assert set(table.loc[selection.rows(table, table["verdict"]), "connection"]) == mine
        exported = json.loads(export.export(rt.engine, "json", actor=ADMIN, selection=selection).data)
        assert {(r["connection"], r["environment"]) for r in exported} == {(name, shown) for name in mine}
        assert {v.name for v in _selected(rt, (), asked)} == mine  # switchboard check --environment

        answered = httpx.get(
            f"{served.server.url}/api/v1/status",
            params={"environment": asked},
            headers={"Authorization": f"Bearer {served.token}"},
            timeout=30,
        )
        assert answered.status_code == 200, answered.text
        assert {(c["name"], c["environment"]) for c in answered.json()["connections"]} == {(n, shown) for n in mine}

        def routed(environment: str) -> bool:
            event = Event(id="e", kind=EventKind.FAILED, occurred_at=utcnow(), summary="s", environment=environment)
            return routes([EventKind.FAILED.value], [asked.strip()], event)

        assert all(routed(s) for s in spellings) and not routed(other)
    finally:
        for view in views + apart:
            connections.delete(rt.engine, view.id, actor=ADMIN)


@pytest.mark.slow
def test_the_status_api_refuses_an_environment_filter_no_label_could_match(served: Served) -> None:
    def status_for(params: list[tuple[str, str]]) -> httpx.Response:
        return httpx.get(
            f"{served.server.url}/api/v1/status",
            params=params,
            headers={"Authorization": f"Bearer {served.token}"},
            timeout=30,
        )

    too_long = status_for([("environment", "x" * (connections.ENVIRONMENT_MAX + 1))])
    assert too_long.status_code == 400 and too_long.json()["error"].startswith("environment:")
    too_many = status_for([("environment", f"e{i}") for i in range(51)])
    assert too_many.status_code == 400 and too_many.json()["error"].startswith("environment:")
    assert status_for([("environment", "none such")]).json()["connections"] == []


# --- 3. a product nobody ticked reads "not ticked", never also "Never tested" -----------------


def _parsed(fmt: str, data: bytes) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(data), keep_default_na=False, dtype=str)
    if fmt == "json":
        return pd.DataFrame(json.loads(data))
    rows = list(openpyxl.load_workbook(io.BytesIO(data)).active.values)
    return pd.DataFrame([["" if v is None else v for v in row] for row in rows[1:]], columns=rows[0])


@sqlite_only
@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_a_product_nobody_ticked_is_exported_as_not_ticked_and_nothing_else(runtime: Runtime, fmt: str) -> None:
    """Storage is ticked and tested; chat is not ticked but was tested once (what 8x8 said is
    information, kept); the three others were neither. A connection that ticked nothing counts
    all five, so its untested products are "Never tested" still."""
    ticked = connections.create(
        runtime.engine,
        runtime.vault,
        ConnectionInput(
            name="Storage only",
            client_id="client-storage-0001",
            client_secret=SecretStr("secret-value-1234"),
            expected_products=("cloud_storage",),
            **SETTINGS,
        ),
        actor=ADMIN,
    )  # type: ignore[arg-type]
    connections.create(
        runtime.engine,
        runtime.vault,
        ConnectionInput(
            name="Untouched", client_id="client-untouched-01", client_secret=SecretStr("secret-value-1234"), **SETTINGS
        ),
        actor=ADMIN,
    )  # type: ignore[arg-type]
    with write_session(runtime.engine) as session:
        checks.store(
            session,
            [
                CheckRecord(ticked.id, "", product, outcome, 200, 40, "", utcnow(), "r")
                for product, outcome in (("cloud_storage", "ok"), ("cc_chat", "timeout"))
            ],
            {},
            "test",
        )
    frame = _parsed(fmt, export.export(runtime.engine, fmt, actor=ADMIN).data)
    mine = frame[frame["connection"] == "Storage only"].set_index("product")
    idle = mine.drop(index=["Cloud Storage Service", "Contact Center Chat"])
    assert len(idle) == 3 and set(idle["status"]) == {"not ticked"}
    assert set(idle["outcome"]) == {connections_table.NOT_TICKED_LABEL}
    assert set(idle["outcome_key"]) == {""} and set(idle["cause"]) == {""}
    assert not idle.astype(str).apply(lambda column: column.str.contains("never tested", case=False)).any().any()
    chat = mine.loc["Contact Center Chat"]
    assert (chat["status"], chat["outcome_key"], chat["outcome"]) == (
        "not ticked",
        "timeout",
        connections_table.NAMES["timeout"],
    )
    untouched = frame[frame["connection"] == "Untouched"]
    assert set(untouched["status"]) == {"never tested"} and set(untouched["outcome"]) == {"Never tested"}
