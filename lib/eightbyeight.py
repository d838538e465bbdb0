"""The 8x8 client: OAuth2 client-credentials token, one read-only probe per product, and the
classification of whatever comes back into an outcome of ``lib.products.OUTCOMES``.

Everything here is async and lives on one event loop (see ``lib.prober`` for the synchronous
face). Nothing here writes to the database.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from lib.connections import Credentials
from lib.products import (
    ANALYTICS_PATH_PREFIX,
    PRODUCT_KEYS,
    PRODUCTS,
    SETTINGS,
    TOKEN,
    Product,
    Shape,
    products_granted_by,
)
from lib.redaction import MASK, MIN_LENGTH, registry
from lib.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from lib.transport import ShardedTransport

log = logging.getLogger("switchboard.eightbyeight")

TOKEN_PATH = "/oauth/v2/token"
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
DEFAULT_DEADLINE_S = 30.0  # one check, retries and waits included
DEFAULT_POLICY = RetryPolicy()
DETAIL_MAX = 300
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


# --- Models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one product test (or of the token request, ``product == "token"``)."""

    product: str
    outcome: str
    detail: str
    started_at: datetime
    http_status: int | None = None
    duration_ms: int = 0
    granted: frozenset[str] | None = None  # token results: product keys 8x8 lists for the app

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True)
class Target:
    """What one connection check needs: credentials, settings and the products to test."""

    credentials: Credentials
    settings: Mapping[str, str | None]
    products: tuple[str, ...] = PRODUCT_KEYS
    connection_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    expires_at: float  # on the client's clock
    api_products: frozenset[str]

    @property
    def granted(self) -> frozenset[str]:
        return products_granted_by(set(self.api_products))


class _Failed(Exception):
    """An exchange that ended in an outcome other than ok; carries the result to report."""

    def __init__(self, outcome: str, detail: str, http_status: int | None = None) -> None:
        super().__init__(detail)
        self.outcome, self.detail, self.http_status = outcome, detail, http_status


# --- Token cache --------------------------------------------------------------------------


class TokenCache:
    """Tokens in memory only, per credentials, until ``expires_in`` minus a skew.

    Keyed by an HMAC of the credentials under a per-process random key, so a changed secret
    is a different entry and nothing derived from a secret outlives the process. When a
    connection's credentials change, its old token is dropped. One lock per credentials makes
    concurrent callers share a single token request.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._tokens: dict[str, Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._fingerprint_of: dict[uuid.UUID, str] = {}

    def fingerprint(self, credentials: Credentials) -> str:
        material = f"{credentials.client_id}\0{credentials.client_secret.get_secret_value()}"
        return hmac.new(self._key, material.encode(), hashlib.sha256).hexdigest()

    def _bind(self, connection_id: uuid.UUID | None, fp: str) -> None:
        if connection_id is None:
            return
        previous = self._fingerprint_of.get(connection_id)
        if previous is not None and previous != fp:
            self._tokens.pop(previous, None)
            self._locks.pop(previous, None)
        self._fingerprint_of[connection_id] = fp

    def valid(self, fp: str) -> Token | None:
        token = self._tokens.get(fp)
        return token if token is not None and self._clock() < token.expires_at else None

    async def get(self, target: Target, fetch: Callable[[], Awaitable[Token]]) -> tuple[Token, bool]:
        """The cached token, or a new one from ``fetch``; True when fetched by this call."""
        fp = self.fingerprint(target.credentials)
        self._bind(target.connection_id, fp)
        lock = self._locks.setdefault(fp, asyncio.Lock())
        async with lock:
            token = self.valid(fp)
            if token is not None:
                return token, False
            token = await fetch()
            self._tokens[fp] = token
            return token, True

    def invalidate(self, target: Target, token: Token) -> None:
        """Forget ``token`` if it is still the cached one (a newer one is kept)."""
        fp = self.fingerprint(target.credentials)
        if self._tokens.get(fp) is token:
            del self._tokens[fp]

    def skew(self, expires_in: int) -> float:
        return min(60.0, expires_in * 0.1)

    def expiry(self, expires_in: int) -> float:
        return self._clock() + expires_in - self.skew(expires_in)


# --- Reading 8x8's answers ----------------------------------------------------------------


def _clean(text: str) -> str:
    text = " ".join(registry.mask(text).split())
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


def vendor_message(response: httpx.Response) -> str:
    """8x8's own words from an error body (OAuth, Apigee fault or problem shapes), masked."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    fault = body.get("fault")
    if isinstance(fault, dict):
        code = (fault.get("detail") or {}).get("errorcode", "") if isinstance(fault.get("detail"), dict) else ""
        return _clean(" – ".join(str(p) for p in (fault.get("faultstring"), code) if p))
    parts = [body.get("ErrorCode"), body.get("Error"), body.get("message")]
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts.append(errors[0])
    return _clean(" – ".join(str(p) for p in parts if p))


def _with_vendor(text: str, response: httpx.Response) -> str:
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


def _expires_in(body: Mapping[str, Any]) -> int:
    """8x8 sends numbers as strings ("1799")."""
    value = body.get("expires_in")
    try:
        seconds = int(str(value).strip())
    except (TypeError, ValueError):
        raise _Failed("unexpected_response", "The token answer has no usable expires_in.") from None
    if seconds <= 0:
        raise _Failed("unexpected_response", "The token answer says the token has already expired.")
    return seconds


def _shape_summary(shape: Shape, body: Any) -> str | None:
    """A short description of a successful body, or None when it has the wrong shape."""
    if shape is Shape.JSON_ARRAY and isinstance(body, list):
        return f"{len(body)} item(s) on the first page."
    if shape is Shape.STRING_ARRAY and isinstance(body, list) and all(isinstance(i, str) for i in body):
        return "Regions holding data: " + (", ".join(body) if body else "none yet") + "."
    if shape is Shape.COUNT:
        if isinstance(body, int) and not isinstance(body, bool):
            return f"Count: {body}."
        if isinstance(body, str) and body.strip().isdigit():
            return f"Count: {body.strip()}."
    if shape is Shape.PAGED_DATA and isinstance(body, dict) and isinstance(body.get("data"), list):
        return f"{len(body['data'])} item(s) on the first page."
    return None


_SHAPE_WORDS = {
    Shape.JSON_ARRAY: "a JSON array",
    Shape.STRING_ARRAY: "a JSON array of region names",
    Shape.COUNT: "a number",
    Shape.PAGED_DATA: 'a JSON object with a "data" list',
}


def _is_tls_failure(exc: BaseException) -> bool:
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


# --- The client ---------------------------------------------------------------------------


class EightByEight:
    """Talks to 8x8 (or the simulator) over one shared httpx.AsyncClient.

    Create and use it on one event loop only. ``sleep`` and ``clock`` are injectable so tests
    can observe back-off without waiting.
    """

    def __init__(
        self,
        base_url: str,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = 20,
        per_connection: int = 5,
        deadline_s: float = DEFAULT_DEADLINE_S,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.deadline_s = deadline_s
        self.per_connection = per_connection
        self.tokens = TokenCache(clock)
        self._sleep = sleep
        self._global = asyncio.Semaphore(max_connections)
        self.http = httpx.AsyncClient(
            timeout=timeout,
            transport=ShardedTransport(max_connections),  # TLS verification always on
            follow_redirects=False,
            headers={"User-Agent": "Switchboard (8x8 connection tester)"},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- transport with retries --

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Send with the retry policy: 429, 5xx and connect errors only. Raises _Failed."""
        host = request.url.host
        attempts = self.policy.max_retries + 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                async with self._global:
                    response = await self.http.send(request)
            except httpx.ConnectError as exc:
                if _is_tls_failure(exc):
                    raise _Failed("tls_error", f"The certificate of {host} could not be verified, so "
                                  "nothing was sent. " + _clean(str(exc))) from None
                if last:
                    raise _Failed("network_error", f"Could not connect to {host} ({attempts} attempts): "
                                  + _clean(str(exc) or type(exc).__name__)) from None
            except httpx.ConnectTimeout:
                if last:
                    raise _Failed("timeout", f"Connecting to {host} timed out ({attempts} attempts).") from None
            except httpx.TimeoutException as exc:
                raise _Failed("timeout", f"{host} did not answer in time ({type(exc).__name__}).") from None
            except httpx.TransportError as exc:
                raise _Failed("network_error", f"The connection to {host} failed: "
                              + _clean(str(exc) or type(exc).__name__)) from None
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
                wait = self._wait_before_retry(response, attempt)
                if wait is None:
                    return response
                await self._sleep(wait)
                continue
            await self._sleep(self.policy.backoff(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait_before_retry(self, response: httpx.Response, attempt: int) -> float | None:
        """Retry-After when given (None when above the cap: report at once), else back-off."""
        asked = parse_retry_after(response.headers.get("Retry-After"))
        if asked is None:
            return self.policy.backoff(attempt)
        return asked if asked <= self.policy.max_retry_after else None

    def _status_failure(self, response: httpx.Response, what: str) -> _Failed:
        status = response.status_code
        if status == 429:
            asked = parse_retry_after(response.headers.get("Retry-After"))
            if asked is not None and asked > self.policy.max_retry_after:
                return _Failed("rate_limited", f"8x8 rate-limited {what} and asked to wait {asked:.0f} s, "
                               f"longer than Switchboard waits ({self.policy.max_retry_after:.0f} s).", status)
            return _Failed("rate_limited", f"8x8 kept answering 429 Too Many Requests for {what}, "
                           "also after retries.", status)
        if status >= 500:
            return _Failed("vendor_error", _with_vendor(f"8x8 answered HTTP {status} for {what}, "
                                                       "also after retries.", response), status)
        if 300 <= status < 400:
            return _Failed("unexpected_response", f"8x8 answered {what} with a redirect (HTTP {status}), "
                           "which Switchboard does not follow. Check SWITCHBOARD_8X8_BASE_URL.", status)
        return _Failed("unexpected_response", _with_vendor(f"8x8 answered HTTP {status} for {what}.", response),
                       status)

    async def _timed(self, product: str, work: Callable[[], Awaitable[tuple[str, int | None, Any]]]
                     ) -> tuple[ProbeResult, Any]:
        """Run ``work`` under the per-check deadline and turn it into a ProbeResult."""
        started, t0 = datetime.now(timezone.utc), time.perf_counter()
        extra: Any = None
        try:
            async with asyncio.timeout(self.deadline_s):
                detail, status, extra = await work()
            outcome = "ok"
        except _Failed as failed:
            outcome, detail, status = failed.outcome, failed.detail, failed.http_status
        except TimeoutError:
            outcome, detail, status = "timeout", f"The check took longer than {self.deadline_s:g} s.", None
        duration = int((time.perf_counter() - t0) * 1000)
        return ProbeResult(product, outcome, detail, started, status, duration), extra

    # -- token --

    async def _fetch_token(self, credentials: Credentials) -> Token:
        secret = credentials.client_secret.get_secret_value()
        basic = base64.b64encode(f"{credentials.client_id}:{secret}".encode()).decode()
        request = self.http.build_request(
            "POST", self.base_url + TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            headers={"Accept": "application/json", "Authorization": f"Basic {basic}"},
        )
        response = await self._send(request)
        try:
            token = self._read_token(response)
        except _Failed as failed:
            # Refused candidates never join the masking registry (they would mask later audit
            # rows); they are kept out of this one answer instead.
            for value in (basic, secret, credentials.client_id):
                if len(value) >= MIN_LENGTH:
                    failed.detail = failed.detail.replace(value, MASK)
            raise
        registry.add_credentials(credentials.client_id, secret)  # 8x8 accepted them
        return token

    def _read_token(self, response: httpx.Response) -> Token:
        if response.status_code in (400, 401):
            body_code = vendor_message(response)
            if response.status_code == 401 or "client" in body_code.lower():
                raise _Failed("bad_credentials", _with_vendor(
                    "8x8 refused the Client ID and Client Secret.", response), response.status_code)
        if response.status_code == 403:
            raise _Failed("forbidden", _with_vendor("8x8 refused to issue a token for this app.", response), 403)
        if response.status_code == 404:
            raise _Failed("not_found", f"No token endpoint at {self.base_url}{TOKEN_PATH} (HTTP 404). "
                          "Check SWITCHBOARD_8X8_BASE_URL.", 404)
        if not response.is_success:
            raise self._status_failure(response, "the token request")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise _Failed("unexpected_response", f"HTTP {response.status_code}, but the answer is not an "
                          "OAuth token (no access_token).", response.status_code)
        registry.add(body["access_token"])
        return Token(access_token=body["access_token"], expires_at=self.tokens.expiry(_expires_in(body)),
                     api_products=parse_api_products(body))

    async def token(self, target: Target) -> tuple[ProbeResult, Token | None, bool]:
        """(result of the token step, the token or None, True when fetched now)."""
        holder: dict[str, Any] = {}

        async def work() -> tuple[str, int | None, Any]:
            token, fresh = await self.tokens.get(target, lambda: self._fetch_token(target.credentials))
            holder["fresh"] = fresh
            names = ", ".join(sorted(token.api_products)) or "no API products"
            verb = "Token issued" if fresh else "Reused a valid token"
            return f"{verb}; 8x8 lists: {names}.", 200 if fresh else None, token

        result, token = await self._timed(TOKEN, work)
        if token is not None:
            result = ProbeResult(result.product, result.outcome, result.detail, result.started_at,
                                 result.http_status, result.duration_ms, granted=token.granted)
        return result, token, bool(holder.get("fresh"))

    # -- product probes --

    async def _call_probe(self, product: Product, target: Target, token: Token) -> httpx.Response:
        path, params, headers = build_probe(product, target.settings)
        request = self.http.build_request(
            product.probe.method, self.base_url + path, params=params,
            headers={**headers, "Authorization": f"Bearer {token.access_token}"},
        )
        return await self._send(request)

    async def probe(self, product_key: str, target: Target, token: Token, *, fresh: bool) -> ProbeResult:
        product = PRODUCTS[product_key]
        missing = missing_settings(product, target.settings)
        if missing:
            labels = " and ".join(SETTINGS[key].label for key in missing)
            return ProbeResult(product_key, "missing_config", f"Not tested: set the {labels} of this "
                               "connection.", datetime.now(timezone.utc))

        async def work() -> tuple[str, int | None, None]:
            used = token
            response = await self._call_probe(product, target, used)
            if response.status_code == 401 and not fresh:
                # The cached token may have expired or been revoked: one refresh, then judge.
                self.tokens.invalidate(target, used)
                used, _ = await self.tokens.get(target, lambda: self._fetch_token(target.credentials))
                response = await self._call_probe(product, target, used)
            return self._judge(product, target, used, response), response.status_code, None

        result, _ = await self._timed(product_key, work)
        return result

    def _judge(self, product: Product, target: Target, token: Token, response: httpx.Response) -> str:
        """Detail of an ok answer, or raise _Failed with the outcome of any other answer."""
        status = response.status_code
        path = response.request.url.path
        if response.is_success:
            try:
                summary = _shape_summary(product.probe.success, response.json())
            except ValueError:
                summary = None
            if summary is None:
                raise _Failed("unexpected_response", f"HTTP {status}, but the answer is not "
                              f"{_SHAPE_WORDS[product.probe.success]} as {product.name} returns.", status)
            return summary
        if status == 401:
            listed = ", ".join(sorted(token.api_products)) or "nothing"
            raise _Failed("product_not_enabled", _with_vendor(
                f"8x8 refused {product.name} with a valid token; the app's token lists: {listed}.", response), status)
        if status == 403:
            raise _Failed("forbidden", _with_vendor(f"8x8 denied access to {path}.", response), status)
        if status == 404:
            regions = ", ".join(f"{SETTINGS[k].label} '{target.settings.get(k)}'" for k in product.needs
                                if SETTINGS[k].choices)
            raise _Failed("not_found", f"8x8 has nothing at {path} (HTTP 404); check the {regions}.", status)
        if status == 400:
            said = vendor_message(response)
            if "X-Tenant-Info" in said and "missing" in said:
                raise _Failed("missing_config", f"8x8 says this account has several tenants: set the "
                              f"{SETTINGS['tenant_id'].label}. 8x8 said: {said}", status)
            if "X-Tenant-Info" in said:
                raise _Failed("forbidden", f"8x8 did not accept the tenant ID. 8x8 said: {said}", status)
        raise self._status_failure(response, product.name)

    # -- a whole connection --

    async def check(self, target: Target) -> AsyncIterator[ProbeResult]:
        """The token result (when a token was requested or failed), then one result per product,
        as they finish. At most ``per_connection`` requests of this connection run at once."""
        token_result, token, fresh = await self.token(target)
        if fresh or not token_result.ok:
            yield token_result
        if token is None:
            for key in target.products:
                yield ProbeResult(key, token_result.outcome, "Not tested: the token request failed. "
                                  + token_result.detail, token_result.started_at, token_result.http_status)
            return
        limit = asyncio.Semaphore(self.per_connection)

        async def one(key: str) -> ProbeResult:
            async with limit:
                return await self.probe(key, target, token, fresh=fresh)

        for finished in asyncio.as_completed([one(key) for key in target.products]):
            yield await finished

    async def verify(self, credentials: Credentials) -> ProbeResult:
        """Ask 8x8 for a token with these (candidate) credentials; nothing else is called."""
        result, _, _ = await self.token(Target(credentials=credentials, settings={}))
        return result

