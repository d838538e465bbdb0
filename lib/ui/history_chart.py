"""One connection's test history as a picture: a timeline per product, one mark per test,
coloured by outcome, with failures drawn as crosses and the details (latency, HTTP status,
8x8's words) on hover. Times are UTC on a 24-hour clock, as everywhere in Switchboard."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS
from lib.status import CheckRecord

# Colour by what the outcome means, not by which outcome it is: green works, amber waits or
# lacks a setting, red fails. Every outcome key gets its own legend entry.
_COLOURS = {"success": "#2e7d32", "warning": "#ef8f00", "error": "#c62828"}
_SHAPES = {"success": "circle", "warning": "triangle-up", "error": "cross"}


def history_frame(records: Sequence[CheckRecord], settings_version: int = 1) -> pd.DataFrame:
    """The chart's data: one row per product test (token steps left out), each saying whether
    it was made with the connection's settings as they are now (``settings_version``)."""
    rows = [r for r in records if r.product in PRODUCTS]
    checked_at = pd.to_datetime([r.checked_at for r in rows], utc=True)
    return pd.DataFrame({
        "Checked at": checked_at,
        "When": checked_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "Product": [PRODUCTS[r.product].name for r in rows],
        "Outcome": [OUTCOMES[r.outcome].label for r in rows],
        "Kind": [OUTCOMES[r.outcome].severity for r in rows],
        "Latency (ms)": [r.duration_ms for r in rows],
        "HTTP status": [str(r.http_status) if r.http_status else "–" for r in rows],
        "What 8x8 said": [r.detail[:160] for r in rows],
        "Settings": ["earlier settings" if r.made_with_earlier_settings(settings_version) else "as now"
                     for r in rows],
    })


def history_chart(frame: pd.DataFrame) -> alt.Chart:
    """A timeline per product (rows in catalogue order); a single test is a visible mark."""
    shown = set(frame["Outcome"])  # the legend lists what happened; each outcome keeps its colour
    outcomes = [o.label for o in OUTCOMES.values() if o.label in shown]
    colours = [_COLOURS[o.severity] for o in OUTCOMES.values() if o.label in shown]
    return (
        alt.Chart(frame, title="Tests over time")
        .mark_point(size=120, filled=True, opacity=0.9)
        .encode(
            x=alt.X("Checked at:T", title="Checked at (UTC)", scale=alt.Scale(type="utc", nice=True),
                    axis=alt.Axis(format="%d %b %H:%M", labelAngle=0, labelOverlap=True,
                                  tickMinStep=60_000)),  # a label per minute at most: none repeats
            y=alt.Y("Product:N", title=None, sort=[PRODUCTS[key].name for key in PRODUCT_KEYS],
                    axis=alt.Axis(labelLimit=220)),
            color=alt.Color("Outcome:N", title="Outcome", scale=alt.Scale(domain=outcomes, range=colours)),
            shape=alt.Shape("Kind:N", title="Kind", legend=None,
                            scale=alt.Scale(domain=list(_SHAPES), range=list(_SHAPES.values()))),
            tooltip=["Product:N", "Outcome:N", "When:N", alt.Tooltip("Latency (ms):Q", format=",d"),
                     "HTTP status:N", "What 8x8 said:N", "Settings:N"],
        )
        .properties(height=alt.Step(36))
    )
