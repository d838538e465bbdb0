"""The status read model: one row per connection and product, built from two queries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, event

from lib.catalogue.products import PRODUCT_KEYS
from lib.services import connections
from lib.services.checking import checks
from lib.services.connections import ConnectionInput
from lib.services.history import status
from lib.services.history.status import NEVER_TESTED, CheckRecord
from lib.services.reporting import connections_table
from lib.store.db import write_session
from lib.store.models import utcnow
from lib.store.vault import Vault
from tests.fixtures.people import ADMIN
from tests.fixtures.waiting import eventually, waiting_for_locks


def _add(engine: Engine, vault: Vault, name: str, products: tuple[str, ...]) -> connections.ConnectionView:
    return connections.create(
        engine,
        vault,
        ConnectionInput(
            name=name,
            client_id=f"client-{name}-0001",
            client_secret=SecretStr("secret-value-1234"),
            expected_products=products,
            storage_region="uk",
            chat_region="us",
            tenant_id="t-1",
            qm_region="uk",
            pbx="pbx-1",
        ),
        actor=ADMIN,
    )


def test_the_table_has_every_product_of_every_connection_in_order(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, "b-untouched", ())
    two_ticked = _add(engine, vault, "a-storage-and-chat", ("cloud_storage", "cc_chat"))
    with write_session(engine) as session:
        checks.store(
            session,
            [CheckRecord(two_ticked.id, "", "cloud_storage", "timeout", None, 30000, "slow", utcnow(), "r1")],
            {two_ticked.id: frozenset({"cloud_storage"})},
            "test",
        )
    table = status.table(engine)
    assert list(table.columns) == [*status.COLUMNS, *status.DETAIL_COLUMNS]
    assert list(table["connection"]) == ["a-storage-and-chat"] * 5 + ["b-untouched"] * 5  # by name
    assert list(table["product"]) == list(PRODUCT_KEYS) * 2
    ticked = table[table["connection"] == "a-storage-and-chat"].set_index("product")
    assert (
        list(ticked["expected"])
        == list(ticked["in_scope"])
        == [p in ("cloud_storage", "cc_chat") for p in PRODUCT_KEYS]
    )
    assert list(ticked["granted"]) == [p == "cloud_storage" for p in PRODUCT_KEYS]
    assert ticked.loc["cloud_storage", "outcome"] == "timeout" and ticked.loc["cloud_storage", "duration_ms"] == 30000
    assert ticked.loc["cc_chat", "outcome"] == NEVER_TESTED and ticked.loc["cc_chat", "detail"] == ""
    untouched = table[table["connection"] == "b-untouched"]
    assert untouched["in_scope"].all() and not untouched["expected"].any()  # none ticked: a test covers all five
    assert untouched["granted"].isna().all()  # 8x8 was never asked
    assert str(untouched["checked_at"].dtype).startswith("datetime64") and untouched["checked_at"].isna().all()
    verdicts = status.verdicts(table).to_numpy().reshape(2, 5)
    # ticked: cloud_storage timed out; cc_chat is untested but 8x8 does not grant it; three not ticked
    assert list(verdicts[0]) == ["not ticked", "not ticked", "failing", "not ticked", "failing"]
    assert list(verdicts[1]) == ["never tested"] * 5  # none ticked: all five count
    light = status.table(engine, details=False)
    assert list(light.columns) == list(status.COLUMNS) and len(light) == 10


def _store(
    engine: Engine, view: connections.ConnectionView, outcomes: dict[str, str], granted: frozenset[str] | None = None
) -> None:
    with write_session(engine) as session:
        checks.store(
            session,
            [
                CheckRecord(view.id, "", product, outcome, 200, 40, "", utcnow(), "r")
                for product, outcome in outcomes.items()
            ],
            {} if granted is None else {view.id: granted},
            "test",
        )


def test_only_ticked_products_count_and_ungranted_ticked_ones_fail(engine: Engine, vault: Vault) -> None:
    """A product 8x8 grants but nobody ticked is information, even when its test failed; a
    ticked product 8x8 does not grant is failing before any test."""
    view = _add(engine, vault, "mixed", ("cloud_storage", "cc_chat", "quality_management"))
    _store(
        engine,
        view,
        {"cloud_storage": "ok", "cc_realtime_analytics": "product_not_enabled", "cc_historical_analytics": "ok"},
        granted=frozenset({"cloud_storage", "quality_management", "cc_realtime_analytics", "cc_historical_analytics"}),
    )
    table = status.table(engine)
    verdict = dict(zip(table["product"], status.verdicts(table), strict=True))
    assert verdict == {
        "cc_realtime_analytics": "not ticked",
        "cc_historical_analytics": "not ticked",
        "cloud_storage": "ok",
        "quality_management": "never tested",
        "cc_chat": "failing",
    }


def test_a_selection_picks_whole_connections_by_name_environment_and_outcome(engine: Engine, vault: Vault) -> None:
    good = _add(engine, vault, "Alpha", ("cloud_storage",))
    bad = _add(engine, vault, "Beta", ("cloud_storage", "cc_chat"))
    info = _add(engine, vault, "Gamma", ("cloud_storage",))
    _store(engine, good, {"cloud_storage": "ok"})
    _store(engine, bad, {"cloud_storage": "ok", "cc_chat": "timeout"})
    _store(engine, info, {"cloud_storage": "ok", "cc_chat": "timeout"})  # cc_chat not ticked: information
    table = status.table(engine)
    verdict = status.verdicts(table)

    def picked(selection: connections_table.Selection) -> set[str]:
        return set(table.loc[selection.rows(table, verdict), "connection"])

    assert picked(connections_table.Selection()) == {"Alpha", "Beta", "Gamma"}
    assert picked(connections_table.Selection(search="  ".strip() or "alp")) == {"Alpha"}
    assert picked(connections_table.Selection(outcomes=frozenset({connections_table.ANY_PROBLEM}))) == {"Beta"}
    assert picked(connections_table.Selection(outcomes=frozenset({"timeout"}))) == {"Beta"}
    assert picked(connections_table.Selection(outcomes=frozenset({"ok"}), search="a")) == {"Alpha", "Beta", "Gamma"}
    assert picked(connections_table.Selection(environments=frozenset({"prod"}))) == set()
    assert len(table.loc[connections_table.Selection(search="beta").rows(table, verdict)]) == len(PRODUCT_KEYS)
    assert "any problem" in connections_table.Selection(outcomes=frozenset({connections_table.ANY_PROBLEM})).describe()


def test_an_unset_environment_is_blank_never_none(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, "no-environment", ())
    assert set(status.table(engine)["environment"]) == {""}


def test_each_connection_has_its_worst_status_and_compact_marks(engine: Engine, vault: Vault) -> None:
    failing = _add(engine, vault, "a-failing", ("cloud_storage", "cc_chat", "quality_management"))
    fine = _add(engine, vault, "b-fine", ("cloud_storage",))
    _add(engine, vault, "c-new", ("cloud_storage",))
    _store(engine, failing, {"cloud_storage": "rate_limited", "cc_chat": "timeout", "quality_management": "ok"})
    _store(engine, fine, {"cloud_storage": "ok", "cc_chat": "timeout"})  # chat not ticked: not its status
    table = status.table(engine)
    worst, marks = connections_table.summaries(table, status.verdicts(table))
    assert list(worst) == ["⏱️ Timed out +1 more", "✅ All OK", "⚪ Never tested"]  # an error outranks a wait
    assert [m.replace("\u2009", " ") for m in marks] == ["· · 🐢 ✅ ⏱️", "· · ✅ · ·", "· · ⚪ · ·"]


def _assert_same(derived: connections_table.Overview, built: connections_table.Overview) -> None:
    pd.testing.assert_frame_equal(derived.table, built.table)
    pd.testing.assert_frame_equal(derived.wide, built.wide)
    assert derived.stamp == built.stamp


def _shared(derived: connections_table.Overview, previous: connections_table.Overview) -> bool:
    """Whether ``derived`` holds the previous overview's own data where no check touched it."""
    return np.shares_memory(derived.wide["Secret set"].array.asi8, previous.wide["Secret set"].array.asi8)


def test_an_overview_follows_new_checks_row_by_row_and_equals_a_full_build(engine: Engine, vault: Vault) -> None:
    ticked = _add(engine, vault, "a-ticked", ("cloud_storage", "cc_chat"))
    untouched = _add(engine, vault, "b-untouched", ())
    quiet = _add(engine, vault, "c-quiet", ("cloud_storage",))
    overview = connections_table.Overview.build(engine, status.data_stamp(engine))  # nothing tested yet
    steps = [
        (ticked, {"cloud_storage": "ok", "cc_chat": "ok"}),
        (quiet, {"cloud_storage": "ok", "cc_chat": "timeout"}),  # chat not ticked: information
        (ticked, {"cloud_storage": "timeout"}),  # ok to failing
        (untouched, {"quality_management": "ok"}),  # a never-tested product's first result
        (ticked, {"token": "invalid_credentials", "cc_chat": "rate_limited"}),  # the token step is not shown
        (quiet, {"token": "ok"}),  # a token step alone
    ]
    for view, outcomes in steps:
        _store(engine, view, outcomes)
        stamp = status.data_stamp(engine)
        derived = overview.updated(engine, stamp)
        _assert_same(derived, connections_table.Overview.build(engine, stamp))
        # derived, not rebuilt: what no check touches is the previous overview's own data
        assert _shared(derived, overview)
        overview = derived
    with write_session(engine) as session:  # two results of one pair in one batch: the last wins
        checks.store(
            session,
            [
                CheckRecord(quiet.id, "", "cloud_storage", outcome, 200, 40, "", utcnow(), "r")
                for outcome in ("timeout", "ok", "rate_limited")
            ],
            {},
            "test",
        )
    stamp = status.data_stamp(engine)
    overview = overview.updated(engine, stamp)
    _assert_same(overview, connections_table.Overview.build(engine, stamp))
    assert dict(zip(overview.wide["Name"], overview.wide["Status"], strict=True))["c-quiet"].startswith("🐢")
    assert overview.updated(engine, stamp) is overview  # nothing new: the same object


def _writers_held_up(engine: Engine) -> Callable[[], bool]:
    """Whether a write transaction of another thread waits for the one open now: on PostgreSQL,
    a session waiting for a lock; on SQLite, a BEGIN IMMEDIATE begun (it waits for as long as
    another transaction writes)."""
    if engine.dialect.name == "postgresql":
        return lambda: waiting_for_locks(engine) > 0
    begun, this_thread = threading.Event(), threading.get_ident()

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement == "BEGIN IMMEDIATE" and threading.get_ident() != this_thread:
            begun.set()

    event.listen(engine, "before_cursor_execute", seen)
    return begun.is_set


def test_transactions_storing_checks_commit_in_batch_order_so_an_overview_misses_none(
    engine: Engine, vault: Vault
) -> None:
    """A transaction that stores checks holds its batch number until it commits; a second one
    waits for it, so it cannot commit first with a higher number and have the first one's
    checks (lower ids on PostgreSQL) slip behind an overview that saw the second."""
    first, second = _add(engine, vault, "a-first", ("cloud_storage",)), _add(engine, vault, "b-second", ("cc_chat",))
    overview = connections_table.Overview.build(engine, status.data_stamp(engine))
    held_up = _writers_held_up(engine)
    with ThreadPoolExecutor(1) as pool, write_session(engine) as session:
        checks.store(
            session,
            [CheckRecord(first.id, "", "cloud_storage", "timeout", None, 30000, "", utcnow(), "r1")],
            {},
            "test",
        )
        later = pool.submit(_store, engine, second, {"cc_chat": "ok"})
        eventually(held_up, what="the second batch to wait for the first")
        assert not later.done()  # waits for the first batch to commit
        seen = overview.updated(engine, status.data_stamp(engine))
        _assert_same(seen, overview)  # neither is committed yet
    later.result(timeout=30)
    stamp = status.data_stamp(engine)
    assert stamp.batch == overview.stamp.batch + 2
    caught_up = seen.updated(engine, stamp)
    _assert_same(caught_up, connections_table.Overview.build(engine, stamp))
    assert dict(zip(caught_up.wide["Name"], caught_up.wide["Status"], strict=True))["a-first"].startswith("⏱️")


def test_an_overview_is_built_afresh_when_a_connection_changes_or_too_much_was_stored(
    engine: Engine, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _add(engine, vault, "a-first", ("cloud_storage",))
    overview = connections_table.Overview.build(engine, status.data_stamp(engine))
    _add(engine, vault, "b-second", ())
    _store(engine, first, {"cloud_storage": "ok"})
    stamp = status.data_stamp(engine)
    rebuilt = overview.updated(engine, stamp)
    _assert_same(rebuilt, connections_table.Overview.build(engine, stamp))
    assert list(rebuilt.wide["Name"]) == ["a-first", "b-second"]
    monkeypatch.setattr(connections_table, "MAX_CHANGES", 1)
    _store(engine, first, {"cloud_storage": "timeout", "cc_chat": "ok"})
    stamp = status.data_stamp(engine)
    rebuilt_again = rebuilt.updated(engine, stamp)
    _assert_same(rebuilt_again, connections_table.Overview.build(engine, stamp))
    assert not _shared(rebuilt_again, rebuilt)
