"""Reading 8x8's answers: error bodies, token product lists, the shape of a good answer,
and the path, parameters and headers of each probe."""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from lib.catalogue.products import ANALYTICS_PATH_PREFIX, SETTINGS, Product, Shape
from lib.kernel.redaction import registry
from lib.kernel.words import count

DETAIL_MAX = 300  # 8x8's own words quoted in a detail
DETAIL_LIMIT = 1000  # a whole detail, whatever an answer held
COUNT_MAX = 10**15 - 1  # a count past this is no count of 8x8's
_DIGITS = re.compile(r"[0-9]{1,15}")  # ASCII only: "²".isdigit() is true, and int("²") fails


class Failed(Exception):
    """An exchange that ended in an outcome other than ok; carries the result to report."""

    def __init__(
        self, outcome: str, detail: str, http_status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(detail)
        self.outcome, self.detail, self.http_status = outcome, detail, http_status
        self.retry_after_s = retry_after_s


def clip(text: str, limit: int = DETAIL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean(text: str) -> str:
    return clip(" ".join(registry.mask(text).split()), DETAIL_MAX)


def read_json(response: httpx.Response) -> Any:
    """The answer's body as JSON, or None when it is not JSON that can be read (malformed, not
    UTF-8, or nested deeper than the parser recurses: ``[[[[…`` raises RecursionError)."""
    try:
        return response.json()
    except (ValueError, RecursionError):
        return None


def vendor_message(response: httpx.Response) -> str:
    """8x8's own words from an error body (OAuth, Apigee fault or problem shapes), masked."""
    body = read_json(response)
    if not isinstance(body, dict):
        return ""
    fault = body.get("fault")
    if isinstance(fault, dict):
        code = (fault.get("detail") or {}).get("errorcode", "") if isinstance(fault.get("detail"), dict) else ""
        return clean(" – ".join(str(p) for p in (fault.get("faultstring"), code) if p))
    parts = [body.get("ErrorCode"), body.get("Error"), body.get("message")]
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts.append(errors[0])
    return clean(" – ".join(str(p) for p in parts if p))


def with_vendor(text: str, response: httpx.Response) -> str:
    said = vendor_message(response)
    return f"{text} 8x8 said: {said}" if said else text


def parse_api_products(body: Mapping[str, Any]) -> frozenset[str]:
    """8x8 sends ``api_product_list`` as a string like "[a, b]" and ``api_product_list_json``
    as an array; either may be missing."""
    names: set[str] = set()
    listed = body.get("api_product_list")
    if isinstance(listed, str):
        names |= {part.strip() for part in listed.strip().strip("[]").split(",") if part.strip()}
    elif isinstance(listed, list):
        names |= {str(part).strip() for part in listed}
    as_json = body.get("api_product_list_json")
    if isinstance(as_json, list):
        names |= {str(part).strip() for part in as_json}
    return frozenset(names)


def require_lifetime(body: Mapping[str, Any]) -> None:
    """Failed unless the token answer gives the token a lifetime (8x8 sends ``expires_in`` as a
    string, "1799"): a token already expired would have every product refuse it, which would
    read as products not enabled."""
    value = body.get("expires_in")
    try:
        seconds = int(str(value).strip())
    except (TypeError, ValueError):
        raise Failed("unexpected_response", "The token answer has no usable expires_in.") from None
    if seconds <= 0:
        raise Failed("unexpected_response", "The token answer says the token has already expired.")


def shape_summary(product: Product, body: Any) -> str | None:
    """What a successful body says, in the product's own words (how many of the things it reads,
    from which product), or None when the body has the wrong shape."""
    shape, reads = product.probe.success, product.reads
    if shape is Shape.STRING_ARRAY:
        if isinstance(body, list) and all(isinstance(i, str) for i in body):
            return f"{reads.many[:1].upper()}{reads.many[1:]}: {', '.join(body) or 'none yet'}."
        return None
    found = _how_many(shape, body)
    if found is None:
        return None
    done = "counted by" if shape is Shape.COUNT else "read from"
    return f"{count(found, reads.one, reads.many)} {done} {product.name}."


def _how_many(shape: Shape, body: Any) -> int | None:
    """How many things a body of ``shape`` holds, or None when it is not of that shape. A count
    is a whole number from 0 to COUNT_MAX, as a JSON number or a string of ASCII digits."""
    if shape is Shape.JSON_ARRAY and isinstance(body, list):
        return len(body)
    if shape is Shape.PAGED_DATA and isinstance(body, dict) and isinstance(body.get("data"), list):
        return len(body["data"])
    if shape is Shape.COUNT:
        if isinstance(body, str) and _DIGITS.fullmatch(body.strip()):
            body = int(body.strip())
        if isinstance(body, int) and not isinstance(body, bool) and 0 <= body <= COUNT_MAX:
            return body
    return None


SHAPE_WORDS = {
    Shape.JSON_ARRAY: "a JSON array",
    Shape.STRING_ARRAY: "a JSON array of region names",
    Shape.COUNT: "a count (a whole number)",
    Shape.PAGED_DATA: 'a JSON object with a "data" list',
}


def is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text and "certificate" in text


def missing_settings(product: Product, settings: Mapping[str, str | None]) -> list[str]:
    """The settings ``product`` needs that are unset, or set to something no probe URL may
    carry (a value stored before validation was as strict as it is now)."""
    return [key for key in product.needs if not SETTINGS[key].accepts(settings.get(key) or "")]


def build_probe(product: Product, settings: Mapping[str, str | None]) -> tuple[str, dict[str, str], dict[str, str]]:
    """(path, query parameters, headers) of a product's probe for these settings."""
    values = {key: settings.get(key) or "" for key in SETTINGS}
    values["analytics_prefix"] = ANALYTICS_PATH_PREFIX.get(values["analytics_region"], "")
    path = product.probe.path.format(**values)
    headers = dict(product.probe.headers)
    for header, setting in product.probe.setting_headers.items():
        if settings.get(setting):
            headers[header] = str(settings[setting])
    return path, dict(product.probe.params), headers
