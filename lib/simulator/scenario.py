"""What the simulator pretends 8x8 knows: API apps, knobs and injected faults.

A scenario is plain data, loaded from JSON (see README.md beside this file). Every value is
checked when a dataclass is built, so a mistake in a scenario file or in a test fails at once
with a :class:`ScenarioError` that names the field (``apps[1].products[0]: ...``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from lib.catalogue.products import (
    ANALYTICS_REGIONS,
    CHAT_REGIONS,
    PRODUCT_KEYS,
    STORAGE_REGIONS,
    TOKEN,
)
from lib.kernel.errors import ConfigError

# Names a fault can target: the token endpoint or one product probe.
ROUTE_NAMES: tuple[str, ...] = (TOKEN, *PRODUCT_KEYS)
MALFORMED_KINDS: tuple[str, ...] = ("html", "json")
DEFAULT_TOKEN_LIFETIME_S = 1799  # what 8x8's documentation sample shows
KNOB_NAMES: tuple[str, ...] = ("latency_ms", "token_lifetime_s")  # changeable at runtime

T = TypeVar("T")


class ScenarioError(ConfigError):
    """A scenario (file, dict or dataclass) has a value the simulator cannot use.

    ``field`` is the dotted path of the offending value, e.g. ``apps[1].products[0]``.
    """

    def __init__(self, problem: str, field: str = "", source: str = "") -> None:
        self.problem = problem
        self.field = field
        super().__init__(": ".join(part for part in (source, field, problem) if part))


def _fail(where: str, problem: str) -> ScenarioError:
    return ScenarioError(problem, where)


def _within(where: str, exc: ScenarioError) -> ScenarioError:
    """Re-anchor an error raised by a nested dataclass under its place in the scenario."""
    return ScenarioError(exc.problem, ".".join(part for part in (where, exc.field) if part))


def _text(value: object, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"must be a non-empty string, got {value!r}")
    return value


def _count(value: object, where: str, *, minimum: int = 0) -> int:
    # bool is an int in Python; "true" is never a valid count.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, f"must be a whole number >= {minimum}, got {value!r}")
    return value


def _choice(value: object, choices: Sequence[str], where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(where, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _choices(values: object, choices: Sequence[str], where: str) -> tuple[str, ...]:
    items = _strings(values, where)
    for i, item in enumerate(items):
        _choice(item, choices, f"{where}[{i}]")
    return items


def _strings(values: object, where: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise _fail(where, f"must be a list of strings, got {values!r}")
    items = tuple(values)
    for i, item in enumerate(items):
        _text(item, f"{where}[{i}]")
        if item in items[:i]:
            raise _fail(f"{where}[{i}]", f"{item!r} is listed twice")
    return items


def _build(cls: type[T], data: object, where: str) -> T:
    """``cls(**data)`` with the unknown, missing or mistyped key named in the error."""
    if not isinstance(data, Mapping):
        raise _fail(where, f"must be a JSON object, got {type(data).__name__}")
    declared = [f for f in fields(cls) if f.init]  # type: ignore[arg-type]
    known = {f.name for f in declared}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for f in declared:
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING:
            raise _fail(".".join(p for p in (where, f.name) if p), "is required")
    try:
        return cls(**data)
    except ScenarioError as exc:
        raise _within(where, exc) from None


@dataclass(frozen=True)
class App:
    """One 8x8 Admin Console API app (a client id and secret) and what its customer has.

    Lists are stored as tuples. ``application_name`` and ``customer_id`` default to stable
    values derived from the client id, so a scenario file rarely needs them.
    """

    client_id: str
    client_secret: str
    products: Sequence[str] = ()
    tenants: Sequence[str] = ()
    pbx_names: Sequence[str] = ()
    analytics_region: str = "us"
    storage_regions: Sequence[str] = ("us-west",)
    qm_region: str = "us-west"
    chat_region: str = "us"
    application_name: str = ""
    customer_id: str = ""

    def __post_init__(self) -> None:
        _text(self.client_id, "client_id")
        if ":" in self.client_id:  # HTTP Basic splits id and secret at the first colon
            raise _fail("client_id", "must not contain ':'")
        _text(self.client_secret, "client_secret")
        set_ = object.__setattr__  # frozen: normalise lists to tuples once, here
        set_(self, "products", _choices(self.products, PRODUCT_KEYS, "products"))
        set_(self, "tenants", _strings(self.tenants, "tenants"))
        set_(self, "pbx_names", _strings(self.pbx_names, "pbx_names"))
        _choice(self.analytics_region, ANALYTICS_REGIONS, "analytics_region")
        set_(self, "storage_regions", _choices(self.storage_regions, STORAGE_REGIONS, "storage_regions"))
        _choice(self.qm_region, STORAGE_REGIONS, "qm_region")
        _choice(self.chat_region, CHAT_REGIONS, "chat_region")
        stable = uuid.uuid5(uuid.NAMESPACE_URL, f"switchboard-simulator:{self.client_id}")
        if self.application_name == "":
            set_(self, "application_name", str(stable))
        _text(self.application_name, "application_name")
        if self.customer_id == "":
            set_(self, "customer_id", f"customer-{stable.hex[:8]}")
        _text(self.customer_id, "customer_id")

    @property
    def multi_tenant(self) -> bool:
        """8x8 requires ``X-Tenant-Info`` on analytics calls when a customer has several tenants."""
        return len(self.tenants) > 1


@dataclass(frozen=True)
class Fault:
    """A misbehaviour of one route, optionally for one client id only.

    ``status`` answers with that code (plus ``Retry-After`` when set); ``malformed`` answers
    2xx with a body the product never returns; ``delay_ms`` sleeps first. ``times`` limits
    the fault to the first N matching calls; ``None`` means every call.
    """

    route: str
    client_id: str | None = None
    status: int | None = None
    retry_after: str | None = None
    delay_ms: int = 0
    malformed: Literal["html", "json"] | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        _choice(self.route, ROUTE_NAMES, "route")
        _text(self.client_id, "client_id", optional=True)
        if isinstance(self.malformed, bool):  # JSON true/false: the JSON variety, or none
            object.__setattr__(self, "malformed", "json" if self.malformed else None)
        if self.malformed is not None:
            _choice(self.malformed, MALFORMED_KINDS, "malformed")
        if self.status is not None:
            _count(self.status, "status", minimum=200)
            if self.status > 599:
                raise _fail("status", f"must be an HTTP status 200..599, got {self.status}")
            if self.malformed and self.status >= 300:
                raise _fail("status", "a malformed answer is a 2xx; drop status or use 200")
            if not self.malformed and self.status < 400:
                raise _fail("status", "must be an error (400..599) unless malformed is set")
        if self.retry_after is not None:
            _retry_after(self.retry_after)
            if self.status is None or self.status < 400:
                raise _fail("retry_after", "needs an error status such as 429 or 503")
        _count(self.delay_ms, "delay_ms")
        if self.times is not None:
            _count(self.times, "times", minimum=1)
        if self.status is None and self.malformed is None and self.delay_ms == 0:
            raise _fail("", "a fault needs at least one of status, malformed or delay_ms")

    @classmethod
    def from_dict(cls, data: object, where: str = "fault") -> Fault:
        return _build(cls, data, where)


def _retry_after(value: object) -> None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    text = _text(value, "retry_after")
    assert text is not None
    if text.isdigit():
        return
    try:
        parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise _fail("retry_after", f"{text!r} is neither whole seconds nor an HTTP date") from None


@dataclass(frozen=True)
class Scenario:
    """The apps 8x8 knows, plus the knobs and faults the simulator starts with.

    Apps are looked up by client id in a dict made here: every simulated request looks one
    up, and a scan of the list cost the simulator more CPU per request than answering it at
    bench fleet sizes (10,000 apps).
    """

    apps: Sequence[App] = ()
    latency_ms: int = 0
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S
    faults: Sequence[Fault] = ()
    _by_client_id: Mapping[str, App] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.apps, (str, Mapping)) or not isinstance(self.apps, Sequence):
            raise _fail("apps", "must be a list of apps")
        by_client_id: dict[str, App] = {}
        for i, app in enumerate(self.apps):
            if not isinstance(app, App):
                raise _fail(f"apps[{i}]", f"must be an App, got {type(app).__name__}")
            if app.client_id in by_client_id:
                raise _fail(f"apps[{i}].client_id", f"{app.client_id!r} is used twice")
            by_client_id[app.client_id] = app
        object.__setattr__(self, "apps", tuple(self.apps))
        object.__setattr__(self, "_by_client_id", by_client_id)
        _count(self.latency_ms, "latency_ms")
        _count(self.token_lifetime_s, "token_lifetime_s")
        if isinstance(self.faults, (str, Mapping)) or not isinstance(self.faults, Sequence):
            raise _fail("faults", "must be a list of faults")
        for i, fault in enumerate(self.faults):
            if not isinstance(fault, Fault):
                raise _fail(f"faults[{i}]", f"must be a Fault, got {type(fault).__name__}")
        object.__setattr__(self, "faults", tuple(self.faults))

    def app(self, client_id: str) -> App | None:
        return self._by_client_id.get(client_id)

    @classmethod
    def from_dict(cls, data: object) -> Scenario:
        """Build a scenario from parsed JSON, naming the offending field on any error."""
        if not isinstance(data, Mapping):
            raise _fail("scenario", f"must be a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = dict(data)
        for key, kind in (("apps", App), ("faults", Fault)):
            items = values.get(key, [])
            if not isinstance(items, list):
                raise _fail(key, f"must be a list, got {type(items).__name__}")
            values[key] = [_build(kind, item, f"{key}[{i}]") for i, item in enumerate(items)]
        return _build(cls, values, "")


def check_knobs(data: object) -> dict[str, int]:
    """Validate a partial update of the runtime knobs (the control API's ``PUT /_sim/knobs``)."""
    if not isinstance(data, Mapping):
        raise _fail("knobs", f"must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(KNOB_NAMES))
    if unknown:
        raise _fail("knobs", f"unknown knob(s) {', '.join(unknown)}; known: {', '.join(KNOB_NAMES)}")
    return {name: _count(value, name) for name, value in data.items()}


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario JSON file; every problem is a :class:`ScenarioError` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read the file ({exc.strerror})", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", source=str(path)
        ) from None
    try:
        return Scenario.from_dict(data)
    except ScenarioError as exc:
        raise ScenarioError(exc.problem, exc.field, source=str(path)) from None
