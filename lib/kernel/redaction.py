"""Keeps secrets out of logs: a registry of sensitive values and a filter that masks them.

Whoever handles a secret registers it: credentials once 8x8 accepted them or they were saved
(the Client ID, the Client Secret, the base64 of ``client_id:secret`` that HTTP Basic sends)
and every access token. Values someone merely typed are not registered: a refused candidate
such as "Trade" would otherwise be masked out of every later audit row.

The registry is sized to the fleet: every connection's credentials stay in it however many
there are (up to MAX_CREDENTIALS connections), and the values registered one by one (tokens,
alert channel URLs and secrets) are the most recently registered, at least MAX_VALUES and twice
as many as there are connections, so a whole run's tokens fit. Masking a text costs the same
whatever the registry holds (:meth:`SecretRegistry.mask`).

:func:`configure_logging` masks them in every log record the process makes, whichever logger
makes it (ours, Streamlit's, uvicorn's): the message, its args and the text of chained
exceptions when the record is made, and ``extra`` fields on the root handlers. Log records are
also masked by shape: credentials in the forms HTTP carries them (``Basic …``, ``Bearer …``, a
field named like a secret: ``client_secret=…``, ``"access_token": "…"``), registered or not.
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
MAX_VALUES = 4096  # values registered one by one: at least this many of the most recent are kept
MAX_CREDENTIALS = 100_000  # connections whose credentials are all kept (a bound on memory, not a fleet size)
SENSITIVE_KEYS = re.compile(r"(secret|password|token|authorization|api[-_]?key|keyring|cookie)", re.IGNORECASE)
# Credentials in the forms HTTP carries them, for log records: an Authorization scheme's
# credentials, and the value of a field named like a secret. Every repetition is bounded, so a
# long hostile text (a URL someone sent) costs linear time.
_SHAPES = (
    (re.compile(r"\b(Basic|Bearer)([ \t]{1,4})[A-Za-z0-9\-._~+/]{8,}=*"), rf"\1\2{MASK}"),  # not "basic checks"
    (
        re.compile(
            r"""((?:secret|password|passwd|token|api[-_]?key|cookie)[\w.-]{0,40}["']?[ \t]{0,4}[:=][ \t]{0,4}"""
            r"""["']?)[^\s"'&,;<>}\]]+""",
            re.IGNORECASE,
        ),
        rf"\1{MASK}",
    ),
)

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class SecretRegistry:
    """A thread-safe set of values to mask, sized to the fleet.

    Two pools: each connection's credentials (:meth:`add_credentials`, by Client ID and secret:
    as many as there are connections, up to MAX_CREDENTIALS), and values registered one by one
    (:meth:`add`), of which the most recently registered are kept: ``limit``, or twice the
    number of connections when that is more. A value registered again counts as recently used.

    Masking finds values through an index: each value is filed under one of its pieces of
    MIN_LENGTH characters, the one shared by the fewest values filed so far, and a text is
    searched only for the values filed under pieces it contains. So masking costs one pass over
    the text and a search per value that may be in it, whatever the number of values (thousands
    are added by each scheduled tick), even when they share long beginnings (``fleet-client-001``,
    ``fleet-client-002``). The index is changed under the lock, its entries replaced, never
    changed in place, so masking needs no lock.
    """

    def __init__(self, limit: int = MAX_VALUES) -> None:
        self.limit = limit
        self._values: dict[str, None] = {}  # insertion order: least recently registered first
        self._credentials: dict[tuple[str, str], tuple[str, ...]] = {}  # likewise
        self._uses: dict[str, int] = {}  # how many pool entries hold each value
        self._filed: dict[str, str] = {}  # value -> the piece it is filed under
        self._index: dict[str, tuple[str, ...]] = {}  # piece -> the values filed under it
        self._lock = threading.Lock()

    def _hold(self, value: str) -> None:
        uses = self._uses.get(value, 0)
        self._uses[value] = uses + 1
        if not uses:
            piece = self._least_filed(value)
            self._filed[value] = piece
            self._index[piece] = (*self._index.get(piece, ()), value)

    def _least_filed(self, value: str) -> str:
        """The piece of ``value`` the fewest values are filed under; from the end, where values
        that differ by a counter or a random tail differ, and the first under which none is."""
        best, fewest = value[-MIN_LENGTH:], -1
        for i in range(len(value) - MIN_LENGTH, -1, -1):
            piece = value[i : i + MIN_LENGTH]
            filed = len(self._index.get(piece, ()))
            if fewest < 0 or filed < fewest:
                best, fewest = piece, filed
                if not filed:
                    break
        return best

    def _let_go(self, value: str) -> None:
        uses = self._uses.pop(value) - 1
        if uses:
            self._uses[value] = uses
            return
        piece = self._filed.pop(value)
        rest = tuple(v for v in self._index[piece] if v != value)
        if rest:
            self._index[piece] = rest
        else:
            del self._index[piece]

    def add(self, *values: str | None) -> None:
        wanted = [v for v in values if v and len(v) >= MIN_LENGTH]
        if not wanted:
            return
        with self._lock:
            for value in wanted:
                if self._values.pop(value, False) is False:  # new (known ones move to the end)
                    self._hold(value)
                self._values[value] = None
            self._trim()

    def add_credentials(self, client_id: str, client_secret: str) -> None:
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        pair = (client_id, client_secret)
        with self._lock:
            known = self._credentials.pop(pair, None)
            if known is None:
                known = tuple(v for v in (client_id, client_secret, basic) if len(v) >= MIN_LENGTH)
                for value in known:
                    self._hold(value)
            self._credentials[pair] = known
            self._trim()

    def _trim(self) -> None:
        while len(self._credentials) > MAX_CREDENTIALS:
            for value in self._credentials.pop(next(iter(self._credentials))):
                self._let_go(value)
        keep = max(self.limit, 2 * len(self._credentials))
        while len(self._values) > keep:
            oldest = next(iter(self._values))
            del self._values[oldest]
            self._let_go(oldest)

    def __len__(self) -> int:
        return len(self._uses)

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of every value replaced by MASK (overlapping ones
        as one)."""
        index = self._index
        if not index or len(text) < MIN_LENGTH:
            return text
        pieces = {text[i : i + MIN_LENGTH] for i in range(len(text) - MIN_LENGTH + 1)}
        found: list[tuple[int, int]] = []
        for piece in pieces:
            for value in index.get(piece, ()):
                at = text.find(value)
                while at >= 0:
                    found.append((at, at + len(value)))
                    at = text.find(value, at + 1)
        if not found:
            return text
        parts, done = [], 0
        for begin, end in sorted(found):
            if begin < done:  # within (or overlapping) the part masked before
                done = max(done, end)
                continue
            parts += [text[done:begin], MASK]
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._credentials.clear()
            self._uses.clear()
            self._filed.clear()
            self._index = {}


registry = SecretRegistry()


def _scrubbed(text: str) -> str:
    """A log record's text: registered values masked, then credentials by their shape."""
    text = registry.mask(text)
    for shape, masked in _SHAPES:
        text = shape.sub(masked, text)
    return text


def _mask_value(value: object) -> object:
    if isinstance(value, str):
        return _scrubbed(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return _scrubbed(repr(value))


def _mask_text(record: logging.LogRecord) -> None:
    """Mask the message (args merged in), the exception chain and the stack of a record."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001  (any error of a bad format string: the handler reports it)
        return
    record.msg = _scrubbed(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        # Formats the whole chain (__cause__ / __context__) and masks it once.
        text = "".join(traceback.format_exception(*record.exc_info))
        record.exc_text = _scrubbed(text.rstrip("\n"))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = _scrubbed(record.stack_info)


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
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(stream)
    root.setLevel(level)
    for handler in root.handlers:
        install(handler)
    for noisy in ("httpx", "httpcore", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
