"""Keeps secrets out of logs: a registry of sensitive values and a filter that masks them.

Whoever handles a secret registers it (the Client ID, the Client Secret, the base64 of
``client_id:secret`` that HTTP Basic sends, every access token). The filter, installed on
every handler of the root logger by :func:`configure_logging`, replaces them with ``***`` in
the message, its args, ``extra`` fields and the text of chained exceptions.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
import traceback

MASK = "***"
# Values shorter than this are not masked: masking a 2-letter value would shred every log
# line. Real 8x8 Client IDs, secrets and tokens are far longer.
MIN_LENGTH = 4
SENSITIVE_KEYS = re.compile(r"(secret|password|token|authorization|api[-_]?key|keyring|cookie)", re.I)

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class SecretRegistry:
    """A thread-safe set of values to mask.

    Masking is a substring search per value, longest first: linear in the number of values,
    with no regular expression to recompile whenever a token is added (a bulk check adds
    hundreds).
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._ordered: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        fresh = {v for v in values if v and len(v) >= MIN_LENGTH} - self._values
        if fresh:
            with self._lock:
                self._values |= fresh
                self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    def add_credentials(self, client_id: str, client_secret: str) -> None:
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.add(client_id, client_secret, basic)

    def mask(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._ordered = ()


registry = SecretRegistry()


def _mask_value(value: object) -> object:
    if isinstance(value, str):
        return registry.mask(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return registry.mask(repr(value))


class RedactingFilter(logging.Filter):
    """Masks registered secrets everywhere in a record; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = registry.mask(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            # Formats the whole chain (__cause__ / __context__) and masks it once.
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = registry.mask(text.rstrip("\n"))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = registry.mask(record.stack_info)
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS:
                continue
            record.__dict__[key] = MASK if SENSITIVE_KEYS.search(key) else _mask_value(value)
        return True


def install(handler: logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


def configure_logging(level: int = logging.INFO) -> None:
    """Root handler with the redaction filter; httpx/httpcore at WARNING (they log full URLs
    and, at DEBUG, response headers)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    for handler in root.handlers:
        install(handler)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
