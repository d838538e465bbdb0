"""Keeps secrets out of logs: a registry of sensitive values and a filter that masks them.

Whoever handles a secret registers it: credentials once 8x8 accepted them or they were saved
(the Client ID, the Client Secret, the base64 of ``client_id:secret`` that HTTP Basic sends)
and every access token. Values someone merely typed are not registered: a refused candidate
such as "Trade" would otherwise be masked out of every later audit row. The registry keeps
the most recently used values only, so it cannot grow without end.

:func:`configure_logging` masks them in every log record the process makes, whichever logger
makes it (ours, Streamlit's, uvicorn's): the message, its args and the text of chained
exceptions when the record is made, and ``extra`` fields on the root handlers.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable

MASK = "***"
# Values shorter than this are not masked: masking a 2-letter value would shred every log
# line. Real 8x8 Client IDs, secrets and tokens are far longer.
MIN_LENGTH = 4
MAX_VALUES = 4096  # the most recently registered values are kept; older ones are let go
SENSITIVE_KEYS = re.compile(r"(secret|password|token|authorization|api[-_]?key|keyring|cookie)", re.IGNORECASE)

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class SecretRegistry:
    """A thread-safe, bounded set of values to mask.

    Masking is a substring search per value, longest first: linear in the number of values,
    with no regular expression to recompile whenever a token is added (a bulk check adds
    hundreds). The longest-first order is made when masking next needs it, not at each change:
    a scheduled tick registers thousands of values between two log lines. A value registered
    again counts as recently used; beyond ``limit`` values the least recently registered are
    dropped (credentials are registered again at every use).
    """

    def __init__(self, limit: int = MAX_VALUES) -> None:
        self.limit = limit
        self._values: dict[str, None] = {}  # insertion order: least recently registered first
        self._ordered: tuple[str, ...] | None = ()  # None: to be sorted again before masking
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        wanted = [v for v in values if v and len(v) >= MIN_LENGTH]
        if not wanted:
            return
        with self._lock:
            changed = False
            for value in wanted:
                if self._values.pop(value, False) is False:  # new (known ones move to the end)
                    changed = True
                self._values[value] = None
            while len(self._values) > self.limit:
                del self._values[next(iter(self._values))]
            if changed:
                self._ordered = None

    def __len__(self) -> int:
        return len(self._values)

    def add_credentials(self, client_id: str, client_secret: str) -> None:
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.add(client_id, client_secret, basic)

    def _longest_first(self) -> tuple[str, ...]:
        ordered = self._ordered
        if ordered is not None:
            return ordered
        with self._lock:
            if self._ordered is None:
                self._ordered = tuple(sorted(self._values, key=len, reverse=True))
            return self._ordered

    def mask(self, text: str) -> str:
        for value in self._longest_first():
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


def _mask_text(record: logging.LogRecord) -> None:
    """Mask the message (args merged in), the exception chain and the stack of a record."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001  (any error of a bad format string: the handler reports it)
        return
    record.msg = registry.mask(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        # Formats the whole chain (__cause__ / __context__) and masks it once.
        text = "".join(traceback.format_exception(*record.exc_info))
        record.exc_text = registry.mask(text.rstrip("\n"))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = registry.mask(record.stack_info)


_factory_lock = threading.Lock()
_masking_factory: Callable[..., logging.LogRecord] | None = None


def mask_every_record() -> None:
    """Mask each record as any logger makes it. Streamlit and uvicorn give their loggers
    handlers of their own (and replace them), which a filter on our handlers never sees."""
    global _masking_factory
    with _factory_lock:
        if _masking_factory is not None and logging.getLogRecordFactory() is _masking_factory:
            return
        make = logging.getLogRecordFactory()

        def masking_factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = make(*args, **kwargs)
            _mask_text(record)
            return record

        _masking_factory = masking_factory
        logging.setLogRecordFactory(masking_factory)


class RedactingFilter(logging.Filter):
    """Masks registered secrets everywhere in a record, ``extra`` fields included (they are
    added after the record is made); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_text(record)
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS:
                continue
            record.__dict__[key] = MASK if SENSITIVE_KEYS.search(key) else _mask_value(value)
        return True


def install(handler: logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


def configure_logging(level: int = logging.INFO) -> None:
    """Every record masked as it is made; the root handler also masks ``extra`` fields;
    the HTTP libraries at WARNING (they log full URLs and, at DEBUG, headers)."""
    mask_every_record()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    for handler in root.handlers:
        install(handler)
    for noisy in ("httpx", "httpcore", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
