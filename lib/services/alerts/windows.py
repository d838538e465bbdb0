"""Quiet windows: recurring times in which a channel is muted, in a time zone of their own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lib.kernel.errors import FieldError, ValidationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIMEZONE_MAX = 64  # IANA names are at most about 32 characters; its column holds 64
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Window:
    """On each of ``weekdays`` (0 Monday .. 6 Sunday; the day it starts) from ``start`` to
    ``end`` local time in ``timezone``; an end at or before the start runs into the next day."""

    weekdays: tuple[int, ...]
    start: str
    end: str
    timezone: str

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in self.weekdays)
        return f"{days} {self.start}-{self.end} {self.timezone}"

    def covers(self, now: datetime) -> bool:
        """Whether ``now`` (aware) falls inside one of the window's occurrences. A window whose
        time zone this machine does not know (any longer) covers nothing: its channel's alerts
        go out rather than wait for a time that cannot be told."""
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return False
        local = now.astimezone(zone)
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        for day in (local.date() - timedelta(days=1), local.date()):
            if day.weekday() not in self.weekdays:
                continue
            opens = datetime.combine(day, start, zone)
            closes = datetime.combine(day + timedelta(days=1) if end <= start else day, end, zone)
            if opens <= local < closes:
                return True
        return False


def _refused(message: str) -> ValidationError:
    return ValidationError([FieldError("window", "Quiet window", message)])


def quoted(value: str) -> str:
    """A value someone typed, short and printable enough to quote back in a message."""
    cut = "".join(c if c.isprintable() else "?" for c in value[:40])
    return cut + ("…" if len(value) > 40 else "")


def parse(weekdays: str, start: str, end: str, timezone: str) -> Window:
    """A window as people write it: days ``mon,tue`` (or ``daily``), times ``22:00``, an IANA zone."""
    words = [w.strip().casefold()[:3] for w in weekdays.split(",") if w.strip()]
    days = tuple(range(7)) if words == ["dai"] else tuple(sorted({DAYS.index(w) for w in words if w in DAYS}))
    if not days or (words != ["dai"] and len(days) != len(set(words))):
        raise _refused(f"'{quoted(weekdays)}' is not a list of days: write e.g. mon,tue,sun or daily.")
    for value in (start, end):
        if not _TIME.match(value.strip()):
            raise _refused(f"'{quoted(value)}' is not a time: write HH:MM, e.g. 22:00.")
    if start.strip() == end.strip():
        raise _refused("The window starts and ends at the same time; give it a length.")
    try:
        if len(timezone.strip()) > TIMEZONE_MAX:
            raise ValueError(timezone)
        ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise _refused(
            f"'{quoted(timezone)}' is not a time zone: use an IANA name, e.g. Europe/London or UTC."
        ) from None
    return Window(days, start.strip(), end.strip(), timezone.strip())
