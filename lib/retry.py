"""When to retry an 8x8 call and how long to wait: capped exponential back-off with jitter,
and Retry-After honoured (seconds or an HTTP date) up to a cap."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25  # each back-off is shortened by up to this fraction
    max_retry_after: float = 20.0  # a server asking for longer is reported, not waited for

    def backoff(self, retry_number: int, rand: random.Random | None = None) -> float:
        """Delay before retry ``retry_number`` (1-based) when the server gave no Retry-After."""
        delay = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return delay * (1 - (rand or random).uniform(0, self.jitter))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
