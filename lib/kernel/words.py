"""Counts, spans and moments in words people read and write: "1 connection", "3 connections",
never "connection(s)"; "15m" in, "15 min" out; one form of a moment per medium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# Machines (JSON, CSV, the API, the CLI's --json) get ISO 8601 in UTC with a Z and whole
# seconds; people (tables, captions, messages) get one shorter form that says its zone.
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SHOWN_FORMAT = "%Y-%m-%d %H:%M UTC"


def _utc(moment: datetime) -> datetime:
    """Stored moments are naive UTC (SQLite keeps no zone); aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """``2026-12-07T17:09:41Z`` for machines; None stays None (JSON null)."""
    return None if moment is None else _utc(moment).strftime(ISO_FORMAT)


def shown(moment: datetime | None, never: str = "Never") -> str:
    """``2026-12-07 17:09 UTC`` for people; ``never`` when there is no moment."""
    return never if moment is None else _utc(moment).strftime(SHOWN_FORMAT)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is 1 (``plural`` when adding "s" is wrong)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SPAN = re.compile(r"([0-9]+)([smhd])")  # ASCII digits only: "²" passes str.isdigit
SPAN_EXAMPLES = "30s, 5m, 1h or 7d"


def parse_span(text: str) -> timedelta | None:
    """A whole number and a unit (``30s``, ``5m``, ``1h``, ``7d``) as a timedelta; None when
    ``text`` is not written so."""
    found = _SPAN.fullmatch(text.strip().lower())
    if found is None or len(found[1]) > 6:  # a million days is no interval anybody means
        return None
    return timedelta(**{_UNITS[found[2]]: int(found[1])})


def span(delta: timedelta) -> str:
    """A span in the largest unit that divides it: "30 s", "90 min", "1 h", "2 d"."""
    seconds = int(delta.total_seconds())
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def lasted(delta: timedelta) -> str:
    """How long something went on, to the minute in its two largest units: "45 s", "12 min",
    "2 h 5 min", "3 d 4 h"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    parts = [(seconds // 86_400, "d"), (seconds % 86_400 // 3_600, "h"), (seconds % 3_600 // 60, "min")]
    while parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n} {unit}" for n, unit in parts[:2] if n)
