"""The connections page: metrics, the status table, bulk tests, export, and one connection's
detail with a Test button per product (each in a fragment, so one test reruns one row)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import streamlit as st
from sqlalchemy import Engine
from streamlit.delta_generator import DeltaGenerator

from lib import checks, connections, export, status
from lib.access import Permission, Principal
from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS
from lib.checks import Progress
from lib.connections import ConnectionView
from lib.errors import NotFoundError
from lib.runtime import Runtime
from lib.status import NEVER_TESTED, CheckRecord, data_stamp, history
from lib.ui.account import proven
from lib.ui.connect_form import EDIT_ID
from lib.ui.outcomes import badge, explain
from lib.ui.runtime import Console, acting, deferred, prober
from lib.ui.text import literal

_SUMMARY = "connections.summary"
_NOT_EXPECTED = "—"


def _age_days(when: datetime) -> int:
    return (datetime.now(UTC) - when).days


# --- overview -----------------------------------------------------------------------------


@st.cache_data(max_entries=4, show_spinner=False)
def _overview(_engine: Engine, database_url: str, stamp: tuple[object, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long: one row per connection and product; wide: one row per connection), rebuilt only
    when ``stamp`` (lib.status.data_stamp) changes. Hints only: nothing secret is cached."""
    table = status.table(_engine, details=False)
    relevant = status.relevant(table)
    long = pd.DataFrame({"id": table["connection_id"], "relevant": relevant, "checked": status.checked(table),
                         "outcome": table["outcome"]})
    per_product = len(PRODUCT_KEYS)  # the table has exactly this many rows per connection, in order
    shown = table["outcome"].map(status.LABELS).where(relevant, _NOT_EXPECTED).to_numpy().reshape(-1, per_product)
    first = table.iloc[::per_product].reset_index(drop=True)
    last_checked = table["checked_at"].groupby(table.index // per_product).max()  # stays a datetime column
    wide = pd.DataFrame({
        "Name": first["connection"], "Environment": first["environment"], "Client ID": first["client_id_hint"],
        "Secret set": first["secret_set_at"], "Last checked": last_checked,
        **{PRODUCTS[key].name: shown[:, i] for i, key in enumerate(PRODUCT_KEYS)},
    }).set_axis(first["connection_id"].to_numpy())
    # A handful of distinct labels per column: dictionary-encoded, the table travels small.
    labelled = ["Environment", *(p.name for p in PRODUCTS.values())]
    return long, wide.astype({column: "category" for column in labelled})


def _metrics(long: pd.DataFrame, count: int) -> None:
    relevant = long[long["relevant"]]
    cols = st.columns(4)
    cols[0].metric("Connections", count)
    cols[1].metric("Products OK", int((relevant["outcome"] == "ok").sum()))
    cols[2].metric("Products failing", int((relevant["checked"] & (relevant["outcome"] != "ok")).sum()))
    cols[3].metric("Never tested", int((~relevant["checked"]).sum()))


@dataclass(frozen=True)
class Filters:
    search: str
    environments: tuple[str, ...]
    outcomes: frozenset[str]


_OUTCOME_LABELS = {badge(k): k for k in OUTCOMES} | {"Never tested": NEVER_TESTED}


def _filter_widgets(wide: pd.DataFrame) -> Filters:
    environments = sorted(e for e in wide["Environment"].unique() if e)
    cols = st.columns([2, 1, 2])
    search = cols[0].text_input("Search by name", key="conn_search", placeholder="Name contains…")
    chosen_env = cols[1].multiselect("Environment", environments, key="conn_env_filter")
    chosen_outcomes = cols[2].multiselect("Outcome", list(_OUTCOME_LABELS), key="conn_outcome_filter")
    return Filters(search, tuple(chosen_env), frozenset(_OUTCOME_LABELS[label] for label in chosen_outcomes))


def _apply(filters: Filters, long: pd.DataFrame, wide: pd.DataFrame) -> pd.DataFrame:
    """The connections the filters select, with the secret's age worked out for today."""
    keep = pd.Series(True, index=wide.index)
    if filters.search:
        keep &= wide["Name"].str.casefold().str.contains(filters.search.casefold(), regex=False)
    if filters.environments:
        keep &= wide["Environment"].isin(filters.environments)
    if filters.outcomes:
        hits = set(long.loc[long["relevant"] & long["outcome"].isin(filters.outcomes), "id"])
        keep &= wide.index.isin(list(hits))
    shown = wide[keep].copy()
    now = pd.Timestamp.now(tz="UTC")
    shown.insert(3, "Secret age (days)", (now - pd.to_datetime(shown.pop("Secret set"), utc=True)).dt.days)
    return shown


def _run_bulk(rt: Runtime, me: Principal, ids: list[uuid.UUID] | None, what: str) -> None:
    """Runs in the page body, right after the page's guard: ``me`` is this run's."""
    bar = st.progress(0.0, text=f"Testing {what}…")

    def step(progress: Progress) -> None:
        bar.progress(progress.done / max(progress.total, 1),
                     text=f"Tested {progress.done} of {progress.total} products")

    report = checks.run_checks(rt, prober(), connection_ids=ids, triggered_by=me, on_progress=step)
    bar.empty()
    failing = [r for r in report.products if not r.ok]
    st.session_state[_SUMMARY] = (len(report.products), len(failing), what)


def _bulk(rt: Runtime, me: Principal, shown: pd.DataFrame, total: int) -> bool:
    """The bulk test buttons; True when a test ran in this run. "Test shown" tests the
    connections the search and filters select (all of them when nothing is filtered)."""
    cols = st.columns([1, 1, 2])
    ran = False
    if not me.can(Permission.RUN_TESTS):
        return ran
    if cols[0].button(f"Test shown ({len(shown)})", key="conn_test_shown", disabled=len(shown) in (0, total),
                      icon=":material/playlist_play:", help="Tests the connections the search and filters select."):
        _run_bulk(rt, me, [uuid.UUID(i) for i in shown.index], f"{len(shown)} connection(s)")
        ran = True
    if cols[1].button("Test all connections", key="conn_test_all", type="primary", icon=":material/play_arrow:"):
        _run_bulk(rt, me, None, "all connections")
        ran = True
    summary = st.session_state.get(_SUMMARY)
    if summary:
        tested, failing, what = summary
        message = f"Tested {tested} product(s) of {what}: {tested - failing} OK, {failing} failing."
        (st.warning if failing else st.success)(message, icon=":material/fact_check:")
    return ran


def _export_buttons(me: Principal) -> None:
    if not me.can(Permission.EXPORT):
        return
    cols = st.columns(3)
    for col, fmt, label in zip(cols, ("csv", "json", "xlsx"), ("CSV", "JSON", "Excel"), strict=True):
        spec = export.FORMATS[fmt]
        col.download_button(f"Export {label}", file_name=export.file_name(fmt), mime=spec.mime, key=f"export_{fmt}",
                            data=deferred(Permission.EXPORT,
                                          lambda now, fmt=fmt: export.export(now.rt.engine, fmt, actor=now.me).data),
                            on_click="ignore", icon=":material/download:", width="stretch")


# --- one connection -----------------------------------------------------------------------


def _still_there(rt: Runtime, connection_id: uuid.UUID) -> ConnectionView | None:
    """The connection as stored now; None, saying so, when it was deleted meanwhile."""
    try:
        return connections.get(rt.engine, connection_id)
    except NotFoundError:
        st.caption("This connection was deleted meanwhile.")
        return None


def _product_row(product: str, view: ConnectionView, record: CheckRecord | None,
                 name_col: DeltaGenerator, outcome_col: DeltaGenerator) -> None:
    expected = "enabled by you" if product in view.expected_products else "not enabled by you"
    granted = ("unknown" if view.granted_products is None
               else "granted" if product in view.granted_products else "not granted")
    name_col.markdown(f"**{PRODUCTS[product].name}**  \n{badge(record.outcome if record else None)}")
    name_col.caption(f"{expected}; 8x8: {granted}")
    with outcome_col:
        if record is None:
            st.caption(f"Not tested yet. The test: {PRODUCTS[product].tests_what}")
        else:
            explain(record.outcome, record.detail)
            st.caption(f"HTTP {record.http_status or '–'} · {record.duration_ms} ms · "
                       f"{record.checked_at:%Y-%m-%d %H:%M:%S} UTC")


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
        if me.can(Permission.RUN_TESTS) and button_col.button("Test", key=f"test_{product}",
                                                               icon=":material/play_arrow:"):
            tested = product
    if tested is not None:
        with cells[tested][1], st.spinner(f"Testing {PRODUCTS[tested].name}…"):
            checks.run_checks(rt, prober(), connection_ids=[view.id], product=tested, triggered_by=me)
    records = [r for r in history(rt.engine, view.id, limit=500) if r.product in PRODUCTS]  # newest first
    latest = {r.product: r for r in reversed(records)}
    for product, (name_col, outcome_col) in cells.items():
        _product_row(product, view, latest.get(product), name_col, outcome_col)
    _history(records)


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
    st.write(f"This deletes **{literal(view.name)}**, its encrypted credentials and its test history. "
             "The API app in 8x8 is not touched.")
    if not proven(me, f"delete {literal(view.name)}"):
        return
    # A form: the typed name travels with the click on Delete (or Enter), never a step behind it.
    with st.form("delete_form", border=False):
        typed = st.text_input("Type the connection's name to confirm", key="delete_confirm")
        confirmed = st.form_submit_button("Delete", key="delete_confirm_button", type="primary")
    if not confirmed:
        return
    if typed != view.name:
        st.error(f"The name does not match. Type **{literal(view.name)}** exactly (capitals count), "
                 "then Delete.", icon=":material/error:")
        return
    try:
        connections.delete(rt.engine, view.id, actor=me)
    except NotFoundError:
        pass
    st.session_state.pop(_DELETING, None)
    st.session_state.pop("conn_detail", None)
    st.session_state[_DELETED] = view.name
    st.rerun()


def _history(records: list[CheckRecord]) -> None:
    if not records:
        return
    with st.expander("History: latency and outcome per product", icon=":material/show_chart:"):
        frame = pd.DataFrame({
            "checked_at": [r.checked_at for r in records],
            "product": [PRODUCTS[r.product].name for r in records],
            "latency_ms": [r.duration_ms for r in records],
            "outcome": [OUTCOMES[r.outcome].label for r in records],
        })
        st.line_chart(frame, x="checked_at", y="latency_ms", color="product")
        st.dataframe(frame, hide_index=True, width="stretch")


def _detail(rt: Runtime, me: Principal, view: ConnectionView) -> None:
    st.subheader(literal(view.name), anchor=False)
    st.caption(f"{literal(view.environment) or 'no environment label'} · Client ID {literal(view.client_id_hint)} · "
               f"secret set {_age_days(view.secret_set_at)} day(s) ago")
    cols = st.columns([2, 1, 1, 4])
    if me.can(Permission.RUN_TESTS) and cols[0].button("Test all products", key="detail_test_all", type="primary", icon=":material/play_arrow:"):
        report = checks.run_checks(rt, prober(), connection_ids=[view.id], triggered_by=me)
        failing = sum(1 for r in report.products if not r.ok)
        st.toast(f"{literal(view.name)}: {len(report.products) - failing} OK, {failing} failing.")
    manages = me.can(Permission.MANAGE_CONNECTIONS)
    if manages and cols[1].button("Edit", key="detail_edit", icon=":material/edit:"):
        st.session_state[EDIT_ID] = str(view.id)
        st.switch_page("pages/connect.py")
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
            st.info("No connections yet. Add one on the Connect page; the Setup guide explains where the "
                    "Client ID and Client Secret come from.", icon=":material/info:")
            st.page_link("pages/connect.py", label="Add a connection", icon=":material/add_link:")
        else:
            st.info("No connections yet. A Switchboard admin adds them.", icon=":material/info:")
        return
    # Metrics and table are drawn after the bulk buttons ran, into slots above them.
    metrics_slot, filters_slot, table_slot = st.container(), st.container(), st.container()
    long, wide = _overview(rt.engine, rt.settings.database_url, data_stamp(rt.engine))
    with filters_slot:
        filters = _filter_widgets(wide)
    shown = _apply(filters, long, wide)
    if _bulk(rt, me, shown, len(wide)):
        long, wide = _overview(rt.engine, rt.settings.database_url, data_stamp(rt.engine))
        shown = _apply(filters, long, wide)
    _export_buttons(me)
    with metrics_slot:
        _metrics(long, len(wide))
    table_slot.dataframe(
        shown, hide_index=True, width="stretch", key="conn_table",
        column_config={
            "Secret age (days)": st.column_config.NumberColumn(format="%d", help="Days since the secret was saved"),
            "Last checked": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", timezone="UTC"),
        },
    )
    st.divider()
    ids_by_name = dict(zip(shown["Name"], shown.index, strict=True))
    chosen = st.selectbox("Open a connection", list(ids_by_name), index=None, key="conn_detail",
                          placeholder="Choose a connection to test its products (search above narrows this list)…")
    if chosen:
        _detail(rt, me, connections.get(rt.engine, uuid.UUID(ids_by_name[chosen])))
