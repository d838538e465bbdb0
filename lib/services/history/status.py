"""Connection status, read only: the current status of every (connection, product), one
connection's history, the checks stored since a batch, and a stamp that changes whenever any
of them does.

The console's table, its metrics, every export and ``check --json`` read the same rows, so
they agree. The current status is a table of its own (kept by lib.services.checking.checks in
the transaction that stores each check), so reading it costs N x 5 rows at any size of
history. This is the read model only: outcome keys, verdicts and typed rows, never words for
people; how they read (labels, marks, column titles) and the Connections page's overview are
lib.services.reporting.connections_table. Nothing here decrypts anything or talks to 8x8.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Select, String, func, select
from sqlalchemy import cast as sql_cast
from sqlmodel import col

from lib.catalogue.outcomes import Judged, OutcomeKey
from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.store.db import read_session
from lib.store.models import Check, CheckCounter, Connection, CurrentStatus

NEVER_TESTED = "never_tested"
# The stored result was made before an edit changed what is tested (lib.services.connections): it no
# longer counts; the row waits for a check with the settings as they are now.
SETTINGS_CHANGED = "settings_changed"
UNTESTED = (NEVER_TESTED, SETTINGS_CHANGED)


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
        select(
            col(CurrentStatus.connection_id),
            col(Connection.name),
            col(CurrentStatus.product),
            col(CurrentStatus.outcome),
            col(CurrentStatus.http_status),
            col(CurrentStatus.duration_ms),
            col(CurrentStatus.detail),
            col(CurrentStatus.checked_at),
            col(CurrentStatus.run_id),
            col(CurrentStatus.settings_version),
        )
        .join(Connection, col(Connection.id) == col(CurrentStatus.connection_id))
        .order_by(col(Connection.name_key), col(CurrentStatus.product))
    )
    if not include_token:
        query = query.where(col(CurrentStatus.product) != TOKEN)
    return _records(engine, query)


def history(engine: Engine, connection_id: uuid.UUID, *, limit: int = 500) -> list[CheckRecord]:
    """A connection's checks, newest first."""
    return _records(
        engine,
        select(
            col(Check.connection_id),
            col(Connection.name),
            col(Check.product),
            col(Check.outcome),
            col(Check.http_status),
            col(Check.duration_ms),
            col(Check.detail),
            col(Check.started_at),
            col(Check.run_id),
            col(Check.settings_version),
        )
        .join(Connection, col(Connection.id) == col(Check.connection_id))
        .where(col(Check.connection_id) == connection_id)
        .order_by(col(Check.id).desc())
        .limit(limit),
    )


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
        batch = conn.execute(select(col(CheckCounter.last))).scalar_one_or_none()
        connections_part = conn.execute(
            select(func.count(), func.max(Connection.updated_at), func.max(Connection.granted_at))
        ).one()
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
_CONNECTIONS: Select[*tuple[Any, ...]] = select(
    sql_cast(Connection.id, String).label("connection_id"),
    col(Connection.name).label("connection"),
    col(Connection.environment),
    col(Connection.client_id_hint),
    sql_cast(Connection.secret_set_at, String).label("secret_set_at"),
    sql_cast(Connection.expected_products, String).label("expected_products"),
    sql_cast(Connection.granted_products, String).label("granted_products"),
    col(Connection.settings_version),
).order_by(col(Connection.name_key))
_CURRENT: tuple[Any, ...] = (
    sql_cast(CurrentStatus.connection_id, String).label("connection_id"),
    col(CurrentStatus.product),
    col(CurrentStatus.outcome),
    sql_cast(CurrentStatus.checked_at, String).label("checked_at"),
    col(CurrentStatus.settings_version).label("made_with"),
)
_DETAILS = (CurrentStatus.detail, col(CurrentStatus.http_status), col(CurrentStatus.duration_ms))

COLUMNS = (
    "connection_id",
    "connection",
    "environment",
    "client_id_hint",
    "secret_set_at",
    "product",
    "expected",
    "in_scope",
    "granted",
    "outcome",
    "checked_at",
)
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
    current = _frame(
        engine, select(*_CURRENT, *(_DETAILS if details else ())).where(col(CurrentStatus.product) != TOKEN)
    ).astype({"connection_id": str, "product": str})
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
        Verdict.NEVER_TESTED.value,
    )
    return pd.Series(choices, index=frame.index, name="verdict")


def explained(frame: pd.DataFrame, verdict: pd.Series) -> pd.Series:
    """The outcome that explains each row: the stored one, except that a ticked product 8x8's
    token does not grant, never tested, is explained as not enabled."""
    untested_failure = ((verdict == Verdict.FAILING) & ~checked(frame)).to_numpy()
    stored = frame["outcome"].to_numpy(dtype=object)
    return pd.Series(np.where(untested_failure, OutcomeKey.PRODUCT_NOT_ENABLED.value, stored), index=frame.index)


def checks_since(engine: Engine, batch: int, *, limit: int) -> pd.DataFrame | None:
    """The latest check per (connection, product) of those stored in batches after ``batch``
    (as the current status holds it: the last stored wins; token steps and results made with
    earlier settings left out, as in :func:`table`), or None when there are more than ``limit``.
    Connection ids as text and times in UTC, as :func:`table` has them.

    "Stored after" is "of a batch above ``batch``": transactions that store checks commit in the
    order of their batch numbers (CheckCounter), on PostgreSQL too, so none can commit later
    with a lower number and be missed by a reader that saw ``batch``."""
    query = (
        select(
            sql_cast(Check.connection_id, String).label("connection_id"),
            col(Check.product),
            col(Check.outcome),
            sql_cast(Check.started_at, String).label("checked_at"),
        )
        .join(Connection, col(Connection.id) == col(Check.connection_id))
        .where(
            col(Check.batch) > batch,
            col(Check.product) != TOKEN,
            col(Check.settings_version) >= col(Connection.settings_version),
        )  # not made with earlier settings
        .order_by(col(Check.batch), col(Check.id))
        .limit(limit + 1)
    )
    found = _frame(engine, query)
    if len(found) > limit:
        return None
    latest = found.drop_duplicates(["connection_id", "product"], keep="last")
    return latest.assign(checked_at=_utc(latest["checked_at"]))
