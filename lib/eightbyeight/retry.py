"""When to retry an 8x8 call and how long to wait: capped exponential back-off with jitter,
and Retry-After honoured (seconds or an HTTP date) up to a cap, and read as no more than a day."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from lib.catalogue import policy

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CEILING = policy.RETRY_AFTER_CEILING_S


@dataclass(frozen=True)
class RetryPolicy:
    """The numbers of lib.catalogue.policy, replaceable in tests."""

    max_retries: int = policy.MAX_RETRIES
    base_delay: float = policy.BACKOFF_FIRST_S
    max_delay: float = policy.BACKOFF_MAX_S
    jitter: float = policy.BACKOFF_JITTER  # each back-off is shortened by up to this fraction
    max_retry_after: float = policy.MAX_RETRY_AFTER_S  # a server asking for longer is reported, not waited for

    def backoff(self, retry_number: int, rand: random.Random | None = None) -> float:
        """Delay before retry ``retry_number`` (1-based) when the server gave no Retry-After."""
        delay: float = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return delay * (1 - (rand or random).uniform(0, self.jitter))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date): None when it is
    neither, else within [0, RETRY_AFTER_CEILING_S] whatever was sent (an epoch in milliseconds,
    a date in the year 9999, a thousand digits)."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # str.isdigit alone accepts "²", which float() refuses
        return min(float(value), CEILING)  # a thousand digits: inf, not int()'s ValueError
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, seconds), CEILING)
