"""One connection's test history as a picture: a timeline per product, one mark per test,
coloured by outcome, with refusals drawn as crosses, failures to reach 8x8 as squares, and the
details (latency, HTTP status, 8x8's words) on hover. Times are UTC on a 24-hour clock, as
everywhere in Switchboard."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import altair as alt
import pandas as pd

from lib.catalogue.outcomes import OUTCOMES, Outcome
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS
from lib.kernel.words import SHOWN_FORMAT
from lib.services.history.status import CheckRecord

# What kind of result an outcome is, from the catalogue: it works, it waits or lacks a setting,
# 8x8 answered and refused (or answered in a form no product returns), or 8x8 could not be asked
# or failed itself. Each kind has a hue and a shape; each outcome its own shade of that hue, so
# that every entry of the legend, "8x8 error" and "Unexpected answer" too, is told apart.
_HUES = {"success": 120, "warning": 38, "error": 0, "unreachable": 270}  # degrees
_SHAPES = {"success": "circle", "warning": "triangle-up", "error": "cross", "unreachable": "square"}


def _kind(outcome: Outcome) -> str:
    return "unreachable" if outcome.severity == "error" and outcome.unreachable else outcome.severity


def _shades() -> dict[str, str]:
    """A colour per outcome label: the outcomes of one kind spread over its hue (within 25
    degrees either side), from dark to light."""
    kinds: dict[str, list[str]] = {}
    for outcome in OUTCOMES.values():
        kinds.setdefault(_kind(outcome), []).append(outcome.label)
    colours = {}
    for kind, labels in kinds.items():
        for index, label in enumerate(labels):
            share = (index + 0.5) / len(labels)  # 0..1 across the kind
            hue = (_HUES[kind] + 50 * (share - 0.5)) % 360 / 360
            red, green, blue = colorsys.hls_to_rgb(hue, 0.25 + 0.4 * share, 0.7)
            colours[label] = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
    return colours


_COLOURS = _shades()


def history_frame(records: Sequence[CheckRecord], settings_version: int = 1) -> pd.DataFrame:
    """The chart's data: one row per product test (token steps left out), each saying whether
    it was made with the connection's settings as they are now (``settings_version``)."""
    rows = [r for r in records if r.product in PRODUCTS]
    checked_at = pd.to_datetime([r.checked_at for r in rows], utc=True)
    return pd.DataFrame(
        {
            "Checked at": checked_at,
            "When": checked_at.strftime(SHOWN_FORMAT),
            "Product": [PRODUCTS[r.product].name for r in rows],
            "Outcome": [OUTCOMES[r.outcome].label for r in rows],
            "Kind": [_kind(OUTCOMES[r.outcome]) for r in rows],
            "Latency (ms)": [r.duration_ms for r in rows],
            "HTTP status": [str(r.http_status) if r.http_status else "—" for r in rows],
            "What 8x8 said": [r.detail[:160] or "—" for r in rows],
            "Settings": [
                "earlier settings" if r.made_with_earlier_settings(settings_version) else "as now" for r in rows
            ],
        }
    )


def _utc_axis(field: str, title: str) -> alt.X:
    """A time axis in UTC. d3's time format reads SHOWN_FORMAT as strftime does: the one form
    people read; a label per minute at most, so none repeats."""
    return alt.X(
        field,
        title=title,
        scale=alt.Scale(type="utc", nice=True),
        axis=alt.Axis(format=SHOWN_FORMAT, labelAngle=0, labelOverlap=True, labelLimit=220, tickMinStep=60_000),
    )


def history_chart(frame: pd.DataFrame) -> alt.Chart:
    """A timeline per product (rows in catalogue order); a single test is a visible mark."""
    shown = set(frame["Outcome"])  # the legend lists what happened; each outcome keeps its colour
    outcomes = [o.label for o in OUTCOMES.values() if o.label in shown]
    colours = [_COLOURS[label] for label in outcomes]
    chart: alt.Chart = (
        alt.Chart(frame, title="Tests over time")
        .mark_point(size=120, filled=True, opacity=0.9)
        .encode(
            x=_utc_axis("Checked at:T", "Checked at (UTC)"),
            y=alt.Y(
                "Product:N",
                title=None,
                sort=[PRODUCTS[key].name for key in PRODUCT_KEYS],
                axis=alt.Axis(labelLimit=220),
            ),
            color=alt.Color("Outcome:N", title="Outcome", scale=alt.Scale(domain=outcomes, range=colours)),
            shape=alt.Shape(
                "Kind:N", title="Kind", legend=None, scale=alt.Scale(domain=list(_SHAPES), range=list(_SHAPES.values()))
            ),
            tooltip=[
                "Product:N",
                "Outcome:N",
                "When:N",
                alt.Tooltip("Latency (ms):Q", format=",d"),
                "HTTP status:N",
                "What 8x8 said:N",
                "Settings:N",
            ],
        )
        .properties(height=alt.Step(36))
    )
    return chart


# --- response times ---------------------------------------------------------------------------

MEASURES = {"p50_ms": "p50", "p95_ms": "p95"}  # drawn as lines; the maximum is told on hover


def latency_frame(found: pd.DataFrame) -> pd.DataFrame:
    """The response-time chart's data from lib.services.history.latency.over: one row per
    product, bucket and measure (p50, p95), with the bucket's figures for the tooltip."""
    base = pd.DataFrame(
        {
            "Start": pd.to_datetime(found["start"], utc=True),
            "From": pd.to_datetime(found["start"], utc=True).dt.strftime(SHOWN_FORMAT),
            "Product": found["product"].map({key: product.name for key, product in PRODUCTS.items()}),
            "Tests": found["checks"].astype("int64"),
            "p50 (ms)": found["p50_ms"].astype("float64").round(),
            "p95 (ms)": found["p95_ms"].astype("float64").round(),
            "Max (ms)": found["max_ms"].astype("float64"),
        }
    )
    parts = [base.assign(Measure=label, **{"Latency (ms)": base[f"{label} (ms)"]}) for label in MEASURES.values()]
    return pd.concat(parts, ignore_index=True)


def latency_chart(frame: pd.DataFrame, title: str) -> alt.Chart:
    """p50 and p95 over time per product (a colour each, p95 dashed); a bucket is a point, so a
    window holding a single one still shows."""
    chart: alt.Chart = (
        alt.Chart(frame, title=title)
        .mark_line(point=True)
        .encode(
            x=_utc_axis("Start:T", "From (UTC)"),
            y=alt.Y("Latency (ms):Q", title="Response time (ms)"),
            color=alt.Color("Product:N", title="Product", sort=[PRODUCTS[key].name for key in PRODUCT_KEYS]),
            strokeDash=alt.StrokeDash(
                "Measure:N", title="Measure", scale=alt.Scale(domain=list(MEASURES.values()), range=[[1, 0], [6, 3]])
            ),
            detail="Measure:N",
            tooltip=[
                "Product:N",
                "From:N",
                alt.Tooltip("Tests:Q", format=",d"),
                alt.Tooltip("p50 (ms):Q", format=",d"),
                alt.Tooltip("p95 (ms):Q", format=",d"),
                alt.Tooltip("Max (ms):Q", format=",d"),
            ],
        )
    )
    return chart
