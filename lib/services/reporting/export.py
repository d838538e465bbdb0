"""Connection status as CSV, JSON or Excel: allow-listed columns only, never a secret, and
no cell a spreadsheet would run as a formula (lib.kernel.spreadsheet). Each product that counts
carries its uptime over 24 hours, 7 and 30 days (lib.services.history.rollups), as the status
API gives it for one connection.

The console's download buttons and ``switchboard export`` both call :func:`export`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from lib.catalogue.outcomes import OUTCOMES, Outcome
from lib.catalogue.products import PRODUCTS
from lib.kernel.spreadsheet import csv_frame, xlsx
from lib.kernel.words import count, iso
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.services.history import rollups, status
from lib.services.reporting.connections_table import (
    NAMES,
    NOT_TICKED_LABEL,
    UNTESTED_CAUSES,
    Selection,
)
from lib.store.db import read_session
from lib.store.models import utcnow

UPTIME_WINDOWS = ("24h", "7d", "30d")  # names of rollups.WINDOWS
UPTIME_COLUMNS = tuple(f"uptime_{window}" for window in UPTIME_WINDOWS)

# The allow-list: nothing else ever leaves Switchboard in an export. Made to hand to 8x8
# support: what was ticked and granted, what 8x8 said, who must act and the fix.
COLUMNS: tuple[str, ...] = (
    "connection",
    "environment",
    "client_id",
    "product",
    "expected",
    "granted_by_8x8",
    "status",
    "outcome",
    "outcome_key",
    "detail",
    "cause",
    "who_must_act",
    "fix",
    "http_status",
    "latency_ms",
    "checked_at_utc",
    *UPTIME_COLUMNS,
)
# More connections than this in an export: their uptime is read from the window's range of every
# connection's rollups (one range of the start index) rather than by a list of ids.
_BY_ID = 500
_YES_NO = np.array(["no", "yes"])


def uptimes(engine: Engine, table: pd.DataFrame) -> pd.DataFrame:
    """Per row of lib.services.history.status.table: the share of its checks that were ok over
    each of UPTIME_WINDOWS (0..1, six places, as the status API), NaN where the window holds no
    check or the product does not count (not ticked). One read of the rollups for all rows."""
    found = pd.DataFrame(np.nan, index=table.index, columns=list(UPTIME_COLUMNS))
    if table.empty:
        return found
    ids = table["connection_id"].unique()
    with read_session(engine) as session:
        counted = rollups.counts(
            session.connection(),
            utcnow(),
            windows=UPTIME_WINDOWS,
            connection_ids=None if len(ids) > _BY_ID else [uuid.UUID(key) for key in ids],
        )
    shares = rollups.ratios(counted).round(6).add_prefix("uptime_")
    keyed = table[["connection_id", "product"]].merge(
        pd.concat([counted[["connection_id", "product"]], shares], axis=1), on=["connection_id", "product"], how="left"
    )
    counts = table["in_scope"].to_numpy(dtype=bool)
    found.loc[counts, list(UPTIME_COLUMNS)] = keyed.loc[counts, list(UPTIME_COLUMNS)].to_numpy(dtype="float64")
    return found


def status_frame(table: pd.DataFrame, uptime: pd.DataFrame) -> pd.DataFrame:
    """The allow-listed columns from lib.services.history.status.table, in words people read. "expected" (the
    admin ticked it, or ticked none: then all five) and "granted_by_8x8" say yes/no (granted:
    unknown until 8x8 was asked); "status" is the verdict the console counts with; only a
    failing product has someone who must act. A product nobody ticked and nobody tested is
    "— not ticked" as in the console, with no outcome key or cause: never "Never tested".
    ``uptime``: :func:`uptimes` of ``table``."""
    verdict = status.verdicts(table)
    failing = (verdict == status.Verdict.FAILING).to_numpy()
    idle = ((verdict == status.Verdict.NOT_TICKED) & table["outcome"].isin(status.UNTESTED)).to_numpy()
    granted = table["granted"]
    explained = status.explained(table, verdict).map(OUTCOMES.get)

    def words(pick: Callable[[Outcome], str], fallback: str = "") -> pd.Series:
        return explained.map(lambda o: pick(o) if o else fallback)

    return pd.DataFrame(
        {
            "connection": table["connection"],
            "environment": table["environment"],
            "client_id": table["client_id_hint"],  # masked: enough to recognise, never to use
            "product": table["product"].map({key: product.name for key, product in PRODUCTS.items()}),
            "expected": _YES_NO[table["in_scope"].to_numpy(dtype=int)],
            "granted_by_8x8": np.where(granted.isna(), "unknown", _YES_NO[granted.fillna(False).to_numpy(dtype=int)]),
            "status": verdict,
            "outcome": np.where(idle, NOT_TICKED_LABEL, table["outcome"].map(NAMES)),
            "outcome_key": np.where(idle, "", table["outcome"]),
            "detail": table["detail"],
            "cause": np.where(
                idle,
                "",
                np.where(
                    table["outcome"].isin(status.UNTESTED),
                    table["outcome"].map(UNTESTED_CAUSES),
                    words(lambda o: o.cause),
                ),
            ),
            "who_must_act": np.where(failing, words(lambda o: o.actor.value), ""),
            "fix": np.where(failing, words(lambda o: o.fix), ""),
            "http_status": table["http_status"],
            "latency_ms": table["duration_ms"],
            "checked_at_utc": pd.to_datetime(table["checked_at"], utc=True).dt.floor("s").dt.tz_localize(None),
            **{column: uptime[column] for column in UPTIME_COLUMNS},
        },
        columns=list(COLUMNS),
    )


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Times in the machine form (lib.kernel.words.iso), for the text formats; blank (CSV) or null
    (JSON) when never checked."""
    text = frame.copy()
    text["checked_at_utc"] = [None if pd.isna(when) else iso(when) for when in frame["checked_at_utc"]]
    return text


def _csv(frame: pd.DataFrame) -> bytes:
    return csv_frame(_as_text(frame)).to_csv(index=False).encode("utf-8")


def _json(frame: pd.DataFrame) -> bytes:
    records = json.loads(_as_text(frame).to_json(orient="records"))
    return (json.dumps(records, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _xlsx(frame: pd.DataFrame) -> bytes:
    return xlsx(list(frame.columns), frame.itertuples(index=False), "Connection status")


@dataclass(frozen=True)
class Format:
    extension: str
    mime: str
    render: Callable[[pd.DataFrame], bytes]


FORMATS: dict[str, Format] = {
    "csv": Format("csv", "text/csv", _csv),
    "json": Format("json", "application/json", _json),
    "xlsx": Format("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _xlsx),
}


@dataclass(frozen=True)
class Export:
    data: bytes
    file_name: str
    mime: str


def file_name(fmt: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"switchboard-status-{stamp}.{FORMATS[fmt].extension}"


def export(
    engine: Engine, fmt: str, *, actor: Principal, selection: Selection | None = None, written_to: str | None = None
) -> Export:
    """The status of every product of the selected connections (all of them when
    ``selection`` is None: "export everything") in one format, audited under the name the
    file is written to (``written_to``, e.g. the CLI's -o path; else the suggested name)."""
    require(actor, Permission.EXPORT)
    spec = FORMATS[fmt]
    table = status.table(engine)
    if selection is not None:
        table = table[selection.rows(table, status.verdicts(table))].reset_index(drop=True)
    frame = status_frame(table, uptimes(engine, table))
    result = Export(spec.render(frame), file_name(fmt), spec.mime)
    counts = frame["status"].value_counts()
    scope = "everything" if selection is None else f"shown: {selection.describe()}"
    audit.record_now(
        engine,
        actor,
        "export",
        written_to or result.file_name,
        audit.OK,
        f"{count(frame['connection'].nunique(), 'connection')}, {count(len(frame), 'row')} ({scope}); "
        + ", ".join(f"{counts.get(v.value, 0)} {v.value}" for v in status.Verdict),
    )
    return result
