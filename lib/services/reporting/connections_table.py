"""The Connections table as people read it, built on the status read model
(lib.services.history.status): the words for each state (the page, every export and the status
API say outcomes alike), the Products column's marks and what each means, each connection's
worst status in words, the filter the page, its export buttons and ``switchboard export``
share (:class:`Selection`), and the page's :class:`Overview`: built once, then following the
checks stored since row by row. No Streamlit here: lib.ui.connections_view draws it.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS
from lib.kernel.words import SHOWN_FORMAT
from lib.services.history import rollups, status
from lib.services.history.status import NEVER_TESTED, SETTINGS_CHANGED, UNTESTED, Stamp, Verdict
from lib.store.db import read_session
from lib.store.models import utcnow

# --- words --------------------------------------------------------------------------------

NAMES = {NEVER_TESTED: "Never tested", SETTINGS_CHANGED: "Not tested since the settings changed"} | {
    key: outcome.label for key, outcome in OUTCOMES.items()
}
CHANGED_ICON = "🔄"
NEVER_ICON = "⚪"
NOT_TICKED_MARK = "·"
LABELS = {NEVER_TESTED: "Never tested", SETTINGS_CHANGED: f"{CHANGED_ICON} Not tested since the settings changed"} | {
    key: outcome.badge for key, outcome in OUTCOMES.items()
}
NOT_TICKED_LABEL = "— not ticked"  # information only: never counted as a failure
# The cause of a row with no current result, as exports and the status API say it.
UNTESTED_CAUSES = {
    NEVER_TESTED: "Not tested yet.",
    SETTINGS_CHANGED: "The settings changed after the last test, so its result no longer counts; "
    "the next scheduled check tests them.",
}
_ICONS = {key: o.icon for key, o in OUTCOMES.items()} | {NEVER_TESTED: NEVER_ICON, SETTINGS_CHANGED: CHANGED_ICON}
# Every mark the Products column of :func:`summaries` can show, with what it means, in the
# order a legend lists them: the console prints this beside the table.
MARKS: tuple[tuple[str, str], ...] = (
    (NOT_TICKED_MARK, "not ticked"),
    *((_ICONS[key], NAMES[key]) for key in (*OUTCOMES, *UNTESTED)),
)
_RANK = {key: {"error": 2, "warning": 1, "success": 0}[o.severity] for key, o in OUTCOMES.items()}


def summaries(frame: pd.DataFrame, verdict: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per connection of :func:`lib.services.history.status.table`: the worst status in words
    ("🚫 Product not enabled +1 more", "✅ All OK", ...), and its products as icons in catalogue
    order (· not ticked, ⚪ never tested, 🔄 not tested since an edit) — a status that fits a
    phone's width. Built per distinct combination (a fleet has few), not per connection."""
    per = len(PRODUCT_KEYS)
    flat = verdict.to_numpy()
    verdicts = flat.reshape(-1, per)
    codes, keys = pd.factorize(status.explained(frame, verdict).to_numpy())
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


# --- the filter -------------------------------------------------------------------------------

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
        """A boolean per row of :func:`lib.services.history.status.table`: the rows of the
        selected connections."""
        per = len(PRODUCT_KEYS)
        first = frame.iloc[::per]
        keep = np.ones(len(first), dtype=bool)
        if self.search:
            keep &= first["connection"].str.casefold().str.contains(self.search.casefold(), regex=False).to_numpy()
        if self.environments:
            wanted = {status.environment_key(e) for e in self.environments}
            keep &= first["environment"].fillna("").map(status.environment_key).isin(wanted).to_numpy()
        if self.outcomes:
            counted = (verdict != Verdict.NOT_TICKED).to_numpy()
            hits = frame["outcome"].isin(self.outcomes).to_numpy()
            if ANY_PROBLEM in self.outcomes:
                hits = hits | (verdict == Verdict.FAILING).to_numpy()
            keep &= (counted & hits).reshape(-1, per).any(axis=1)
        return np.repeat(keep, per)


# --- the Connections page's overview ---------------------------------------------------------

MAX_CHANGES = 2_000  # more new checks than this since an overview was built: build it afresh
_PRODUCT_COLUMNS = tuple(PRODUCTS[key].name for key in PRODUCT_KEYS)
UPTIME_COLUMN = "Uptime 30 d"  # rollups.percent of the products that count, NaN: no check
UPTIME_WINDOW = "30d"  # read from the daily rollups: its start moves once a day
WIDE_COLUMNS = (
    "Name",
    "Status",
    "Products",
    UPTIME_COLUMN,
    "Environment",
    "Client ID",
    "Secret set",
    "Last checked",
    *_PRODUCT_COLUMNS,
)
# A handful of distinct labels per column: dictionary-encoded, the table travels small.
_LABELLED = ("Status", "Products", "Environment", *_PRODUCT_COLUMNS)


@dataclass(frozen=True)
class Overview:
    """Every connection as the Connections page shows it, one object shared by every session
    and never changed (views copy what they narrow). ``table``: the read model's table without
    details, with a "verdict" column; ``wide``: one row per connection, indexed by connection
    id (text); ``stamp``: the data it shows; ``day``: the UTC day its uptime window ends in."""

    table: pd.DataFrame
    wide: pd.DataFrame
    stamp: Stamp
    day: datetime

    @classmethod
    def build(cls, engine: Engine, stamp: Stamp) -> Overview:
        day = _today()
        frame = status.table(engine, details=False)
        frame["verdict"] = status.verdicts(frame)
        first = frame.iloc[:: len(PRODUCT_KEYS)].reset_index(drop=True)
        wide = pd.DataFrame(
            {
                "Name": first["connection"],
                "Environment": first["environment"],
                "Client ID": first["client_id_hint"],
                "Secret set": first["secret_set_at"],
                UPTIME_COLUMN: uptime(engine, frame, day, everyone=True),
                **_standing(frame),
            }
        )
        wide = wide[list(WIDE_COLUMNS)].set_axis(first["connection_id"].to_numpy())
        return cls(frame, wide.astype(dict.fromkeys(_LABELLED, "category")), stamp, day)

    def updated(self, engine: Engine, stamp: Stamp) -> Overview:
        """The overview at ``stamp``: this one when nothing changed; when only checks were
        stored since (at most MAX_CHANGES: :func:`lib.services.history.status.checks_since`
        says which), this one with the rows they touch updated (their uptime read again); else
        built afresh. On a new day, every uptime is read again (its window moved). Either way
        equal to :meth:`build` at ``stamp``."""
        day = _today()
        if stamp == self.stamp and day == self.day:
            return self
        found = self._followed(engine, stamp)
        if found.day != day:
            wide = found.wide.copy(deep=False)
            wide[UPTIME_COLUMN] = uptime(engine, found.table, day, everyone=True)
            found = Overview(found.table, wide, found.stamp, day)
        return found

    def _followed(self, engine: Engine, stamp: Stamp) -> Overview:
        if stamp == self.stamp:
            return self
        if stamp.connections == self.stamp.connections:
            changes = status.checks_since(engine, self.stamp.batch, limit=MAX_CHANGES)
            if changes is not None and (derived := self._with(engine, changes, stamp)) is not None:
                return derived
        return Overview.build(engine, stamp)

    def _with(self, engine: Engine, changes: pd.DataFrame, stamp: Stamp) -> Overview | None:
        """This overview with ``changes`` (the latest new check per connection and product)
        applied; None when one of them is for a connection it does not have."""
        per = len(PRODUCT_KEYS)
        connection_at = self.wide.index.get_indexer(pd.Index(changes["connection_id"]))
        product_at = pd.Index(PRODUCT_KEYS).get_indexer(pd.Index(changes["product"]))
        if (connection_at < 0).any():
            return None
        known = product_at >= 0  # as in table(): a product no longer in the catalogue is not shown
        if not known.any():  # token steps only
            return Overview(self.table, self.wide, stamp, self.day)
        rows, changes = connection_at[known] * per + product_at[known], changes[known]
        frame = self.table.copy(deep=False)
        frame["outcome"] = _replaced(frame["outcome"], rows, changes["outcome"].to_numpy())
        frame["checked_at"] = _replaced(frame["checked_at"], rows, changes["checked_at"].array)
        touched = np.unique(connection_at[known])
        block = (touched[:, None] * per + np.arange(per)).ravel()  # every row of each touched connection
        part = frame.iloc[block].drop(columns="verdict")
        part["verdict"] = status.verdicts(part)
        frame["verdict"] = _replaced(frame["verdict"], block, part["verdict"].to_numpy())
        wide = self.wide.copy(deep=False)
        for column, values in _standing(part).items():
            wide[column] = _replaced(wide[column], touched, values)
        wide[UPTIME_COLUMN] = _replaced(wide[UPTIME_COLUMN], touched, uptime(engine, part, self.day))
        return Overview(frame, wide, stamp, self.day)


def _today() -> datetime:
    return rollups.floor(utcnow(), rollups.WINDOWS[UPTIME_WINDOW][1])


def uptime(engine: Engine, frame: pd.DataFrame, now: datetime, *, everyone: bool = False) -> np.ndarray:
    """Per connection of ``frame`` (rows of lib.services.history.status.table: whole
    connections, in order): the uptime over UPTIME_WINDOW up to ``now`` of its products that
    count together (ticked, or all five when none are), as rollups.percent; NaN when they had no
    check. One query: of these connections' rows, or (``everyone``: ``frame`` holds every
    connection) of the window's range of every connection's."""
    per = len(PRODUCT_KEYS)
    ids = frame["connection_id"].iloc[::per]
    if ids.empty:
        return np.array([], dtype="float64")
    with read_session(engine) as session:
        found = rollups.counts(
            session.connection(),
            now,
            windows=(UPTIME_WINDOW,),
            connection_ids=None if everyone else [uuid.UUID(key) for key in ids],
        )
    counted = frame.loc[frame["in_scope"].to_numpy(dtype=bool), ["connection_id", "product"]]
    summed = (
        counted.merge(found, on=["connection_id", "product"], how="inner")
        .groupby("connection_id")[[f"ok_{UPTIME_WINDOW}", f"checks_{UPTIME_WINDOW}"]]
        .sum()
        .reindex(ids.to_numpy(), fill_value=0)
    )
    return np.asarray(rollups.percent(summed[f"ok_{UPTIME_WINDOW}"], summed[f"checks_{UPTIME_WINDOW}"]))


def _standing(frame: pd.DataFrame) -> dict[str, Any]:
    """The columns of the wide view that follow the checks, for the connections of ``frame``
    (whole connections, in order, with their verdicts)."""
    per = len(PRODUCT_KEYS)
    counted = (frame["verdict"] != Verdict.NOT_TICKED).to_numpy()
    shown = np.where(counted, frame["outcome"].map(LABELS), NOT_TICKED_LABEL).reshape(-1, per)
    last_checked = frame["checked_at"].groupby(np.arange(len(frame)) // per).max()
    worst, icons = summaries(frame, frame["verdict"])
    return {
        "Status": worst,
        "Products": icons,
        "Last checked": last_checked.dt.strftime(SHOWN_FORMAT).fillna("Never").to_numpy(),
        **{name: shown[:, i] for i, name in enumerate(_PRODUCT_COLUMNS)},
    }


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


class LatestOverview:
    """The newest overview of one database, brought up to date at each call. One lock: a
    session that finds it stale waits for the one updating it instead of building it again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._overview: Overview | None = None

    def current(self, engine: Engine) -> Overview:
        with self._lock:
            stamp = status.data_stamp(engine)
            previous = self._overview
            self._overview = Overview.build(engine, stamp) if previous is None else previous.updated(engine, stamp)
            return self._overview
