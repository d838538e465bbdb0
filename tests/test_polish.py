"""Issue 22, "Polish": the connections page says why Test shown is off, explains every mark of
its Products column beside the table, shows names whole, and confirms a delete by the rule
names follow. AppTest against a real SQLite database and the simulator."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import update as sql_update
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Dataframe

from lib.catalogue.outcomes import OUTCOMES
from lib.services import connections
from lib.services.checking import checks
from lib.services.history import status
from lib.services.history.status import CheckRecord
from lib.services.reporting import connections_table
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import write_session
from lib.store.models import Connection, utcnow
from lib.ui.connections_view import name_width
from tests.fixtures.console import PageOpener, plain
from tests.fixtures.people import ADMIN
from tests.test_checks import form_for
from tests.test_pages import CONNECTIONS, everything, seed

# Measured in Chromium with the table's font (14 px Source Sans): NAME_MAX capitals draw 584 px
# wide, NAME_MAX CJK characters 731 px; a cell pads its text by 8 px on each side.
CAPITALS_PX, CJK_PX, PADDING_PX = 584, 731, 16


# --- 1. Test shown says why it is off -------------------------------------------------------


def test_test_shown_says_why_it_is_off_beside_it_and_on_hover(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    button = at.button(key="conn_test_shown")
    assert button.disabled and "every connection is shown" in button.help
    assert "Filter the table to test a subset" in button.help and "Test all connections" in button.help
    assert any(button.help == c.value for c in at.caption)  # said where the admin looks, not only on hover
    at.text_input(key="conn_search").input("nothing is called this").run()
    button = at.button(key="conn_test_shown")
    assert button.disabled and "show no connection" in button.help
    assert any(button.help == c.value for c in at.caption)
    at.text_input(key="conn_search").input("arch").run()
    button = at.button(key="conn_test_shown")
    assert not button.disabled and button.help == "Tests the connections the search and filters select."
    assert not any("Test shown is off" in c.value for c in at.caption)


# --- 2. a legend of every mark, beside the table ------------------------------------------------


def _every_state(rt: Runtime, simulator: SimulatorServer) -> None:
    """A connection per outcome (its one ticked product came back so), one never tested and
    one whose result was made with settings since changed; their other products not ticked."""
    app = everything(simulator)

    def ticking_storage(name: str) -> connections.ConnectionView:
        return connections.create(
            rt.engine, rt.vault, form_for(app, name, expected_products=("cloud_storage",)), actor=ADMIN
        )

    views = {outcome: ticking_storage(f"state {outcome}") for outcome in (*OUTCOMES, status.SETTINGS_CHANGED)}
    ticking_storage("state never tested")
    with write_session(rt.engine) as session:
        checks.store(
            session,
            [
                CheckRecord(
                    view.id,
                    "",
                    "cloud_storage",
                    outcome if outcome in OUTCOMES else "ok",
                    200,
                    40,
                    "",
                    utcnow(),
                    "r",
                    settings_version=1,
                )
                for outcome, view in views.items()
            ],
            {view.id: frozenset({"cloud_storage"}) for view in views.values()},
            "test",
        )
        session.exec(
            sql_update(Connection)
            .where(  # type: ignore[call-overload]
                Connection.id == views[status.SETTINGS_CHANGED].id
            )
            .values(settings_version=2)
        )


def _after_table(at: AppTest) -> str:
    """The first text drawn after the connections table."""
    nodes = [node for node in at.main if not isinstance(node, Block)]
    start = next(i for i, node in enumerate(nodes) if isinstance(node, Dataframe))
    return next(str(node.value) for node in nodes[start + 1 :] if isinstance(getattr(node, "value", None), str))


def test_every_mark_the_products_column_shows_is_explained_beside_the_table(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    _every_state(console_env, simulator)
    at = open_page(CONNECTIONS)
    assert not at.exception
    shown = {mark for marks in at.dataframe[0].value["Products"] for mark in marks.split("\u2009")}
    assert shown == {mark for mark, _ in connections_table.MARKS}  # every state the column can show is on the page
    legend = plain(_after_table(at))
    assert legend.startswith("Products: one mark per product, in this order: CC Realtime Analytics, ")
    for mark, meaning in connections_table.MARKS:
        assert f"{mark} {meaning}" in legend, (mark, meaning)
    for outcome in OUTCOMES.values():
        assert f"{outcome.icon} {outcome.label}" in legend
    products_help = json.loads(at.dataframe[0].proto.columns)["Products"]["help"]
    assert plain(products_help) == legend


# --- 3. names are readable whole ----------------------------------------------------------


def _column_width(at: AppTest, column: str) -> int:
    return int(json.loads(at.dataframe[0].proto.columns)[column]["width"])


def test_a_name_of_the_longest_allowed_length_fits_its_column(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    longest = ("PRODUCTION REPORTING " * 4)[: connections.NAME_MAX]
    connections.create(console_env.engine, console_env.vault, form_for(everything(simulator), longest), actor=ADMIN)
    at = open_page(CONNECTIONS)
    assert at.dataframe[0].value["Name"].tolist() == [longest]
    assert _column_width(at, "Name") >= CAPITALS_PX + PADDING_PX


def test_short_names_keep_the_narrow_column_a_phone_needs(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    assert _column_width(open_page(CONNECTIONS), "Name") == 112


def test_the_name_column_is_as_wide_as_the_widest_name_in_any_script() -> None:
    most = connections.NAME_MAX
    assert name_width(pd.Series(["Archive", "B" * most])) >= CAPITALS_PX + PADDING_PX
    assert name_width(pd.Series(["漢" * most])) >= CJK_PX + PADDING_PX
    assert name_width(pd.Series(["Reporting", "Archive"])) == name_width(pd.Series([], dtype=object)) == 112
    assert name_width(pd.Series(["😀" * most])) == 1000  # as wide as Streamlit draws a column


# --- 6. the delete confirmation compares as names are compared --------------------------------


def test_delete_accepts_the_name_as_lookups_read_it_and_says_so(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    at.selectbox(key="conn_detail").set_value("Archive").run()
    at.button(key="detail_delete").click().run()
    assert "Capitals" in at.text_input(key="delete_confirm").help
    at.text_input(key="delete_confirm").input("Archiv")
    at.button(key="delete_confirm_button").click().run()
    message = plain(at.error[0].value)
    assert "The name does not match" in message and "capitals do not matter" in message
    assert "capitals count" not in message
    assert len(connections.list_connections(console_env.engine)) == 2
    at.text_input(key="delete_confirm").input("  ARCHIVE ")  # names are unique ignoring capitals
    at.button(key="delete_confirm_button").click().run()
    assert not at.exception
    assert [v.name for v in connections.list_connections(console_env.engine)] == ["Everything"]
    assert [s.value for s in at.success] == ["Deleted Archive."]
