"""The history chart: a timeline per product, outcome as colour, failures marked, UTC times."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from lib.catalogue.outcomes import OUTCOMES
from lib.kernel.words import SHOWN_FORMAT
from lib.services.history.status import CheckRecord
from lib.ui.history_chart import history_chart, history_frame

WHEN = datetime(2026, 12, 1, 21, 5, 9, tzinfo=UTC)


def record(product: str, outcome: str, at: datetime = WHEN, status: int | None = 200) -> CheckRecord:
    return CheckRecord(uuid.uuid4(), "c", product, outcome, status, 120, "8x8 said so", at, "r")


def test_one_test_is_one_visible_mark_with_its_story_on_hover() -> None:
    frame = history_frame([record("cc_chat", "ok"), record("token", "ok")])
    assert len(frame) == 1  # the token step is not a product
    assert frame.loc[0, "When"] == "2026-12-01 21:05 UTC" and frame.loc[0, "Latency (ms)"] == 120
    spec = history_chart(frame).to_dict()
    assert spec["mark"]["type"] == "point" and spec["mark"]["size"] >= 100 and spec["mark"]["filled"]
    encoding = spec["encoding"]
    assert encoding["x"]["title"] == "Checked at (UTC)" and encoding["x"]["scale"]["type"] == "utc"
    assert encoding["x"]["axis"]["format"] == SHOWN_FORMAT  # the one form people read, as d3 writes it
    assert encoding["x"]["axis"]["tickMinStep"] == 60_000  # no two ticks share a label
    assert encoding["y"]["field"] == "Product" and encoding["y"]["sort"][0] == "CC Realtime Analytics"
    assert {t["field"] for t in encoding["tooltip"]} >= {"Latency (ms)", "Outcome", "When", "HTTP status"}


def test_outcomes_have_fixed_colours_and_failures_a_mark_of_their_own() -> None:
    frame = history_frame(
        [
            record("cc_chat", "ok"),
            record("cc_chat", "timeout", status=None),
            record("cloud_storage", "rate_limited", status=429),
        ]
    )
    spec = history_chart(frame).to_dict()
    colour = spec["encoding"]["color"]["scale"]
    assert colour["domain"] == [o.label for o in OUTCOMES.values() if o.label in {"OK", "Timed out", "Rate limited"}]
    assert (
        dict(zip(colour["domain"], colour["range"], strict=True))["OK"]
        != dict(zip(colour["domain"], colour["range"], strict=True))["Timed out"]
    )
    shape = spec["encoding"]["shape"]["scale"]
    assert dict(zip(shape["domain"], shape["range"], strict=True))["error"] == "cross"
    assert list(frame["HTTP status"]) == ["200", "—", "429"]


def test_every_outcome_has_a_legend_entry_and_colour_of_its_own() -> None:
    """Issue 22: "8x8 error" (8x8 failed itself) and "Unexpected answer" (it answered, wrongly)
    were the same red cross. Every outcome now has a colour of its own, in its kind's hue, and
    8x8 not reached is a shape of its own."""
    frame = history_frame([record("cc_chat", key, at=WHEN.replace(minute=i)) for i, key in enumerate(OUTCOMES)])
    spec = history_chart(frame).to_dict()
    colour = spec["encoding"]["color"]["scale"]
    assert colour["domain"] == [o.label for o in OUTCOMES.values()]  # one legend entry each
    assert len(set(colour["range"])) == len(OUTCOMES)
    shape = dict(
        zip(spec["encoding"]["shape"]["scale"]["domain"], spec["encoding"]["shape"]["scale"]["range"], strict=True)
    )
    kind = dict(zip(frame["Outcome"], frame["Kind"], strict=True))
    assert shape[kind["8x8 error"]] != shape[kind["Unexpected answer"]]
    assert kind["Timed out"] == kind["8x8 error"] and kind["Unexpected answer"] == kind["Credentials refused"]
    shade = dict(zip(colour["domain"], colour["range"], strict=True))
    assert shade["8x8 error"] != shade["Unexpected answer"]
