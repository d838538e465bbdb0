"""The async 8x8 client: OAuth2 client-credentials token, one read-only probe per product, and
the classification of whatever comes back into an outcome of the catalogue.

Everything here lives on one event loop (see lib.eightbyeight.prober for the synchronous
face). Nothing here writes to the database.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx

from lib.catalogue import policy
from lib.catalogue.products import PRODUCTS, SETTINGS, TOKEN, Product
from lib.eightbyeight.answers import (
    SHAPE_WORDS,
    Failed,
    build_probe,
    clean,
    clip,
    is_tls_failure,
    missing_settings,
    parse_api_products,
    read_json,
    require_lifetime,
    shape_summary,
    vendor_message,
    with_vendor,
)
from lib.eightbyeight.models import Credentials, ProbeResult, Target, Token
from lib.eightbyeight.refusals import RefusedAnswer
from lib.eightbyeight.retry import CEILING, RETRY_STATUSES, RetryPolicy, parse_retry_after
from lib.eightbyeight.senders import Senders
from lib.eightbyeight.transport import open_transport
from lib.kernel import config
from lib.kernel.redaction import MASK, MIN_LENGTH, registry
from lib.kernel.words import span

log = logging.getLogger("switchboard.eightbyeight")

TOKEN_PATH = "/oauth/v2/token"
DEFAULT_TIMEOUT = httpx.Timeout(
    connect=policy.CONNECT_TIMEOUT_S, read=policy.READ_TIMEOUT_S, write=None, pool=policy.POOL_TIMEOUT_S
)
DEFAULT_POLICY = RetryPolicy()
Sleep = Callable[[float], Awaitable[None]]
# RFC 6750's b64token: what a Bearer header may carry (anything else would break the header).
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# No compression asked for: an answer in any other encoding is refused (lib.eightbyeight.transport).
BASE_HEADERS = {"User-Agent": "Switchboard (8x8 connection tester)", "Accept-Encoding": "identity"}


@lru_cache(maxsize=4096)
def _url(address: str, params: tuple[tuple[str, str], ...]) -> httpx.URL:
    """Parsed once: a fleet's probes go to a handful of distinct addresses."""
    return httpx.URL(address, params=params)


class EightByEight:
    """Talks to 8x8 (or the simulator) over one shared httpx transport (lib.eightbyeight.transport).

    Create and use it on one event loop only. ``sleep`` is injectable so tests can observe
    back-off without waiting. No token outlives the check it was asked for (see ``check``).
    ``transport`` names what carries the requests (lib.kernel.config.EIGHTBYEIGHT_TRANSPORTS); by
    default SWITCHBOARD_8X8_TRANSPORT's choice.
    """

    def __init__(
        self,
        base_url: str,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = policy.MAX_IN_FLIGHT,
        per_connection: int = policy.PER_CONNECTION,
        deadline_s: float = policy.CHECK_DEADLINE_S,
        sleep: Sleep = asyncio.sleep,
        transport: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.deadline_s = deadline_s
        self.per_connection = per_connection
        self._sleep = sleep
        self._timeout = timeout.as_dict()
        self.transport = open_transport(transport or config.eightbyeight_transport(), max_connections)
        # Straight to the transport: httpx.AsyncClient's redirects, cookies and merging are not
        # wanted here, and cost a tenth of a bulk check's CPU.
        self._senders = Senders(self.transport.handle_async_request, max_connections)

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Request:
        return httpx.Request(
            method,
            _url(self.base_url + path, tuple((params or {}).items())),
            headers={**BASE_HEADERS, **headers},
            data=data,
            extensions={"timeout": self._timeout},
        )

    # -- transport with retries --

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Send with the retry policy: 429, 5xx and connect errors only. Raises Failed."""
        host = request.url.host
        attempts = self.policy.max_retries + 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = await self._senders.send(request)
            except RefusedAnswer as refused:
                raise Failed("unexpected_response", clean(str(refused)), refused.status) from None
            except httpx.ConnectError as exc:
                if is_tls_failure(exc):
                    raise Failed(
                        "tls_error",
                        f"The certificate of {host} could not be verified, so nothing was sent. " + clean(str(exc)),
                    ) from None
                if last:
                    raise Failed(
                        "network_error",
                        f"Could not connect to {host} ({attempts} attempts): " + clean(str(exc) or type(exc).__name__),
                    ) from None
            except httpx.ConnectTimeout:
                if last:
                    raise Failed("timeout", f"Connecting to {host} timed out ({attempts} attempts).") from None
            except httpx.TimeoutException as exc:
                raise Failed("timeout", f"{host} did not answer in time ({type(exc).__name__}).") from None
            except httpx.TransportError as exc:
                raise Failed(
                    "network_error", f"The connection to {host} failed: " + clean(str(exc) or type(exc).__name__)
                ) from None
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

    def _status_failure(self, response: httpx.Response, what: str) -> Failed:
        status = response.status_code
        if status == 429:
            asked = parse_retry_after(response.headers.get("Retry-After"))
            if asked is not None and asked > self.policy.max_retry_after:
                wait = f"{asked:.0f} s" if asked < CEILING else f"{span(timedelta(seconds=CEILING))} or longer"
                return Failed(
                    "rate_limited",
                    f"8x8 rate-limited {what} and asked to wait {wait}, "
                    f"longer than Switchboard waits ({self.policy.max_retry_after:.0f} s).",
                    status,
                    asked,
                )
            return Failed(
                "rate_limited",
                f"8x8 kept answering 429 Too Many Requests for {what}, also after retries.",
                status,
                asked,
            )
        if status >= 500:
            return Failed(
                "vendor_error",
                with_vendor(f"8x8 answered HTTP {status} for {what}, also after retries.", response),
                status,
            )
        if 300 <= status < 400:
            return Failed(
                "unexpected_response",
                f"8x8 answered {what} with a redirect (HTTP {status}), "
                "which Switchboard does not follow. Check SWITCHBOARD_8X8_BASE_URL.",
                status,
            )
        return Failed("unexpected_response", with_vendor(f"8x8 answered HTTP {status} for {what}.", response), status)

    async def _timed(
        self, product: str, work: Callable[[], Awaitable[tuple[str, int | None, Any]]]
    ) -> tuple[ProbeResult, Any]:
        """Run ``work`` under the per-check deadline and turn whatever happens into a ProbeResult:
        one answer, however odd, fails its own step and never the connection's other steps."""
        started, t0 = datetime.now(UTC), time.perf_counter()
        extra: Any = None
        retry_after: float | None = None
        try:
            async with asyncio.timeout(self.deadline_s):
                detail, status, extra = await work()
            outcome = "ok"
        except Failed as failed:
            outcome, detail, status = failed.outcome, failed.detail, failed.http_status
            retry_after = failed.retry_after_s
        except TimeoutError:
            outcome, detail, status = "timeout", f"The check took longer than {self.deadline_s:g} s.", None
        except Exception as exc:  # noqa: BLE001 - an answer no rule above foresaw: reported, not raised
            # One line, no traceback: the answer that caused it is someone else's to send.
            log.warning("Reading 8x8's answer for %s failed: %s", product, type(exc).__name__)
            outcome, status = "unexpected_response", None
            detail = f"Switchboard could not read 8x8's answer ({type(exc).__name__})."
        duration = int((time.perf_counter() - t0) * 1000)
        return ProbeResult(product, outcome, clip(detail), started, status, duration, retry_after_s=retry_after), extra

    # -- token --

    async def _fetch_token(self, credentials: Credentials) -> tuple[Token, int]:
        """A new token from 8x8 and the status it came with; Failed when there is none."""
        secret = credentials.client_secret.get_secret_value()
        basic = base64.b64encode(f"{credentials.client_id}:{secret}".encode()).decode()
        request = self._request(
            "POST",
            TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            headers={"Accept": "application/json", "Authorization": f"Basic {basic}"},
        )
        response = await self._send(request)
        try:
            token = self._read_token(response)
        except Failed as failed:
            # Refused candidates never join the masking registry (they would mask later audit
            # rows); they are kept out of this one answer instead.
            for value in (basic, secret, credentials.client_id):
                if len(value) >= MIN_LENGTH:
                    failed.detail = failed.detail.replace(value, MASK)
            raise
        registry.add_credentials(credentials.client_id, secret)  # 8x8 accepted them
        return token, response.status_code

    def _read_token(self, response: httpx.Response) -> Token:
        if response.status_code in (400, 401):
            body_code = vendor_message(response)
            if response.status_code == 401 or "client" in body_code.lower():
                raise Failed(
                    "bad_credentials",
                    with_vendor("8x8 refused the Client ID and Client Secret.", response),
                    response.status_code,
                )
        if response.status_code == 403:
            raise Failed("forbidden", with_vendor("8x8 refused to issue a token for this app.", response), 403)
        if response.status_code == 404:
            raise Failed(
                "not_found",
                f"No token endpoint at {self.base_url}{TOKEN_PATH} (HTTP 404). Check SWITCHBOARD_8X8_BASE_URL.",
                404,
            )
        if not response.is_success:
            raise self._status_failure(response, "the token request")
        body = read_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise Failed(
                "unexpected_response",
                f"HTTP {response.status_code}, but the answer is not an OAuth token (no access_token).",
                response.status_code,
            )
        access_token = body["access_token"]
        if len(access_token) > policy.MAX_TOKEN_CHARS or not BEARER_TOKEN.fullmatch(access_token):
            raise Failed(
                "unexpected_response",
                f"HTTP {response.status_code}, but the answer's access_token "
                f"is not a bearer token (at most {policy.MAX_TOKEN_CHARS} letters, digits and "
                "-._~+/=).",
                response.status_code,
            )
        require_lifetime(body)
        registry.add(access_token)
        return Token(access_token=access_token, api_products=parse_api_products(body))

    async def token(self, target: Target) -> tuple[ProbeResult, Token | None]:
        """Ask 8x8 for a new token: (the result of the token step, the token or None)."""

        async def work() -> tuple[str, int | None, Any]:
            token, status = await self._fetch_token(target.credentials)
            names = ", ".join(sorted(token.api_products)) or "no API products"
            return f"Token issued; 8x8 lists: {names}.", status, token

        result, token = await self._timed(TOKEN, work)
        if token is not None:
            result = ProbeResult(
                result.product,
                result.outcome,
                result.detail,
                result.started_at,
                result.http_status,
                result.duration_ms,
                granted=token.granted,
            )
        return result, token

    # -- product probes --

    async def _call_probe(self, product: Product, target: Target, token: Token) -> httpx.Response:
        path, params, headers = build_probe(product, target.settings)
        request = self._request(
            product.probe.method,
            path,
            params=params,
            headers={**headers, "Authorization": f"Bearer {token.access_token}"},
        )
        return await self._send(request)

    async def probe(self, product_key: str, target: Target, token: Token) -> ProbeResult:
        product = PRODUCTS[product_key]
        missing = missing_settings(product, target.settings)
        if missing:
            labels = " and ".join(SETTINGS[key].label for key in missing)
            return ProbeResult(
                product_key, "missing_config", f"Not tested: set the {labels} of this connection.", datetime.now(UTC)
            )

        async def work() -> tuple[str, int | None, None]:
            response = await self._call_probe(product, target, token)
            return self._judge(product, target, token, response), response.status_code, None

        result, _ = await self._timed(product_key, work)
        return result

    def _judge(self, product: Product, target: Target, token: Token, response: httpx.Response) -> str:
        """Detail of an ok answer, or raise Failed with the outcome of any other answer."""
        status = response.status_code
        path = response.request.url.path
        if response.is_success:
            summary = shape_summary(product, read_json(response))
            if summary is None:
                raise Failed(
                    "unexpected_response",
                    f"HTTP {status}, but the answer is not "
                    f"{SHAPE_WORDS[product.probe.success]} as {product.name} returns.",
                    status,
                )
            return summary
        if status == 401:
            listed = ", ".join(sorted(token.api_products)) or "nothing"
            raise Failed(
                "product_not_enabled",
                with_vendor(
                    f"8x8 refused {product.name} with a valid token; the app's token lists: {listed}.", response
                ),
                status,
            )
        if status == 403:
            raise Failed("forbidden", with_vendor(f"8x8 denied access to {path}.", response), status)
        if status == 404:
            regions = ", ".join(
                f"{SETTINGS[k].label} '{target.settings.get(k)}'" for k in product.needs if SETTINGS[k].choices
            )
            raise Failed("not_found", f"8x8 has nothing at {path} (HTTP 404); check the {regions}.", status)
        if status == 400:
            said = vendor_message(response)
            if "X-Tenant-Info" in said and "missing" in said:
                raise Failed(
                    "missing_config",
                    f"8x8 says this account has several tenants: set the "
                    f"{SETTINGS['tenant_id'].label}. 8x8 said: {said}",
                    status,
                )
            if "X-Tenant-Info" in said:
                raise Failed("forbidden", f"8x8 did not accept the tenant ID. 8x8 said: {said}", status)
        raise self._status_failure(response, product.name)

    # -- a whole connection --

    async def check(self, target: Target) -> AsyncIterator[ProbeResult]:
        """The token result, then one result per product, as they finish. At most
        ``per_connection`` requests of this connection run at once.

        Every check asks 8x8 for a new token, once, and its probes share it; none is kept for
        a later check. The token request is itself the proof that the credentials still work:
        a token kept from earlier would report OK for credentials 8x8 now refuses."""
        token_result, token = await self.token(target)
        yield token_result
        if token is None:
            for key in target.products:
                yield ProbeResult(
                    key,
                    token_result.outcome,
                    clip("Not tested: the token request failed. " + token_result.detail),
                    token_result.started_at,
                    token_result.http_status,
                    retry_after_s=token_result.retry_after_s,
                )
            return
        limit = asyncio.Semaphore(self.per_connection)

        async def one(key: str) -> ProbeResult:
            async with limit:
                return await self.probe(key, target, token)

        for finished in asyncio.as_completed([one(key) for key in target.products]):
            yield await finished

    async def ask_token(self, credentials: Credentials) -> ProbeResult:
        """Ask 8x8 for a new token with these (candidate) credentials; nothing else is called."""
        result, _ = await self.token(Target(credentials=credentials, settings={}))
        return result
