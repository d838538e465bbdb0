"""Connection status as CSV, JSON or Excel: allow-listed columns only, never a secret, and
no cell a spreadsheet would run as a formula (lib.spreadsheet).

The console's download buttons and ``python -m lib export`` both call :func:`export`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from lib import audit, status
from lib.access import Permission, Principal, require
from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCTS
from lib.spreadsheet import csv_frame, xlsx

# The allow-list: nothing else ever leaves Switchboard in an export.
COLUMNS: tuple[str, ...] = (
    "connection", "environment", "client_id", "product", "expected", "granted_by_8x8",
    "outcome", "cause", "who_must_act", "http_status", "latency_ms", "checked_at",
)


def status_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The allow-listed columns from lib.status.table, in words people read."""
    outcome = table["outcome"].map(OUTCOMES.get)
    granted = table["granted"]
    return pd.DataFrame({
        "connection": table["connection"],
        "environment": table["environment"],
        "client_id": table["client_id_hint"],  # masked: enough to recognise, never to use
        "product": table["product"].map({key: product.name for key, product in PRODUCTS.items()}),
        "expected": table["expected"],
        "granted_by_8x8": np.where(granted.isna(), "unknown", np.where(granted.fillna(False), "yes", "no")),
        "outcome": table["outcome"],
        "cause": outcome.map(lambda o: o.cause if o else "Not tested yet."),
        "who_must_act": outcome.map(lambda o: o.actor.value if o else ""),
        "http_status": table["http_status"],
        "latency_ms": table["duration_ms"],
        "checked_at": table["checked_at"].map(lambda at: at.isoformat() if pd.notna(at) else None),
    }, columns=list(COLUMNS))


def _csv(frame: pd.DataFrame) -> bytes:
    return csv_frame(frame).to_csv(index=False).encode("utf-8")


def _json(frame: pd.DataFrame) -> bytes:
    records = json.loads(frame.to_json(orient="records"))
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
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"switchboard-status-{stamp}.{FORMATS[fmt].extension}"


def export(engine: Engine, fmt: str, *, actor: Principal) -> Export:
    """The status of every (connection, product) in one format (audited)."""
    require(actor, Permission.EXPORT)
    spec = FORMATS[fmt]
    frame = status_frame(status.table(engine))
    result = Export(spec.render(frame), file_name(fmt), spec.mime)
    audit.record_now(engine, actor, "export", result.file_name, audit.OK, f"{len(frame)} row(s)")
    return result


