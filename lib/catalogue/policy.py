"""How Switchboard calls 8x8: retries, waits, deadlines and limits, in one place.

The 8x8 client runs on these numbers, and the words the console and the guide use quote them
from here, so the two cannot disagree.
"""

from __future__ import annotations

MAX_RETRIES = 2  # after the first attempt; only 429, 5xx and failed connections are retried
BACKOFF_FIRST_S = 0.5  # the first wait, doubled at each retry
BACKOFF_MAX_S = 8.0
BACKOFF_JITTER = 0.25  # each wait is shortened by up to this fraction
MAX_RETRY_AFTER_S = 20.0  # 8x8 asking for a longer wait is reported at once, not waited for
# A Retry-After is read as at most this: some gateways send an epoch in milliseconds, which is
# not a wait anyone means, and no value of a header may reach a date calculation unbounded.
RETRY_AFTER_CEILING_S = 86_400.0
CHECK_DEADLINE_S = 30.0  # one check, retries and waits included
# No write timeout of its own: a probe's request is a few hundred bytes, and CHECK_DEADLINE_S bounds it.
CONNECT_TIMEOUT_S, READ_TIMEOUT_S, POOL_TIMEOUT_S = 5.0, 15.0, 5.0
MAX_IN_FLIGHT = 20  # requests at once, all connections together
PER_CONNECTION = 5  # requests at once for one connection
# 8x8's answers to our requests are a few KiB: reading stops past these, and the answer is
# reported as unexpected (it shares the process with the console).
MAX_ANSWER_BYTES = 1 << 20  # a body
MAX_HEADER_LINE_BYTES = 8190  # the status line, and each header (name and value)
MAX_HEADERS = 100
MAX_TOKEN_CHARS = 4096  # an access token (8x8's are 28 characters; it travels in a header)


def times(count: int) -> str:
    """'once', 'twice', 'three times'... for help texts."""
    return {1: "once", 2: "twice", 3: "three times"}.get(count, f"{count} times")
