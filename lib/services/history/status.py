"""Connection status, read only: the current status of every (connection, product), one
connection's history, and a stamp that changes whenever either does.

The console's table, its metrics, every export and ``check --json`` read the same rows, so
they agree. The current status is a table of its own (kept by lib.services.checking.checks in the transaction
that stores each check), so reading it costs N x 5 rows at any size of history. The
Connections page's :class:`Overview` is built from it once, then follows the checks stored
since row by row. Nothing here decrypts anything or talks to 8x8.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, func
from sqlalchemy import cast as sql_cast
from sqlalchemy import select as sql_select
from sqlmodel import col

from lib.catalogue.outcomes import OUTCOMES, Judged, OutcomeKey
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS, TOKEN
from lib.kernel.words import SHOWN_FORMAT
from lib.store.db import read_session
from lib.store.models import Check, CheckCounter, Connection, CurrentStatus

NEVER_TESTED = "never_tested"
# The stored result was made before an edit changed what is tested (lib.services.connections): it no
# longer counts; the row waits for a check with the settings as they are now.
SETTINGS_CHANGED = "settings_changed"
UNTESTED = (NEVER_TESTED, SETTINGS_CHANGED)
# The cause of a row with no current result, as exports and the status API say it.
UNTESTED_CAUSES = {NEVER_TESTED: "Not tested yet.",
                   SETTINGS_CHANGED: "The settings changed after the last test, so its result no longer counts; "
                                     "the next scheduled check tests them."}


@dataclass(slots=True)
class CheckRecord(Judged):
    """One stored check, as the console, the CLI and exports read it."""

    connection_id: uuid.UUID
    connection: str
    product: str
    outcome: str
    http_status: int | None
    duration_ms: int
    detail: str
    checked_at: datetime
    run_id: str | None = None
    # The connection's settings version it was made with (lib.services.connections); None: the current one.
    settings_version: int | None = None

    def made_with_earlier_settings(self, settings_version: int) -> bool:
        """Made before an edit changed what is tested (the connection is at ``settings_version``
        now): no longer the current status."""
        return self.settings_version is not None and self.settings_version < settings_version


def _records(engine: Engine, query: Any) -> list[CheckRecord]:
    # Plain column tuples: loading ORM objects made this 10x slower at 50,000 rows.
    with read_session(engine) as session:
        return [CheckRecord(*row) for row in session.connection().execute(query).all()]


def latest_status(engine: Engine, *, include_token: bool = False) -> list[CheckRecord]:
    """The newest check of each (connection, product), by connection name, with the settings
    version it was made with (:meth:`CheckRecord.made_with_earlier_settings` says whether it
    still counts; :func:`table` applies it)."""
    query = (
        sql_select(CurrentStatus.connection_id, Connection.name, CurrentStatus.product, CurrentStatus.outcome,
                   CurrentStatus.http_status, CurrentStatus.duration_ms, CurrentStatus.detail,
                   CurrentStatus.checked_at, CurrentStatus.run_id, CurrentStatus.settings_version)
        .join(Connection, col(Connection.id) == col(CurrentStatus.connection_id))
        .order_by(Connection.name_key, CurrentStatus.product)
    )
    if not include_token:
        query = query.where(CurrentStatus.product != TOKEN)
    return _records(engine, query)


def history(engine: Engine, connection_id: uuid.UUID, *, limit: int = 500) -> list[CheckRecord]:
    """A connection's checks, newest first."""
    return _records(engine, sql_select(Check.connection_id, Connection.name, Check.product, Check.outcome,
                                       Check.http_status, Check.duration_ms, Check.detail, Check.started_at,
                                       Check.run_id, Check.settings_version)
                    .join(Connection, col(Connection.id) == col(Check.connection_id))
                    .where(Check.connection_id == connection_id)
                    .order_by(col(Check.id).desc())
                    .limit(limit))


@dataclass(frozen=True)
class Stamp:
    """Changes whenever checks are stored (``batch``, the last number CheckCounter gave out)
    or a connection is added, edited or removed, or 8x8's product list for it changes
    (``connections``): a cheap key for caching views of the status."""

    batch: int
    connections: tuple[object, ...]


def data_stamp(engine: Engine) -> Stamp:
    with read_session(engine) as session:
        conn = session.connection()
        batch = conn.execute(sql_select(CheckCounter.last)).scalar_one_or_none()
        connections_part = conn.execute(sql_select(func.count(), func.max(Connection.updated_at),
                                                   func.max(Connection.granted_at))).one()
    return Stamp(batch or 0, tuple(connections_part))


def _frame(engine: Engine, query: Any) -> pd.DataFrame:
    """The driver's own tuples: pandas probing SQLAlchemy Row objects costs more than the query."""
    with read_session(engine) as session:
        result = session.connection().execute(query)
        return pd.DataFrame(result.cursor.fetchall(), columns=list(result.keys()))


def _utc(column: pd.Series) -> pd.Series:
    """Stored times as text -> UTC times, in microseconds (what both databases keep) whatever
    the column holds: a column of no time at all would parse to seconds."""
    return pd.to_datetime(column, utc=True, format="ISO8601").dt.as_unit("us")


def _ticks(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Product lists as stored (JSON text, one per connection) -> (connections x products)
    booleans in PRODUCT_KEYS order, and which connections have no list at all (NULL). Each
    distinct list is parsed once: a fleet has only a few."""
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    parsed = [None if v is None or v is pd.NA else json.loads(v) for v in distinct]
    ticks = np.array([[key in (listed or ()) for key in PRODUCT_KEYS] for listed in parsed], dtype=bool)
    missing = np.array([listed is None for listed in parsed], dtype=bool)
    return ticks.reshape(-1, len(PRODUCT_KEYS))[codes], missing[codes]


# Ids are read as text (no UUID objects): this table is built for 10,000 connections at once.
_CONNECTIONS = sql_select(sql_cast(Connection.id, String).label("connection_id"),
                          Connection.name.label("connection"), Connection.environment,  # type: ignore[attr-defined]
                          Connection.client_id_hint, sql_cast(Connection.secret_set_at, String).label("secret_set_at"),
                          sql_cast(Connection.expected_products, String).label("expected_products"),
                          sql_cast(Connection.granted_products, String).label("granted_products"),
                          Connection.settings_version).order_by(Connection.name_key)
_CURRENT = (sql_cast(CurrentStatus.connection_id, String).label("connection_id"), CurrentStatus.product,
            CurrentStatus.outcome, sql_cast(CurrentStatus.checked_at, String).label("checked_at"),
            CurrentStatus.settings_version.label("made_with"))  # type: ignore[attr-defined]
_DETAILS = (CurrentStatus.detail, CurrentStatus.http_status, CurrentStatus.duration_ms)

COLUMNS = ("connection_id", "connection", "environment", "client_id_hint", "secret_set_at", "product", "expected",
           "in_scope", "granted", "outcome", "checked_at")
DETAIL_COLUMNS = ("detail", "http_status", "duration_ms")


def environment_key(label: str) -> str:
    """The rule that makes environment labels one label: case and surrounding blanks do not
    count ("Production", "production" and "PRODUCTION " are one environment). The console's,
    exports' and the status API's filters compare by it; ``switchboard check --environment``
    and alert routing compare the same way."""
    return label.strip().casefold()


def one_spelling(labels: pd.Series) -> pd.Series:
    """Each label in the one spelling its environment is shown in wherever status is read (the
    Connections table and its filter, exports, the status API): the spelling most of its
    connections use; on a tie, the first connection's (``labels`` in table order, by name).
    Stored labels stay as typed."""
    keys = labels.map(environment_key)
    counts = pd.DataFrame({"key": keys, "label": labels}).groupby(["key", "label"], sort=False).size()
    chosen = counts.sort_values(ascending=False, kind="stable").reset_index().drop_duplicates("key")
    return keys.map(dict(zip(chosen["key"], chosen["label"], strict=True)))


def table(engine: Engine, *, details: bool = True) -> pd.DataFrame:
    """One row per connection and product: what the admin ticked, what 8x8 granted (NA: not
    asked yet), whether a test of the whole connection covers it, and its current status
    (NEVER_TESTED when none). Exactly len(PRODUCT_KEYS) rows per connection, in product order,
    connections by name, so a column reshapes to (connections x products). Two queries, no
    per-row objects. ``details`` adds 8x8's words, the HTTP status and the latency."""
    found = _frame(engine, _CONNECTIONS)
    columns = [*COLUMNS, *(DETAIL_COLUMNS if details else ())]
    if found.empty:
        return pd.DataFrame(columns=columns)
    per = len(PRODUCT_KEYS)
    found["environment"] = one_spelling(found["environment"].fillna(""))  # unset: blank, never "None"
    frame = found.loc[found.index.repeat(per)].reset_index(drop=True)
    frame["product"] = list(PRODUCT_KEYS) * len(found)
    ticked, _ = _ticks(found["expected_products"])
    granted, never_asked = _ticks(found["granted_products"])
    frame["expected"] = ticked.ravel()
    frame["in_scope"] = (ticked | ~ticked.any(axis=1, keepdims=True)).ravel()  # none ticked: all five
    frame["granted"] = pd.array(granted.ravel(), dtype="boolean")
    frame.loc[np.repeat(never_asked, per), "granted"] = pd.NA
    frame["secret_set_at"] = _utc(frame["secret_set_at"])
    current = _frame(engine, sql_select(*_CURRENT, *(_DETAILS if details else ())).where(
        CurrentStatus.product != TOKEN)).astype({"connection_id": str, "product": str})
    frame = frame.merge(current, on=["connection_id", "product"], how="left", sort=False)
    frame["outcome"] = frame["outcome"].fillna(NEVER_TESTED).astype(str)  # text even when nothing was tested
    # A result made with earlier settings says nothing of now: its outcome, time and details go.
    earlier = (frame["made_with"] < frame["settings_version"]).fillna(False).to_numpy(dtype=bool)
    frame.loc[earlier, "outcome"] = SETTINGS_CHANGED
    frame.loc[earlier, "checked_at"] = None
    frame["checked_at"] = _utc(frame["checked_at"])
    if details:
        frame.loc[earlier, ["detail", "http_status", "duration_ms"]] = None
        frame["detail"] = frame["detail"].fillna("")
        frame = frame.astype({"http_status": "Int64", "duration_ms": "Int64"})
    return frame[columns]


def checked(frame: pd.DataFrame) -> pd.Series:
    """Rows whose current status is a result made with the settings as they are now."""
    return ~frame["outcome"].isin(UNTESTED)


class Verdict(StrEnum):
    """What a (connection, product) row counts as. Only the products the admin ticked count
    (all five for a connection with none ticked): a product 8x8 grants but nobody ticked is
    information, never a failure; a ticked product 8x8 does not grant is a failure."""

    OK = "ok"
    FAILING = "failing"
    NEVER_TESTED = "never tested"
    NOT_TICKED = "not ticked"


def verdicts(frame: pd.DataFrame) -> pd.Series:
    """One :class:`Verdict` per row of :func:`table`: the console's metrics, its Outcome filter,
    exports and ``check --json`` all count with this."""
    not_granted = frame["granted"].eq(False).fillna(False).to_numpy(dtype=bool)
    tested = checked(frame).to_numpy()
    ok = (frame["outcome"] == OutcomeKey.OK).to_numpy()
    choices = np.select(
        [~frame["in_scope"].to_numpy(dtype=bool), tested & ok, tested | not_granted],
        [Verdict.NOT_TICKED.value, Verdict.OK.value, Verdict.FAILING.value],
        Verdict.NEVER_TESTED.value)
    return pd.Series(choices, index=frame.index, name="verdict")


def explained(frame: pd.DataFrame, verdict: pd.Series) -> pd.Series:
    """The outcome that explains each row: the stored one, except that a ticked product 8x8's
    token does not grant, never tested, is explained as not enabled."""
    untested_failure = ((verdict == Verdict.FAILING) & ~checked(frame)).to_numpy()
    stored = frame["outcome"].to_numpy(dtype=object)
    return pd.Series(np.where(untested_failure, OutcomeKey.PRODUCT_NOT_ENABLED.value, stored), index=frame.index)


_RANK = {key: {"error": 2, "warning": 1, "success": 0}[o.severity] for key, o in OUTCOMES.items()}
CHANGED_ICON = "🔄"
NEVER_ICON = "⚪"
NOT_TICKED_MARK = "·"
_ICONS = {key: o.icon for key, o in OUTCOMES.items()} | {NEVER_TESTED: NEVER_ICON, SETTINGS_CHANGED: CHANGED_ICON}


def summaries(frame: pd.DataFrame, verdict: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per connection of :func:`table`: the worst status in words ("🚫 Product not enabled +1
    more", "✅ All OK", ...), and its products as icons in catalogue order (· not ticked,
    ⚪ never tested, 🔄 not tested since an edit) — a status that fits a phone's width. Built per distinct combination
    (a fleet has few), not per connection."""
    per = len(PRODUCT_KEYS)
    flat = verdict.to_numpy()
    verdicts = flat.reshape(-1, per)
    codes, keys = pd.factorize(explained(frame, verdict).to_numpy())
    failing, never, ok = (verdicts == v for v in (Verdict.FAILING, Verdict.NEVER_TESTED, Verdict.OK))
    changed = (keys == SETTINGS_CHANGED)[codes].reshape(-1, per)
    rank = np.where(failing, np.array([_RANK.get(k, -1) for k in keys])[codes].reshape(-1, per), -2)
    worst_code = codes.reshape(-1, per)[np.arange(len(verdicts)), rank.argmax(axis=1)]
    counts = [failing.sum(axis=1), changed.sum(axis=1), (never & ~changed).sum(axis=1), ok.sum(axis=1)]
    base = per + 1  # each count is 0..per: one integer names the whole combination
    code = worst_code
    for column in counts:
        code = code * base + column
    combos, combo_of = np.unique(code, return_inverse=True)

    def words(worst: str, n_failing: int, n_changed: int, n_never: int, n_ok: int) -> str:
        if n_failing:
            return LABELS[worst] + (f" +{n_failing - 1} more" if n_failing > 1 else "")
        if n_changed:
            return f"{CHANGED_ICON} Not tested since the edit" + (f" · {n_ok} OK" if n_ok else "")
        if n_never:
            return f"✅ {n_ok} OK · {n_never} never tested" if n_ok else f"{NEVER_ICON} Never tested"
        return "✅ All OK"

    def parts(c: int) -> list[int]:
        found = []
        for _ in counts:
            c, part = divmod(c, base)
            found.append(part)
        return [c, *reversed(found)]

    said = np.array([words(keys[worst], *rest) for worst, *rest in map(parts, combos)], dtype=object)[combo_of]
    icon_of = np.array([_ICONS.get(k, NEVER_ICON) for k in keys], dtype=object)
    marks = np.where(flat == Verdict.NOT_TICKED, NOT_TICKED_MARK, icon_of[codes])
    rows = marks.reshape(-1, per)
    icons = np.array(["\u2009".join(row) for row in rows.tolist()], dtype=object)  # thin spaces: narrow
    return said, icons


ANY_PROBLEM = "any_problem"  # an Outcome filter choice: any ticked product failing


@dataclass(frozen=True)
class Selection:
    """Which connections to show or export: a name search, environments, and outcomes (outcome
    keys, NEVER_TESTED or ANY_PROBLEM) of a ticked product. Empty parts select everything."""

    search: str = ""
    environments: frozenset[str] = frozenset()
    outcomes: frozenset[str] = frozenset()

    def describe(self) -> str:
        """In words, for the audit trail."""
        parts = [f'name contains "{self.search}"'] if self.search else []
        if self.environments:
            parts.append("environment " + " or ".join(sorted(self.environments)))
        if self.outcomes:
            parts.append("outcome " + " or ".join(sorted(NAMES.get(o, "any problem") for o in self.outcomes)))
        return ", ".join(parts) or "no filter"

    def rows(self, frame: pd.DataFrame, verdict: pd.Series) -> np.ndarray:
        """A boolean per row of :func:`table`: the rows of the selected connections."""
        per = len(PRODUCT_KEYS)
        first = frame.iloc[::per]
        keep = np.ones(len(first), dtype=bool)
        if self.search:
            keep &= first["connection"].str.casefold().str.contains(self.search.casefold(), regex=False).to_numpy()
        if self.environments:
            wanted = {environment_key(e) for e in self.environments}
            keep &= first["environment"].fillna("").map(environment_key).isin(wanted).to_numpy()
        if self.outcomes:
            counted = (verdict != Verdict.NOT_TICKED).to_numpy()
            hits = frame["outcome"].isin(self.outcomes).to_numpy()
            if ANY_PROBLEM in self.outcomes:
                hits = hits | (verdict == Verdict.FAILING).to_numpy()
            keep &= (counted & hits).reshape(-1, per).any(axis=1)
        return np.repeat(keep, per)


NAMES = ({NEVER_TESTED: "Never tested", SETTINGS_CHANGED: "Not tested since the settings changed"}
         | {key: outcome.label for key, outcome in OUTCOMES.items()})
# Every mark the Products column of :func:`summaries` can show, with what it means, in the
# order a legend lists them: the console prints this beside the table.
MARKS: tuple[tuple[str, str], ...] = ((NOT_TICKED_MARK, "not ticked"),
                                      *((_ICONS[key], NAMES[key]) for key in (*OUTCOMES, *UNTESTED)))
LABELS = ({NEVER_TESTED: "Never tested", SETTINGS_CHANGED: f"{CHANGED_ICON} Not tested since the settings changed"}
          | {key: outcome.badge for key, outcome in OUTCOMES.items()})


# --- the Connections page's overview ---------------------------------------------------------

NOT_TICKED_LABEL = "— not ticked"  # information only: never counted as a failure
MAX_CHANGES = 2_000  # more new checks than this since an overview was built: build it afresh
_PRODUCT_COLUMNS = tuple(PRODUCTS[key].name for key in PRODUCT_KEYS)
WIDE_COLUMNS = ("Name", "Status", "Products", "Environment", "Client ID", "Secret set", "Last checked",
                *_PRODUCT_COLUMNS)
# A handful of distinct labels per column: dictionary-encoded, the table travels small.
_LABELLED = ("Status", "Products", "Environment", *_PRODUCT_COLUMNS)


@dataclass(frozen=True)
class Overview:
    """Every connection as the Connections page shows it, one object shared by every session
    and never changed (views copy what they narrow). ``table``: :func:`table` without details,
    with a "verdict" column; ``wide``: one row per connection, indexed by connection id (text);
    ``stamp``: the data it shows."""

    table: pd.DataFrame
    wide: pd.DataFrame
    stamp: Stamp

    @classmethod
    def build(cls, engine: Engine, stamp: Stamp) -> Overview:
        frame = table(engine, details=False)
        frame["verdict"] = verdicts(frame)
        first = frame.iloc[::len(PRODUCT_KEYS)].reset_index(drop=True)
        wide = pd.DataFrame({
            "Name": first["connection"], "Environment": first["environment"], "Client ID": first["client_id_hint"],
            "Secret set": first["secret_set_at"], **_standing(frame)})
        wide = wide[list(WIDE_COLUMNS)].set_axis(first["connection_id"].to_numpy())
        return cls(frame, wide.astype(dict.fromkeys(_LABELLED, "category")), stamp)

    def updated(self, engine: Engine, stamp: Stamp) -> Overview:
        """The overview at ``stamp``: this one when nothing changed; when only checks were
        stored since (at most MAX_CHANGES), this one with the rows they touch updated; else
        built afresh. Either way equal to :meth:`build` at ``stamp``.

        "Stored since" is "of a batch above the one this overview saw": transactions that
        store checks commit in the order of their batch numbers (CheckCounter), on PostgreSQL
        too, so none can commit later with a lower number and be missed."""
        if stamp == self.stamp:
            return self
        if stamp.connections == self.stamp.connections:
            changes = _checks_since(engine, self.stamp.batch)
            if changes is not None and (derived := self._with(changes, stamp)) is not None:
                return derived
        return Overview.build(engine, stamp)

    def _with(self, changes: pd.DataFrame, stamp: Stamp) -> Overview | None:
        """This overview with ``changes`` (the latest new check per connection and product)
        applied; None when one of them is for a connection it does not have."""
        per = len(PRODUCT_KEYS)
        connection_at = self.wide.index.get_indexer(changes["connection_id"])
        product_at = pd.Index(PRODUCT_KEYS).get_indexer(changes["product"])
        if (connection_at < 0).any():
            return None
        known = product_at >= 0  # as in table(): a product no longer in the catalogue is not shown
        if not known.any():  # token steps only
            return Overview(self.table, self.wide, stamp)
        rows, changes = connection_at[known] * per + product_at[known], changes[known]
        frame = self.table.copy(deep=False)
        frame["outcome"] = _replaced(frame["outcome"], rows, changes["outcome"].to_numpy())
        frame["checked_at"] = _replaced(frame["checked_at"], rows, _utc(changes["checked_at"]).array)
        touched = np.unique(connection_at[known])
        block = (touched[:, None] * per + np.arange(per)).ravel()  # every row of each touched connection
        part = frame.iloc[block].drop(columns="verdict")
        part["verdict"] = verdicts(part)
        frame["verdict"] = _replaced(frame["verdict"], block, part["verdict"].to_numpy())
        wide = self.wide.copy(deep=False)
        for column, values in _standing(part).items():
            wide[column] = _replaced(wide[column], touched, values)
        return Overview(frame, wide, stamp)


def _standing(frame: pd.DataFrame) -> dict[str, Any]:
    """The columns of the wide view that follow the checks, for the connections of ``frame``
    (whole connections, in order, with their verdicts)."""
    per = len(PRODUCT_KEYS)
    counted = (frame["verdict"] != Verdict.NOT_TICKED).to_numpy()
    shown = np.where(counted, frame["outcome"].map(LABELS), NOT_TICKED_LABEL).reshape(-1, per)
    last_checked = frame["checked_at"].groupby(np.arange(len(frame)) // per).max()
    worst, icons = summaries(frame, frame["verdict"])
    return {"Status": worst, "Products": icons,
            "Last checked": last_checked.dt.strftime(SHOWN_FORMAT).fillna("Never").to_numpy(),
            **{name: shown[:, i] for i, name in enumerate(_PRODUCT_COLUMNS)}}


def _replaced(column: pd.Series, at: np.ndarray, values: Any) -> pd.Series:
    """``column`` with ``values`` at positions ``at``, as a build would give it: categories
    sorted, a new label a new category, one no longer used dropped."""
    data = column.array
    if isinstance(data, pd.Categorical):
        added = pd.Index(values).unique().difference(data.categories)
        data = data.add_categories(added) if len(added) else data.copy()
        data[at] = values
        data = data.remove_unused_categories()
        if len(added):
            data = data.reorder_categories(data.categories.sort_values())
    else:
        data = data.copy()
        data[at] = values
    return pd.Series(data, index=column.index, name=column.name)


def _checks_since(engine: Engine, batch: int) -> pd.DataFrame | None:
    """The latest check per (connection, product) of those stored in batches after ``batch``
    (as the current status holds it: the last stored wins; token steps and results made with
    earlier settings left out, as in :func:`table`), or None when there are more than MAX_CHANGES."""
    query = (sql_select(sql_cast(Check.connection_id, String).label("connection_id"), Check.product, Check.outcome,
                        sql_cast(Check.started_at, String).label("checked_at"))
             .join(Connection, col(Connection.id) == col(Check.connection_id))
             .where(Check.batch > batch, Check.product != TOKEN,
                    Check.settings_version >= Connection.settings_version)  # not made with earlier settings
             .order_by(Check.batch, Check.id).limit(MAX_CHANGES + 1))
    found = _frame(engine, query)
    if len(found) > MAX_CHANGES:
        return None
    return found.drop_duplicates(["connection_id", "product"], keep="last")


class LatestOverview:
    """The newest overview of one database, brought up to date at each call. One lock: a
    session that finds it stale waits for the one updating it instead of building it again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._overview: Overview | None = None

    def current(self, engine: Engine) -> Overview:
        with self._lock:
            stamp = data_stamp(engine)
            previous = self._overview
            self._overview = Overview.build(engine, stamp) if previous is None else previous.updated(engine, stamp)
            return self._overview
