"""One form of a moment per medium (issue 22). Whatever machines read (the status API, every
CLI --json, the exports, the audit CSV, alert payloads) says each moment as ISO 8601 in UTC
with a Z and whole seconds (lib.kernel.words.iso), from stored moments that have microseconds; what
people read from the CLI and in alerts says it as lib.kernel.words.shown; and `schedule show` marks
"(due)" exactly what a worker's next tick checks. Real databases, the real simulator, a real
webhook receiver."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, update
from sqlmodel import SQLModel, select

from lib.cli import cli as root_command
from lib.kernel.config import get_settings
from lib.notify.models import Event, EventKind
from lib.notify.payloads import facts, webhook_body
from lib.services import alerts
from lib.services.accounts import api_tokens, users
from lib.services.alerts.events import (
    Subject,
    aging_event,
    channel_test_event,
    check_event,
    drift_event,
    from_json,
    summary_event,
    to_json,
)
from lib.services.checking import checks, schedule
from lib.services.checking.worker import Worker
from lib.services.guard import audit
from lib.services.history.status import CheckRecord
from lib.services.reporting import export, machine_status
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import read_session, write_session
from lib.store.models import Check, Connection, DueCheck, UTCDateTime, utcnow
from tests.fixtures.alerts import Receiver, local_send
from tests.fixtures.people import ADMIN, PASSWORD
from tests.fixtures.prober import ProberFactory
from tests.test_alerts import channel
from tests.test_checks import add

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
SHOWN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")
# Anything a person or a program would read as a moment, in any of the forms once written.
MOMENT_LIKE = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d| UTC)?")
STORED = datetime(2026, 11, 3, 8, 4, 5, 678901, tzinfo=UTC)  # microseconds, as utcnow() stores them


def moments(node: Any, name: str = "") -> Iterator[tuple[str, Any]]:
    """Every moment in a JSON document: what is named as one (``at``, ``timestamp``, ``*_at``,
    ``*_utc``, ``*_since``) and any text that reads as a date, wherever it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from moments(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from moments(value, name)
    elif name in ("at", "timestamp") or name.endswith(("_at", "_utc", "_since")) or _reads_as_date(node):
        yield name, node


def _reads_as_date(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def not_machine_form(documents: list[Any]) -> list[tuple[str, Any]]:
    """The moments that are not ISO 8601 UTC with a Z and whole seconds (absent ones, null or
    an empty CSV cell, are fine); there must be some moments to look at."""
    found = [(name, value) for document in documents for name, value in moments(document) if value not in (None, "")]
    return [(name, value) for name, value in found if not ISO.fullmatch(str(value))] if found else [("", "none")]


def not_human_form(text: str) -> list[str]:
    """The moments in ``text`` not in the one human form; there must be some to look at."""
    found = MOMENT_LIKE.findall(text)
    return [moment for moment in found if not SHOWN.fullmatch(moment)] if found else ["none"]


def run_cli(env: dict[str, str], *args: str) -> Result:
    """`switchboard` in this process, on the test's database, keyring and simulator."""
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(root_command, list(args), env=env)
    finally:
        get_settings.cache_clear()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def every_stored_moment_at(engine: Engine, moment: datetime) -> None:
    """Every moment column of every table that holds one holds ``moment`` (microseconds and all)."""
    with write_session(engine) as session:
        for table in SQLModel.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, UTCDateTime):
                    session.connection().execute(update(table).where(column.is_not(None)).values({column.name: moment}))


@dataclass
class Fleet:
    rt: Runtime
    env: dict[str, str]


@pytest.fixture
def fleet(runtime: Runtime, simulator: SimulatorServer, worker_env: Callable[[object], dict[str, str]]) -> Fleet:
    """Two connections (one checked, with what 8x8 granted), a used and a revoked API token,
    an account and their audit rows; every stored moment with microseconds."""
    engine, app = runtime.engine, simulator.scenario.apps[0]
    acme = add(runtime, app, "Acme EU", expected_products=("cloud_storage", "cc_chat"))
    add(runtime, app, "Beta")
    with write_session(engine) as session:
        checks.store(
            session,
            [
                CheckRecord(acme.id, acme.name, "cloud_storage", "ok", 200, 40, "", utcnow(), "r"),
                CheckRecord(acme.id, acme.name, "cc_chat", "not_found", 404, 70, "", utcnow(), "r"),
            ],
            {acme.id: frozenset({"cloud_storage", "cc_chat"})},
            "test",
        )
    used = api_tokens.create(engine, "grafana", "viewer", actor=ADMIN).token.get_secret_value()
    api_tokens.authenticate(engine, used, address="127.0.0.1", target="GET /api/v1/status")
    api_tokens.create(engine, "old", "viewer", actor=ADMIN)
    api_tokens.revoke(engine, "old", actor=ADMIN)
    users.add(engine, "olga", PASSWORD, "operator", actor=ADMIN, own_password=True)
    every_stored_moment_at(engine, STORED)
    return Fleet(runtime, worker_env(simulator))


def _cli_json(*args: str) -> Callable[[Fleet], list[Any]]:
    def read(fleet: Fleet) -> list[Any]:
        result = run_cli(fleet.env, *args, "--json")
        assert result.exit_code in (0, 1), result.output  # check: 1 when a product fails
        return [json.loads(result.stdout)]

    return read


def _api(answer: Callable[[Engine], dict[str, Any]]) -> Callable[[Fleet], list[Any]]:
    def read(fleet: Fleet) -> list[Any]:
        return [json.loads(json.dumps(answer(fleet.rt.engine)))]  # as JSONResponse writes it: no default=

    return read


def _export_text(fmt: str) -> Callable[[Fleet], list[Any]]:
    def read(fleet: Fleet) -> list[Any]:
        data = export.export(fleet.rt.engine, fmt, actor=ADMIN).data.decode()
        return [list(csv.DictReader(io.StringIO(data)))] if fmt == "csv" else [json.loads(data)]

    return read


def _audit_csv(fleet: Fleet) -> list[Any]:
    text = audit.to_csv(audit.events(fleet.rt.engine, ADMIN)).decode()
    return [list(csv.DictReader(io.StringIO(text)))]


SURFACES: dict[str, Callable[[Fleet], list[Any]]] = {
    "GET /api/v1/status": _api(lambda engine: machine_status.everything(engine, actor=ADMIN)),
    "GET /api/v1/connections/{name}": _api(lambda engine: machine_status.one(engine, "acme eu", actor=ADMIN)),
    "check --json": _cli_json("check", "--all"),
    "connections list --json": _cli_json("connections", "list"),
    "tokens list --json": _cli_json("tokens", "list"),
    "users list --json": _cli_json("users", "list"),
    "audit --json": _cli_json("audit"),
    "export csv": _export_text("csv"),
    "export json": _export_text("json"),
    "audit csv": _audit_csv,
}


def test_every_machine_surface_writes_each_moment_as_iso_utc_with_z_and_whole_seconds(fleet: Fleet) -> None:
    wrong = {surface: not_machine_form(read(fleet)) for surface, read in SURFACES.items()}
    assert {surface: found for surface, found in wrong.items() if found} == {}


def test_excel_keeps_real_date_cells_in_whole_seconds_under_a_utc_column(fleet: Fleet) -> None:
    """Excel is read by people: a date cell sorts and filters as a date. It has no time zone,
    so the column's name says UTC, as in CSV and JSON; the digits are the same."""
    sheet = openpyxl.load_workbook(io.BytesIO(export.export(fleet.rt.engine, "xlsx", actor=ADMIN).data)).active
    header = [cell.value for cell in sheet[1]]
    dated = [
        (header[cell.column - 1], cell)
        for row in sheet.iter_rows(min_row=2)
        for cell in row
        if isinstance(cell.value, datetime)
    ]
    assert dated
    for name, cell in dated:
        assert name.endswith("_utc") and cell.number_format == "yyyy-mm-dd hh:mm:ss"
        assert cell.value == STORED.replace(microsecond=0, tzinfo=None)
    texts = json.loads(export.export(fleet.rt.engine, "json", actor=ADMIN).data)
    assert {row["checked_at_utc"] for row in texts} - {None} == {STORED.strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_cli_tables_show_each_moment_in_the_one_human_form(fleet: Fleet) -> None:
    said = {
        " ".join(args): run_cli(fleet.env, *args) for args in (("connections", "list"), ("tokens", "list"), ("audit",))
    }
    assert {command: result.output for command, result in said.items() if result.exit_code} == {}
    wrong = {command: not_human_form(result.stdout) for command, result in said.items()}
    assert {command: found for command, found in wrong.items() if found} == {}


# --- alert payloads --------------------------------------------------------------------------

SUBJECT = Subject(uuid.UUID(int=7), "Acme EU", "production", "ab12…9f3e")
ANY_MOMENT = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.one_of(st.none(), st.just(UTC), st.timezones()),
)


def every_kind_of_event(moment: datetime) -> list[Event]:
    """One event of each kind, as lib.services.alerts raises them ("failing_since" as the rules write it)."""
    failed = check_event(
        EventKind.FAILED,
        SUBJECT,
        "cc_chat",
        "timeout",
        previous="ok",
        checked_at=moment,
        http_status=None,
        episode=moment.isoformat(),
        details={"failures_in_a_row": 2, "failing_since": moment.isoformat()},
    )
    aging = aging_event(SUBJECT, secret_set_at=moment, age_days=200, step=0, at=moment)
    return [
        failed,
        aging,
        drift_event(
            SUBJECT,
            granted=frozenset({"cc_chat"}),
            previous=frozenset({"cc_chat", "cloud_storage"}),
            ticked=frozenset({"cc_chat"}),
            since=moment,
            at=moment,
        ),
        channel_test_event("Ops", at=moment, by="admin"),
        summary_event(uuid.UUID(int=9), [failed, aging], at=moment),
    ]


def queued(event: Event) -> Event:
    """The event as a sender gets it: through the outbox's JSON column and back."""
    return from_json(json.loads(json.dumps(to_json(event))))


@settings(max_examples=60, deadline=None)
@given(moment=ANY_MOMENT)
def test_any_moment_in_any_alert_reaches_machines_and_people_in_their_one_form(moment: datetime) -> None:
    for event in map(queued, every_kind_of_event(moment)):
        body = json.loads(json.dumps(webhook_body(event)))  # as the sender writes it: no default=
        assert not_machine_form([body]) == []
        instant = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the store's naive moments are UTC
        assert body["timestamp"] == instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        said = "\n".join(f"{label}: {text}" for label, text in facts(event))
        assert [m for m in MOMENT_LIKE.findall(said) if not SHOWN.fullmatch(m)] == [], said


def test_alerts_a_receiver_gets_carry_each_moment_in_the_one_form(
    runtime: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    """Through the rules, the outbox and the sender: check.failed with failing_since, secret
    aging with secret_set_at, and a channel test, from moments with microseconds."""
    view = add(runtime, simulator.scenario.apps[0], "Acme EU")
    channel(runtime, receiver)
    for _ in range(2):
        with write_session(runtime.engine) as session:
            checks.store(
                session,
                [
                    CheckRecord(
                        view.id,
                        view.name,
                        "cc_chat",
                        "timeout",
                        None,
                        30000,
                        "",
                        utcnow().replace(microsecond=123456),
                        "r",
                    )
                ],
                {},
                "test",
            )
    with write_session(runtime.engine) as session:
        session.exec(
            update(Connection)
            .where(Connection.id == view.id)  # type: ignore[call-overload,arg-type]
            .values(secret_set_at=utcnow().replace(microsecond=654321) - timedelta(days=200))
        )
    alerts.tick(runtime, worker="w", send=local_send)
    alerts.send_test(runtime, "Ops hook", actor=ADMIN, send=local_send)
    assert sorted(receiver.kinds()) == ["channel.test", "check.failed", "secret.aging"]
    assert not_machine_form([r.body for r in receiver.received]) == []
    failed = next(r.body for r in receiver.received if r.kind == "check.failed")
    assert ISO.fullmatch(failed["details"]["failing_since"])


# --- schedule show: "(due)" ------------------------------------------------------------------


def _marked(env: dict[str, str], names: tuple[str, ...]) -> set[str]:
    """The connections `schedule show` marks "(due)", anywhere on their line."""
    result = run_cli(env, "schedule", "show")
    assert result.exit_code == 0, result.output
    lines = {name: line for line in result.stdout.splitlines() for name in names if line.startswith(f"{name} ")}
    assert set(lines) == set(names), result.stdout
    assert [line for line in lines.values() if MOMENT_LIKE.search(line) and not_human_form(line)] == []
    return {name for name, line in lines.items() if "(due)" in line}


def _checked(engine: Engine) -> set[str]:
    with read_session(engine) as session:
        return set(session.exec(select(Connection.name).join(Check, Check.connection_id == Connection.id)).all())


def test_schedule_show_marks_due_exactly_what_the_next_tick_checks(
    runtime: Runtime,
    simulator: SimulatorServer,
    prober_factory: ProberFactory,
    worker_env: Callable[[object], dict[str, str]],
) -> None:
    """Due now: marked and checked; held by another worker's live lease: neither. Due later
    (checked before): its last check is no "(due)".
    Paused with its slot come, and not planned by a worker yet: neither."""
    app, engine, env = simulator.scenario.apps[0], runtime.engine, worker_env(simulator)
    names = ("Due", "Later", "Paused", "New")
    planned = [add(runtime, app, name, expected_products=("cloud_storage",)) for name in names[:3]]
    schedule.sync(engine, planned)  # their due rows, as a worker's tick makes them
    add(runtime, app, "New", expected_products=("cloud_storage",))
    now = utcnow()
    for view, due in zip(
        planned, (now - timedelta(seconds=1), now + timedelta(hours=1), now - timedelta(seconds=1)), strict=True
    ):
        with write_session(engine) as session:
            session.exec(
                update(DueCheck)
                .where(DueCheck.connection_id == view.id)  # type: ignore[call-overload,arg-type]
                .values(due_at=due, last_checked_at=now - timedelta(minutes=10))
            )
    schedule.set_paused(engine, True, actor=ADMIN, connection=planned[2])
    worker = Worker(runtime, prober_factory(simulator.url))
    with write_session(engine) as session:  # another worker holds Due's slot: not due for this one
        session.exec(
            update(DueCheck)
            .where(DueCheck.connection_id == planned[0].id)  # type: ignore[call-overload,arg-type]
            .values(claimed_by="elsewhere", claimed_until=now + timedelta(minutes=5))
        )
    assert _marked(env, names) == set()
    assert worker.tick().checked == 0
    with write_session(engine) as session:  # its lease ran out: due again
        session.exec(
            update(DueCheck)
            .where(DueCheck.connection_id == planned[0].id)  # type: ignore[call-overload,arg-type]
            .values(claimed_until=now - timedelta(seconds=1))
        )

    assert _marked(env, names) == {"Due"}
    assert worker.tick().failure is None
    assert _checked(engine) == {"Due"}

    with write_session(engine) as session:  # every slot has come; then all are paused
        session.exec(update(DueCheck).values(due_at=utcnow() - timedelta(seconds=1)))  # type: ignore[call-overload]
    schedule.set_paused(engine, True, actor=ADMIN)
    assert _marked(env, names) == set()
    assert worker.tick().checked == 0
