"""Read paths whose cost does not grow with the age of the history (issue 24, item 4).

/metrics counts from a tally kept in the transaction that stores the checks and reads each
product's last success from its current status, so both outlive the checks behind them; a
connection's newest checks, the audit trail's pages and the lookup of an interrupted run are
read by index. Each query these paths run is EXPLAINed on SQLite and PostgreSQL: none reads
check_result or audit_event whole. Real databases throughout; faults come from the database's
own triggers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, bindparam, delete, event, func, text, update
from sqlmodel import select

from lib.catalogue.outcomes import OutcomeKey
from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.eightbyeight.models import ProbeResult
from lib.services import connections
from lib.services.checking import checks
from lib.services.connections import ConnectionView, linking
from lib.services.guard import audit
from lib.services.history import status
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store import db
from lib.store.db import read_session, write_session
from lib.store.keyring import check_keyring
from lib.store.models import (
    DURATION_BUCKETS_MS,
    AuditEvent,
    Check,
    Connection,
    CurrentStatus,
    UTCDateTime,
    utcnow,
)
from lib.store.vault import Vault
from tests.fixtures.console import PageOpener
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.fixtures.storage import Sentinels
from tests.test_checks import form_for
from tests.test_metrics import add, scrape, store, values
from tests.test_storage import connections_before_audit

WATCHED = ("check_result", "audit_event")  # the tables that grow with age

# --- what a query plan says ------------------------------------------------------------------


@contextmanager
def queries(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements ``engine`` runs while the block runs, as sent, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


@dataclass(frozen=True)
class Plan:
    statement: str
    full_scans: list[str]  # watched tables read whole (a table scan, or an index read end to end)
    sorts: bool  # the rows are sorted after they are read, not read in order from an index
    steps: list[str]


def _pg_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _pg_nodes(child)


def plan(engine: Engine, statement: str, parameters: Any) -> Plan:
    """The database's own plan of a statement. PostgreSQL is told to avoid table scans
    (enable_seqscan off), so that it scans a table of a few test rows only when no index
    serves the query: exactly what a long history would pay for."""
    if db.is_sqlite(engine):
        with engine.connect() as conn:
            steps = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
        full = [t for t in WATCHED for s in steps if re.match(rf"SCAN {t}\b", s)]
        return Plan(statement, full, any("TEMP B-TREE FOR ORDER BY" in s for s in steps), steps)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        [[document]] = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).all()
    nodes = list(_pg_nodes((document if isinstance(document, list) else json.loads(document))[0]["Plan"]))
    full = [
        n["Relation Name"]
        for n in nodes
        if n.get("Relation Name") in WATCHED
        and (n["Node Type"] == "Seq Scan" or (n["Node Type"].startswith("Index") and "Index Cond" not in n))
    ]
    steps = [f"{n['Node Type']} {n.get('Relation Name', '')} {n.get('Index Name', '')}".strip() for n in nodes]
    return Plan(statement, full, any(n["Node Type"].endswith("Sort") for n in nodes), steps)


def plans(engine: Engine, seen: list[tuple[str, Any]]) -> list[Plan]:
    assert seen, "no query ran"
    return [plan(engine, statement, parameters) for statement, parameters in seen]


def assert_indexed(found: list[Plan], *, ordered: bool = False) -> None:
    """No plan reads a watched table whole; ``ordered``: none sorts either (its order comes
    from an index, so a page of the newest rows costs the page)."""
    for p in found:
        assert not p.full_scans, (p.statement, p.steps)
        assert not (ordered and p.sorts), (p.statement, p.steps)


# --- /metrics --------------------------------------------------------------------------------

OUTCOMES = tuple(OutcomeKey)
REFUSED = "refused by the test"  # a result whose row the database refuses: stored as a failure instead
LOST = "lost"  # run id of a result the database refuses even as a failure


@dataclass(frozen=True)
class Planned:
    """One result to store: for connection ``who`` (2: one deleted while it was checked)."""

    who: int
    product: str
    outcome: str
    ms: int
    minutes_ago: int
    earlier_settings: bool
    fault: str | None


EDGES = sorted({0, *DURATION_BUCKETS_MS, *(b + 1 for b in DURATION_BUCKETS_MS)})
results = st.builds(
    Planned,
    who=st.sampled_from((0, 0, 1, 1, 2)),
    product=st.sampled_from((TOKEN, *PRODUCT_KEYS)),
    outcome=st.sampled_from(OUTCOMES),
    ms=st.one_of(st.sampled_from(EDGES), st.integers(0, 60_000)),
    minutes_ago=st.integers(0, 30),
    earlier_settings=st.booleans(),
    fault=st.sampled_from((None, None, None, None, None, "refused", "lost")),
)


def two_connections_and_a_deleted_one(engine: Engine, vault: Vault) -> tuple[list[ConnectionView], uuid.UUID]:
    """Alpha and Beta (Cloud Storage ticked), the id of a connection that no longer exists, and
    the database set to refuse the rows a test marks (refuse_marked_rows)."""
    views = [
        add(engine, vault, name, ("cloud_storage",), client_id=f"client-000{i}")
        for i, name in enumerate(("Alpha", "Beta"), 1)
    ]
    refuse_marked_rows(engine)
    return views, uuid.uuid4()


def refuse_marked_rows(engine: Engine) -> None:
    """The database refuses the rows a test marks: detail REFUSED (stored as a failure of its
    own once the batch falls back to one by one) and run id LOST (refused even so)."""
    marked = f"NEW.detail = '{REFUSED}' OR NEW.run_id = '{LOST}'"
    with engine.begin() as conn:
        if db.is_sqlite(engine):
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_marked BEFORE INSERT ON check_result WHEN {marked} "
                    f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF {marked} THEN RAISE EXCEPTION '{REFUSED}'; END IF; RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_marked BEFORE INSERT ON check_result FOR EACH ROW "
                    "EXECUTE FUNCTION refuse_marked()"
                )
            )


def counted_in_history(engine: Engine) -> tuple[dict[tuple[str, str], int], dict[str, list[int]], dict[str, int]]:
    """Straight from the history: checks per (product, outcome), per product the checks within
    each bucket bound (cumulative, as Prometheus' buckets) and their summed milliseconds."""
    with read_session(engine) as session:
        rows = session.exec(select(Check.product, Check.outcome, Check.duration_ms)).all()
    by_outcome: dict[tuple[str, str], int] = {}
    for product, outcome, _ in rows:
        by_outcome[product, outcome] = by_outcome.get((product, outcome), 0) + 1
    within = {
        p: [sum(1 for q, _, ms in rows if q == p and ms <= bound) for bound in DURATION_BUCKETS_MS]
        + [sum(1 for q, _, _ in rows if q == p)]
        for p in PRODUCT_KEYS
    }
    total_ms = {p: sum(ms for q, _, ms in rows if q == p) for p in PRODUCT_KEYS}
    return by_outcome, within, total_ms


def assert_metrics_count_the_history(engine: Engine) -> None:
    by_outcome, within, total_ms = counted_in_history(engine)
    found = scrape(engine)
    checked = {
        (s.labels["product"], s.labels["outcome"]): s.value
        for s in found["switchboard_check"]
        if s.name.endswith("_total")
    }
    assert checked == {(p, o): by_outcome.get((p, o), 0) for p in PRODUCT_KEYS for o in OUTCOMES}
    tokens = {s.labels["outcome"]: s.value for s in found["switchboard_token_steps"] if s.name.endswith("_total")}
    assert tokens == {o: by_outcome.get((TOKEN, o), 0) for o in OUTCOMES}
    histogram = found["switchboard_check_duration_seconds"]
    for product in PRODUCT_KEYS:
        buckets = [s.value for s in histogram if s.name.endswith("_bucket") and s.labels["product"] == product]
        assert buckets == within[product], product
        assert values(histogram, "_sum")[(("product", product),)] == pytest.approx(total_ms[product] / 1000)


def assert_last_ok_is_the_newest_ok_of_the_current_settings(engine: Engine) -> None:
    with read_session(engine) as session:
        kept = {(r.connection_id, r.product): r.last_ok_at for r in session.exec(select(CurrentStatus)).all()}
        newest = {
            (c, p): at
            for c, p, at in session.exec(
                select(Check.connection_id, Check.product, func.max(Check.started_at))
                .where(Check.outcome == OutcomeKey.OK, Check.settings_version >= 1)
                .group_by(Check.connection_id, Check.product)
            ).all()
        }  # type: ignore[arg-type]
    assert {key: at for key, at in kept.items() if at is not None} == newest


def test_the_metrics_counters_equal_a_count_of_the_history_after_any_batches(runtime: Runtime, vault: Vault) -> None:
    """Batches of any results, made with the settings of now or earlier ones, for connections
    that exist or were deleted meanwhile, some refused by the database (the batch is then stored
    one by one, a refused result as a failure of its own, or lost): the counters /metrics
    reports equal a count of the stored history, and each current status' last ok is the
    newest ok check of the current settings."""
    engine = runtime.engine
    views, gone = two_connections_and_a_deleted_one(engine, vault)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batches=st.lists(st.lists(results, min_size=1, max_size=8), min_size=1, max_size=4))
    def stored(batches: list[list[Planned]]) -> None:
        report = checks.RunReport(run_id="r")
        writer = checks._Writer(runtime, report, "test", None)
        now = utcnow()
        for batch in batches:
            for r in batch:
                connection_id, name = (views[r.who].id, views[r.who].name) if r.who < 2 else (gone, "Gone")
                at, detail = now - timedelta(minutes=r.minutes_ago), REFUSED if r.fault == "refused" else ""
                record = CheckRecord(
                    connection_id,
                    name,
                    r.product,
                    r.outcome,
                    200,
                    r.ms,
                    detail,
                    at,
                    LOST if r.fault == "lost" else "r",
                    0 if r.earlier_settings else None,
                )
                writer.add(record, ProbeResult(r.product, r.outcome, detail, at, 200, r.ms))
            writer.flush()
        assert report.lost == sum(1 for batch in batches for r in batch if r.fault == "lost" and r.who < 2)
        assert_metrics_count_the_history(engine)
        assert_last_ok_is_the_newest_ok_of_the_current_settings(engine)

    stored()


def test_counters_and_last_successes_outlive_the_checks_behind_them(engine: Engine, vault: Vault) -> None:
    """Pruning old checks, or deleting a connection with its history, takes nothing from the
    counters; a product failing now still says when it last answered ok."""
    alpha = add(engine, vault, "Alpha", ("cloud_storage",))
    beta = add(engine, vault, "Beta", ("cloud_storage",), client_id="client-0002")
    long_ago = utcnow() - timedelta(days=40)
    store(engine, alpha, "cloud_storage", "ok", at=long_ago)
    store(engine, alpha, "cloud_storage", "timeout", ms=30_000)
    store(engine, alpha, TOKEN, "ok")
    store(engine, beta, "cloud_storage", "ok", ms=700)
    before = scrape(engine)
    with write_session(engine) as session:  # as the pruning of expired checks deletes them
        session.execute(delete(Check).where(Check.started_at < utcnow() - timedelta(days=30)))  # type: ignore[arg-type]
    connections.delete(engine, beta.id, actor=ADMIN)
    after = scrape(engine)
    for family in ("switchboard_check", "switchboard_token_steps", "switchboard_check_duration_seconds"):
        assert values(after[family]) == values(before[family]), family
    assert values(after["switchboard_check"])[(("outcome", "ok"), ("product", "cloud_storage"))] == 2
    assert values(after["switchboard_product_up"]) == {(("connection", "Alpha"), ("product", "cloud_storage")): 0}
    assert values(after["switchboard_last_success_timestamp_seconds"]) == {
        (("connection", "Alpha"), ("product", "cloud_storage")): pytest.approx(long_ago.timestamp())
    }


def test_every_query_of_a_scrape_reads_no_history(engine: Engine, vault: Vault) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage", "cc_chat"))
    for outcome in ("ok", "timeout"):
        store(engine, view, "cloud_storage", outcome)
    store(engine, view, "cc_chat", "ok")
    with queries(engine) as seen:
        scrape(engine)
    assert not [s for s, _ in seen if re.search(r"\b(check_result|audit_event)\b", s)]
    assert_indexed(plans(engine, seen))


def test_token_steps_count_the_token_requests_of_stored_checks(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    """One token step per connection and run, whatever its products; a token asked for to
    verify a form before saving is no stored check, so not counted (the simulator saw it)."""
    app = simulator.scenario.apps[0]
    prober = prober_factory(simulator.url)
    linking.save(runtime, prober, form_for(app, "Prod"), actor=ADMIN)
    checks.run_checks(runtime, prober, triggered_by=ADMIN)
    tokens = values(scrape(runtime.engine)["switchboard_token_steps"], "_total")
    assert tokens[(("outcome", "ok"),)] == sum(tokens.values()) == 1
    assert sum(control(simulator, "GET", "stats")["token_requests"].values()) == 2


# --- a connection's detail -------------------------------------------------------------------


def test_a_connections_newest_checks_are_read_by_index_in_order(engine: Engine, vault: Vault) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage",))
    other = add(engine, vault, "Beta", ("cloud_storage",), client_id="client-0002")
    for minutes, who in enumerate((view, other, view, view)):
        store(engine, who, "cloud_storage", "ok", at=utcnow() - timedelta(minutes=10 - minutes))
    with queries(engine) as seen:
        newest = status.history(engine, view.id, limit=2)
    assert [r.connection for r in newest] == ["Alpha", "Alpha"] and newest[0].checked_at > newest[1].checked_at
    assert_indexed(plans(engine, seen), ordered=True)


# --- the audit trail -------------------------------------------------------------------------


def write_audit(engine: Engine, moments: list[datetime], actor: str = "ann") -> None:
    with write_session(engine) as session:
        for i, at in enumerate(moments):
            session.add(AuditEvent(at=at, actor=actor, action="test.row", target=str(i), result=audit.OK))


def newest_first(engine: Engine, which: audit.Filter) -> list[int]:
    """The ids ``which`` selects, newest first, ties of ``at`` by id, read plainly."""
    with read_session(engine) as session:
        rows = session.exec(select(AuditEvent)).all()
    inside = [
        r
        for r in rows
        if (which.since is None or r.at >= which.since)
        and (which.until is None or r.at < which.until)
        and (not which.actors or r.actor in which.actors)
    ]
    return [r.id for r in sorted(inside, key=lambda r: (r.at, r.id), reverse=True)]  # type: ignore[misc]


def test_audit_pages_run_newest_first_through_ties_with_their_counts(engine: Engine) -> None:
    base = utcnow().replace(microsecond=0)
    ticks = st.integers(0, 6).map(lambda n: base - timedelta(seconds=n))  # few moments: many ties

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        moments=st.lists(ticks, max_size=25),
        others=st.lists(ticks, max_size=5),
        size=st.integers(1, 7),
        since=st.sampled_from((None, 1, 3)),
        only_ann=st.booleans(),
    )
    def paged(moments: list[datetime], others: list[datetime], size: int, since: int | None, only_ann: bool) -> None:
        with write_session(engine) as session:
            session.execute(delete(AuditEvent))  # type: ignore[arg-type]
        write_audit(engine, moments)
        write_audit(engine, others, actor="bob")
        which = audit.Filter(
            since=None if since is None else base - timedelta(seconds=since),
            actors=frozenset({"ann"}) if only_ann else frozenset(),
        )
        expected = newest_first(engine, which)
        seen: list[int] = []
        before = None
        while True:
            page = audit.page(engine, ADMIN, which, before=before, size=size)
            assert (page.total, page.start) == (len(expected), len(seen))
            assert len(page.rows) == min(size, len(expected) - len(seen))
            seen += [r.id for r in page.rows]  # type: ignore[misc]
            before = page.older
            if before is None:
                break
        assert seen == expected
        newest = audit.events(engine, ADMIN, which, limit=size)
        assert [r.id for r in newest] == expected[:size][::-1]  # the newest, in the order they happened

    paged()


def test_a_page_after_a_cursor_that_was_pruned_is_empty(engine: Engine) -> None:
    write_audit(engine, [utcnow()])
    page = audit.page(engine, ADMIN, before=10**9)
    assert (page.rows, page.total, page.older) == ([], 1, None)
    assert audit.page(engine, ADMIN).describe() == "Showing 1–1 of 1 event"


def test_an_audit_page_and_its_counts_are_read_by_index(engine: Engine) -> None:
    now = utcnow()
    write_audit(engine, [now - timedelta(minutes=n) for n in range(12)])
    write_audit(engine, [now - timedelta(days=20)], actor="bob")
    which = audit.Filter(since=now - timedelta(days=7), until=now + timedelta(minutes=1))
    first = audit.page(engine, ADMIN, which, size=5)
    with queries(engine) as seen:
        second = audit.page(engine, ADMIN, which, before=first.older, size=5)
    assert (second.start, second.total, len(second.rows)) == (5, 12, 5)
    assert_indexed(plans(engine, seen), ordered=True)
    with queries(engine) as seen:
        audit.page(engine, ADMIN, audit.Filter(since=now - timedelta(days=7), actors=frozenset({"ann"})))
        audit.choices(engine, ADMIN, since=now - timedelta(days=7), until=None)
    assert_indexed(plans(engine, seen))


def test_the_lookup_of_an_interrupted_run_reads_only_the_audit_rows_since_it_began(
    engine: Engine, vault: Vault
) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage",))
    write_audit(engine, [utcnow() - timedelta(days=30)])  # a long trail before it
    with write_session(engine) as session:
        checks.store(
            session, [CheckRecord(view.id, "Alpha", "cloud_storage", "ok", 200, 5, "", utcnow(), "run-1")], {}, "test"
        )
    with queries(engine) as seen:
        run = checks.stored_run(engine, "run-1", actor=ADMIN)
    assert (run.products, run.finished) == (1, False)
    assert_indexed(plans(engine, seen))
    assert any("audit_event" in s for s, _ in seen)


def test_the_audit_page_shows_the_newest_first_and_turns_pages(console_env: Runtime, open_page: PageOpener) -> None:
    engine = console_env.engine
    now = utcnow()
    write_audit(engine, [now - timedelta(seconds=n) for n in range(1, audit.PAGE_SIZE + 4)])
    at = open_page("pages/audit.py")
    which = audit.Filter(since=now - timedelta(days=8))
    expected = newest_first(engine, which)
    total = len(expected)
    targets = {r.id: (r.action, r.target) for r in audit.events(engine, ADMIN, which)}

    def shown() -> tuple[str, list[tuple[str, str]]]:
        frame = at.dataframe[0].value
        return (
            next(c.value for c in at.caption if c.value.startswith("Showing")),
            list(zip(frame["action"], frame["target"], strict=True)),
        )

    said, rows = shown()
    assert said == f"Showing 1–{audit.PAGE_SIZE} of {total:,} events, newest first."
    assert rows == [targets[i] for i in expected[: audit.PAGE_SIZE]]
    assert at.button(key="audit_newer").disabled
    assert f"Download CSV ({total:,} rows)" in [b.label for b in at.get("download_button")]
    at = at.button(key="audit_older").click().run()
    said, rows = shown()
    assert said == f"Showing {audit.PAGE_SIZE + 1}–{total} of {total:,} events, newest first."
    assert rows == [targets[i] for i in expected[audit.PAGE_SIZE :]]
    assert at.button(key="audit_older").disabled
    at = at.button(key="audit_newer").click().run()
    assert shown()[0].startswith(f"Showing 1–{audit.PAGE_SIZE} of")


# --- the migration ---------------------------------------------------------------------------


def test_upgrading_fills_the_tally_and_last_successes_from_the_history(
    database_url: str, vault: Vault, sentinels: Sentinels
) -> None:
    engine = db.make_engine(database_url)
    command.upgrade(db._alembic_config(engine), "0012")  # the release before the tally
    check_keyring(engine, vault)
    row_id = connections_before_audit(engine, vault, sentinels)
    with engine.begin() as conn:  # as the service writes it ("never asked" is JSON null, not SQL NULL)
        conn.execute(update(Connection).where(Connection.id == row_id).values(granted_products=None))
    key = row_id.hex if db.is_sqlite(engine) else row_id
    now = utcnow()
    history = [
        ("cloud_storage", "ok", 40, 50),
        ("cloud_storage", "ok", 50, 40),
        ("cloud_storage", "timeout", 30_001, 30),
        ("cc_chat", "not_found", 120, 20),
        (TOKEN, "ok", 90, 10),
        (TOKEN, "bad_credentials", 99, 5),
    ]
    at = bindparam("at", type_=UTCDateTime())
    with engine.begin() as conn:
        for product, outcome, ms, minutes_ago in history:
            conn.execute(
                text(
                    "INSERT INTO check_result (connection_id, product, started_at, duration_ms, outcome, "
                    "detail, triggered_by) VALUES (:c, :p, :at, :ms, :o, '', 'x')"
                ).bindparams(at),
                {"c": key, "p": product, "o": outcome, "ms": ms, "at": now - timedelta(minutes=minutes_ago)},
            )
        for product, outcome, minutes_ago in (
            ("cloud_storage", "timeout", 30),
            ("cc_chat", "not_found", 20),
            (TOKEN, "bad_credentials", 5),
        ):
            conn.execute(
                text(
                    "INSERT INTO current_status (connection_id, product, outcome, duration_ms, detail, "
                    "checked_at) VALUES (:c, :p, :o, 0, '', :at)"
                ).bindparams(at),
                {"c": key, "p": product, "o": outcome, "at": now - timedelta(minutes=minutes_ago)},
            )
    db.upgrade(engine)
    assert_metrics_count_the_history(engine)
    with read_session(engine) as session:
        last_ok = {r.product: r.last_ok_at for r in session.exec(select(CurrentStatus)).all()}
    assert last_ok == {
        "cloud_storage": now - timedelta(minutes=40),
        "cc_chat": None,
        TOKEN: now - timedelta(minutes=10),
    }
    with write_session(engine) as session:  # stored after the upgrade: added to the rows it made
        checks.store(session, [CheckRecord(row_id, "Old", "cloud_storage", "ok", 200, 45, "", now, "r")], {}, "t")
    assert_metrics_count_the_history(engine)
    assert_last_ok_is_the_newest_ok_of_the_current_settings(engine)
    engine.dispose()
