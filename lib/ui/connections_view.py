"""The connections page: metrics, the status table, bulk tests, export, and one connection's
detail with a Test button per product (each in a fragment, so one test reruns one row)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS
from lib.kernel.errors import NotFoundError
from lib.kernel.words import count
from lib.kernel.words import shown as shown_at  # `shown` names the rows on show here
from lib.services import alerts, connections
from lib.services.checking import checks
from lib.services.checking.checks import Progress
from lib.services.connections import ConnectionView
from lib.services.guard.access import Permission, Principal
from lib.services.history import latency, rollups, status
from lib.services.history.status import NEVER_TESTED, SETTINGS_CHANGED, CheckRecord, history
from lib.services.reporting import connections_table, export
from lib.services.runtime import Runtime
from lib.ui import maintenance_view, schedule_view
from lib.ui.account import proven
from lib.ui.connect_form import EDIT_PARAM
from lib.ui.context import Console, acting, deferred, prober
from lib.ui.history_chart import history_chart, history_frame, latency_chart, latency_frame
from lib.ui.outcomes import badge, explain
from lib.ui.text import literal

_SUMMARY = "connections.summary"
OPEN_PARAM = "connection"  # /connections?connection=NAME opens that connection
RUN_PARAM = "run"  # the bulk test run this page started, while it runs
# Beside the table, where the marks are read: every mark the Products column can show.
PRODUCTS_LEGEND = (
    "Products: one mark per product, in this order: "
    + ", ".join(p.name for p in PRODUCTS.values())
    + ". Marks: "
    + ", ".join(f"{mark} {meaning}" for mark, meaning in connections_table.MARKS)
    + "."
)
# Measured in Chromium, the table's 14 px Source Sans draws a capital in about 7.3 px, a CJK
# character in 9 and an emoji in 15 (see name_width).
_NAME_PX_PER_CHAR, _WIDE_BYTE_PX, _CELL_PADDING_PX = 7.5, 2.5, 24
_NAME_MIN_PX = 112  # with Status and Products, fits a phone's 400 px
_NAME_MAX_PX = 1000  # the widest column Streamlit's table draws
NO_VALUE = "—"  # what a table shows where there is no figure (no check in an uptime window)
UPTIME_FORMAT = "%.1f %%"  # rollups.percent, one decimal
WINDOW_NAMES = {"24h": "24 h", "7d": "7 d", "30d": "30 d", "90d": "90 d"}  # rollups.WINDOWS as people read them
COUNTED_HELP = "ticked products only (all five when none is ticked)"


def _age_days(when: datetime) -> int:
    return (datetime.now(UTC) - when).days


# --- overview -----------------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def _overviews(database_url: str) -> connections_table.LatestOverview:
    """The newest overview of a database, shared by every session:
    lib.services.reporting.connections_table brings it up to date (only the rows new checks
    touch, when only checks were stored since). Kept by Streamlit's resource cache so that
    clearing it clears this too. Hints only: nothing secret. cache_data would pickle it once
    and unpickle it at every rerun, a third of a rerun at 10,000 connections."""
    return connections_table.LatestOverview()


def name_width(names: pd.Series) -> int:
    """Pixels that show the longest of ``names`` whole: about 7.5 px a character, plus 2.5 px for
    each UTF-8 byte past the first (accented letters, CJK and emoji are drawn wider), within the
    table's limits. Streamlit unpins a pinned column wider than 60 % of the table, so on a phone
    a long name scrolls with the rest rather than covering it."""
    chars = names.str.len()
    octets = names.str.encode("utf-8").str.len()  # type: ignore[misc]  # pandas-stubs types .str of bytes as of str
    need = float((_NAME_PX_PER_CHAR * chars + _WIDE_BYTE_PX * (octets - chars)).max()) if len(names) else 0.0
    return int(min(max(need + _CELL_PADDING_PX, _NAME_MIN_PX), _NAME_MAX_PX))


def _metrics(verdicts: pd.Series, count: int) -> None:
    """Counts of the products the admins ticked, for the connections shown."""
    counts = verdicts.value_counts()
    figures = {
        "Connections": count,
        "Products OK": counts.get(status.Verdict.OK, 0),
        "Products failing": counts.get(status.Verdict.FAILING, 0),
        "Never tested": counts.get(status.Verdict.NEVER_TESTED, 0),
    }
    with st.container(horizontal=True, gap="medium"):  # wraps two by two on a phone
        for label, value in figures.items():
            st.metric(label, f"{int(value):,}", width=150)


_OUTCOME_CHOICES = (
    {"Any problem": connections_table.ANY_PROBLEM}
    | {badge(k): k for k in OUTCOMES}
    | {"Never tested": NEVER_TESTED, connections_table.NAMES[SETTINGS_CHANGED]: SETTINGS_CHANGED}
)


def _selection(wide: pd.DataFrame) -> connections_table.Selection:
    environments = sorted(e for e in wide["Environment"].unique() if e)
    cols = st.columns([2, 1, 2])
    search = cols[0].text_input("Search by name", key="conn_search", placeholder="Name contains…")
    chosen_env = cols[1].multiselect("Environment", environments, key="conn_env_filter")
    chosen_outcomes = cols[2].multiselect(
        "Outcome",
        list(_OUTCOME_CHOICES),
        key="conn_outcome_filter",
        help="Connections with a ticked product in any of these states.",
    )
    return connections_table.Selection(
        search.strip(), frozenset(chosen_env), frozenset(_OUTCOME_CHOICES[label] for label in chosen_outcomes)
    )


@dataclass(frozen=True)
class Shown:
    """What the filters select: the connections' rows of the table and the wide view."""

    verdicts: pd.Series
    wide: pd.DataFrame


def _apply(selection: connections_table.Selection, overview: connections_table.Overview) -> Shown:
    """The connections ``selection`` picks, with the secret's age worked out for today."""
    table, wide = overview.table, overview.wide
    rows = selection.rows(table, table["verdict"])
    shown = wide[rows[:: len(PRODUCT_KEYS)]].copy()
    now = pd.Timestamp.now(tz="UTC")
    where = list(shown.columns).index("Secret set")
    age = (now - pd.to_datetime(shown.pop("Secret set"), utc=True)).dt.days
    shown.insert(where, "Secret age (days)", age)
    # No label: a dash (Streamlit draws an empty label of a category column as "None").
    shown["Environment"] = shown["Environment"].astype(object).fillna("").replace("", "—").astype("category")
    return Shown(table["verdict"][rows], shown)


def _run_bulk(rt: Runtime, me: Principal, ids: list[uuid.UUID] | None, what: str) -> None:
    """Runs in the page body, right after the page's guard: ``me`` is this run's. While the
    run lasts, its id is in the page's address: a page that loses its server meanwhile (and
    reconnects to another instance, or is reloaded) finds it there and says what became of it."""
    bar = st.progress(0.0, text=f"Testing {what}…")

    def step(progress: Progress) -> None:
        bar.progress(
            progress.done / max(progress.total, 1), text=f"Tested {progress.done} of {progress.total} products"
        )

    run_id = str(uuid.uuid4())
    st.query_params[RUN_PARAM] = run_id
    report = checks.run_checks(rt, prober(), connection_ids=ids, triggered_by=me, on_progress=step, run_id=run_id)
    del st.query_params[RUN_PARAM]
    bar.empty()
    failing = sum(1 for r in report.products if not r.ok)
    tested = len(report.products)
    said = f"Tested {count(tested, 'product')} of {what}: {tested - failing:,} OK, {failing:,} failing."
    st.session_state[_SUMMARY] = (said, failing > 0)


def _unreported(rt: Runtime, me: Principal, run_id: str) -> tuple[str, bool]:
    """What became of a run this page started and never heard the end of."""
    run = checks.stored_run(rt.engine, run_id, actor=me)
    when = f" at {shown_at(run.started_at)}" if run.started_at else ""
    tested = count(run.products, "product")
    if run.finished:
        said = (
            f"The test run started{when} finished: {tested} tested, {run.products - run.failing:,} OK, "
            f"{run.failing:,} failing."
        )
        return said, run.failing > 0
    said = (
        f"The test run started{when} was interrupted: the server running it stopped, or this page lost its "
        f"connection to it. {tested} had been tested; those results are kept and shown below. The others "
        "were not tested: test again to check them."
    )
    return said, True


def _bulk(rt: Runtime, me: Principal, shown: pd.DataFrame, total: int) -> bool:
    """The bulk test buttons; True when a test ran in this run. "Test shown" tests the
    connections the search and filters select (all of them when nothing is filtered)."""
    cols = st.columns([1, 1, 2], vertical_alignment="center")
    ran = False
    if not me.can(Permission.RUN_TESTS):
        return ran
    why_not = _why_not_test_shown(len(shown), total)
    if why_not:
        cols[2].caption(why_not)
    if cols[0].button(
        f"Test shown ({len(shown)})",
        key="conn_test_shown",
        disabled=why_not is not None,
        icon=":material/playlist_play:",
        help=why_not or "Tests the connections the search and filters select.",
    ):
        _run_bulk(rt, me, [uuid.UUID(i) for i in shown.index], count(len(shown), "connection"))
        ran = True
    if cols[1].button("Test all connections", key="conn_test_all", type="primary", icon=":material/play_arrow:"):
        _run_bulk(rt, me, None, "all connections")
        ran = True
    if (unreported := st.query_params.get(RUN_PARAM)) is not None:
        del st.query_params[RUN_PARAM]
        if _is_run_id(unreported):
            st.session_state[_SUMMARY] = _unreported(rt, me, unreported)
    summary = st.session_state.get(_SUMMARY)
    if summary:
        message, failing = summary
        (st.warning if failing else st.success)(message, icon=":material/fact_check:")
    return ran


def _why_not_test_shown(shown: int, total: int) -> str | None:
    """Why "Test shown" cannot be pressed now, in the words the admin sees beside it; None when it can."""
    if shown == 0:
        return "Test shown is off: the search and filters show no connection. Change them to test a subset."
    if shown == total:
        return (
            "Test shown is off: every connection is shown. Filter the table to test a subset; "
            "Test all connections tests every one."
        )
    return None


def _is_run_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


_EXPORT_SCOPES = ("What is shown", "Everything")


def _export_file(fmt: str, chosen: connections_table.Selection | None, now: Console) -> bytes:
    """The download's bytes in ``fmt``, for whoever is signed in at the click (``now``)."""
    return export.export(now.rt.engine, fmt, actor=now.me, selection=chosen).data


def _export_buttons(me: Principal, selection: connections_table.Selection, shown: int, total: int) -> None:
    """Downloads of what the filters show (or, chosen explicitly, of every connection). The
    selection is data, not a principal: who may export is asked again at the click."""
    if not me.can(Permission.EXPORT):
        return
    cols = st.columns([2, 1, 1, 1])
    scope = cols[0].radio(
        "Export",
        _EXPORT_SCOPES,
        horizontal=True,
        key="export_scope",
        captions=(count(shown, "connection"), count(total, "connection")),
    )
    chosen = selection if scope == _EXPORT_SCOPES[0] else None
    for col, fmt, label in zip(cols[1:], ("csv", "json", "xlsx"), ("CSV", "JSON", "Excel"), strict=True):
        spec = export.FORMATS[fmt]
        col.download_button(
            f"Export {label}",
            file_name=export.file_name(fmt),
            mime=spec.mime,
            key=f"export_{fmt}",
            data=deferred(Permission.EXPORT, partial(_export_file, fmt, chosen)),
            on_click="ignore",
            icon=":material/download:",
            width="stretch",
        )


# --- one connection -----------------------------------------------------------------------


def _still_there(rt: Runtime, connection_id: uuid.UUID) -> ConnectionView | None:
    """The connection as stored now; None, saying so, when it was deleted meanwhile."""
    try:
        return connections.get(rt.engine, connection_id)
    except NotFoundError:
        st.caption("This connection was deleted meanwhile.")
        return None


def _product_row(
    product: str,
    view: ConnectionView,
    record: CheckRecord | None,
    alerting: bool,
    name_col: DeltaGenerator,
    outcome_col: DeltaGenerator,
) -> None:
    ticked = (
        "No product ticked: all are tested"
        if not view.expected_products
        else "Ticked for this app"
        if product in view.expected_products
        else "Not ticked: information only"
    )
    granted = (
        "not asked yet"
        if view.granted_products is None
        else "granted"
        if product in view.granted_products
        else "not granted"
    )
    earlier = record is not None and record.made_with_earlier_settings(view.settings_version)
    shown = SETTINGS_CHANGED if earlier else record.outcome if record else None
    name_col.markdown(f"**{PRODUCTS[product].name}**  \n{badge(shown)}")
    name_col.caption(
        f"{ticked} · 8x8: {granted}"
        + (
            f" · :material/notifications_active: alert open{' (raised with earlier settings)' if earlier else ''}"
            if alerting
            else ""
        )
    )
    with outcome_col:
        if record is None:
            st.caption(f"Not tested yet. The test: {PRODUCTS[product].tests_what}")
        elif earlier:
            st.caption(
                f"The settings changed after the last test ({shown_at(record.checked_at)}, "
                f"{OUTCOMES[record.outcome].label}), so its result no longer counts. The next scheduled "
                "check tests the settings as they are now; or press Test."
            )
        else:
            explain(record.outcome, record.detail)
            st.caption(f"HTTP {record.http_status or '—'} · {record.duration_ms} ms · {shown_at(record.checked_at)}")


@st.fragment
def _products(connection_id: uuid.UUID) -> None:
    """One row per product, each with its Test button, and the history below them: a Test
    reruns this fragment only, so the row and the history show the new run together."""
    rt, me = acting(Permission.READ_STATUS)
    if (view := _still_there(rt, connection_id)) is None:
        return
    cells: dict[str, tuple[DeltaGenerator, DeltaGenerator]] = {}
    tested = None
    for product in PRODUCT_KEYS:
        with st.container(key=f"product_{product}", border=True):
            name_col, outcome_col, button_col = st.columns([3, 6, 1])
        cells[product] = (name_col, outcome_col)
        if me.can(Permission.RUN_TESTS) and button_col.button(
            "Test", key=f"test_{product}", icon=":material/play_arrow:"
        ):
            tested = product
    if tested is not None:
        with cells[tested][1], st.spinner(f"Testing {PRODUCTS[tested].name}…"):
            checks.run_checks(rt, prober(), connection_ids=[view.id], product=tested, triggered_by=me)
    records = [r for r in history(rt.engine, view.id, limit=500) if r.product in PRODUCTS]  # newest first
    # The newest result of each product made with the settings as they are, else its newest.
    latest = {r.product: r for r in reversed(records)} | {
        r.product: r for r in reversed(records) if not r.made_with_earlier_settings(view.settings_version)
    }
    alerting = {p for _, p in alerts.alerting(rt.engine, actor=me, connection_id=view.id)}
    for product, (name_col, outcome_col) in cells.items():
        _product_row(product, view, latest.get(product), product in alerting, name_col, outcome_col)
    counted = [p for p in PRODUCT_KEYS if not view.expected_products or p in view.expected_products]
    _uptime(rt, me, view.id, counted)
    frame = history_frame(records, view.settings_version)
    if not frame.empty:
        st.altair_chart(history_chart(frame), key="history_chart")
    _latency(rt, me, view.id, counted)
    _history(frame)


_DELETING = "connections.deleting"  # the id whose delete dialog is open
_DELETED = "connections.deleted"  # what the last delete removed, said once on the page


def _close_delete_dialog() -> None:
    acting(Permission.READ_STATUS)
    st.session_state.pop(_DELETING, None)


@st.dialog("Delete connection", on_dismiss=_close_delete_dialog)
def _delete_dialog(connection_id: uuid.UUID) -> None:
    """Password (when the last proof is older than a few minutes), then the typed name, then
    deleted: each step is drawn by the rerun of this dialog that the step before caused."""
    rt, me = acting(Permission.MANAGE_CONNECTIONS)
    if (view := _still_there(rt, connection_id)) is None:
        return
    st.write(
        f"This deletes **{literal(view.name)}**, its encrypted credentials and its test history. "
        "The API app in 8x8 is not touched."
    )
    if not proven(me, f"delete {literal(view.name)}"):
        return
    # A form: the typed name travels with the click on Delete (or Enter), never a step behind it.
    with st.form("delete_form", border=False):
        typed = st.text_input(
            "Type the connection's name to confirm",
            key="delete_confirm",
            help="Capitals and spaces around the name do not matter, as names are unique ignoring capitals.",
        )
        confirmed = st.form_submit_button("Delete", key="delete_confirm_button", type="primary")
    if not confirmed:
        return
    if not _names(rt, typed, view):
        st.error(
            f"The name does not match. Type **{literal(view.name)}** (capitals do not matter), then Delete.",
            icon=":material/error:",
        )
        return
    try:
        connections.delete(rt.engine, view.id, actor=me)
    except NotFoundError:
        pass
    st.session_state.pop(_DELETING, None)
    st.session_state.pop("conn_detail", None)
    st.session_state[_DELETED] = view.name
    st.rerun()


def _names(rt: Runtime, typed: str, view: ConnectionView) -> bool:
    """Whether ``typed`` names the connection ``view``, by the rule every name lookup follows
    (capitals and surrounding spaces ignored): names are unique by that rule, so no other
    connection answers to it."""
    try:
        return connections.find_by_name(rt.engine, typed).id == view.id
    except NotFoundError:
        return False


def _uptime(rt: Runtime, me: Principal, connection_id: uuid.UUID, counted: list[str]) -> None:
    """The share of tests that were OK per product that counts, over each window, from the
    rollups (so beyond the tests listed below)."""
    found = rollups.connection_uptime(rt.engine, connection_id, counted, actor=me)
    table = found.rename(columns=WINDOW_NAMES).set_axis([PRODUCTS[p].name for p in found.index])
    st.caption(f"Uptime: the share of tests that were OK, {COUNTED_HELP}; {NO_VALUE} where none was made.")
    st.dataframe(
        table.rename_axis("Product").reset_index(),
        hide_index=True,
        width="stretch",
        key="uptime_table",
        placeholder=NO_VALUE,
        column_config={name: st.column_config.NumberColumn(format=UPTIME_FORMAT) for name in WINDOW_NAMES.values()},
    )


def _latency(rt: Runtime, me: Principal, connection_id: uuid.UUID, counted: list[str]) -> None:
    """p50 and p95 response times over a chosen window, from the rollups: hours up to 7 days,
    days beyond, so the history shown reaches past the newest 500 tests."""
    window = st.radio(
        "Response times over",
        list(WINDOW_NAMES),
        index=1,
        format_func=WINDOW_NAMES.__getitem__,
        horizontal=True,
        key="latency_window",
    )
    found = latency.over(rt.engine, connection_id, counted, window, actor=me)
    if found.empty:
        st.caption(f"No tests in the last {WINDOW_NAMES[window]}.")
        return
    step = "hour" if rollups.WINDOWS[window][0].days <= 7 else "day"
    title = f"Response time per {step}, last {WINDOW_NAMES[window]}"
    st.altair_chart(latency_chart(latency_frame(found), title), key="latency_chart")


def _history(frame: pd.DataFrame) -> None:
    """The newest tests (history_frame) as a table, folded away."""
    if frame.empty:
        return
    with st.expander(f"History: {count(len(frame), 'test')}, newest first", icon=":material/table_rows:"):
        st.dataframe(frame.drop(columns=["Checked at", "Kind"]), hide_index=True, width="stretch", key="history_table")


def _detail(rt: Runtime, me: Principal, view: ConnectionView) -> None:
    st.subheader(literal(view.name), anchor=False)
    st.caption(
        f"{literal(view.environment) or 'no environment label'} · Client ID {literal(view.client_id_hint)} · "
        f"secret set {count(_age_days(view.secret_set_at), 'day')} ago"
    )
    schedule_view.connection_line(rt, me, view)
    maintenance_view.connection_line(rt, me, view)
    cols = st.columns([2, 1, 1, 4])
    if me.can(Permission.RUN_TESTS) and cols[0].button(
        "Test all products", key="detail_test_all", type="primary", icon=":material/play_arrow:"
    ):
        report = checks.run_checks(rt, prober(), connection_ids=[view.id], triggered_by=me)
        failing = sum(1 for r in report.products if not r.ok)
        st.toast(f"{literal(view.name)}: {len(report.products) - failing} OK, {failing} failing.")
    manages = me.can(Permission.MANAGE_CONNECTIONS)
    if manages and cols[1].button("Edit", key="detail_edit", icon=":material/edit:"):
        st.switch_page("pages/connect.py", query_params={EDIT_PARAM: view.name})
    if manages and cols[2].button("Delete", key="detail_delete", icon=":material/delete:"):
        st.session_state[_DELETING] = str(view.id)
    if st.session_state.get(_DELETING) == str(view.id):
        _delete_dialog(view.id)
    _products(view.id)


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    st.title("Connections")
    if deleted := st.session_state.pop(_DELETED, None):
        st.success(f"Deleted {literal(deleted)}.", icon=":material/delete:")
    if connections.count(rt.engine) == 0:
        if me.can(Permission.MANAGE_CONNECTIONS):
            st.info(
                "No connections yet. Add one on the Connect page; the Setup guide explains where the "
                "Client ID and Client Secret come from.",
                icon=":material/info:",
            )
            st.page_link("pages/connect.py", label="Add a connection", icon=":material/add_link:")
        else:
            st.info("No connections yet. A Switchboard admin adds them.", icon=":material/info:")
        return
    # Metrics and table are drawn after the bulk buttons ran, into slots above them.
    metrics_slot, filters_slot, table_slot = st.container(), st.container(), st.container()
    overview = _overviews(rt.settings.database_url).current(rt.engine)
    with filters_slot:
        selection = _selection(overview.wide)
    shown = _apply(selection, overview)
    if _bulk(rt, me, shown.wide, len(overview.wide)):
        overview = _overviews(rt.settings.database_url).current(rt.engine)
        shown = _apply(selection, overview)
    _export_buttons(me, selection, len(shown.wide), len(overview.wide))
    with metrics_slot:
        _metrics(shown.verdicts, len(shown.wide))
        schedule_view.caption(rt, me)
        maintenance_view.caption(rt, me)
    table_slot.dataframe(
        shown.wide,
        hide_index=True,
        width="stretch",
        key="conn_table",
        column_config={
            # Short names, worst status and the product marks fit a phone's 400 px side by side.
            "Name": st.column_config.TextColumn(pinned=True, width=name_width(shown.wide["Name"])),
            "Status": st.column_config.TextColumn(help="The worst status among the products ticked for it", width=160),
            "Products": st.column_config.TextColumn(help=PRODUCTS_LEGEND, width=108),
            "Secret age (days)": st.column_config.NumberColumn(format="%d", help="Days since the secret was saved"),
            "Last checked": st.column_config.TextColumn(help="The newest test of any of its products (UTC)"),
            connections_table.UPTIME_COLUMN: st.column_config.NumberColumn(
                format=UPTIME_FORMAT, help=f"Share of tests OK over the last 30 days, {COUNTED_HELP}; — no test"
            ),
        },
        placeholder=NO_VALUE,
    )
    table_slot.caption(PRODUCTS_LEGEND)
    st.divider()
    ids_by_name = dict(zip(shown.wide["Name"], shown.wide.index, strict=True))
    linked = st.query_params.get(OPEN_PARAM)
    if "conn_detail" not in st.session_state and linked in ids_by_name:
        st.session_state["conn_detail"] = linked  # a reload, or a link to this connection
    chosen = st.selectbox(
        "Open a connection",
        list(ids_by_name),
        index=None,
        key="conn_detail",
        placeholder="Choose a connection to test its products (search above narrows this list)…",
    )
    if chosen:
        st.query_params[OPEN_PARAM] = chosen
    elif linked is not None:
        del st.query_params[OPEN_PARAM]
    if chosen:
        _detail(rt, me, connections.get(rt.engine, uuid.UUID(ids_by_name[chosen])))
