"""Access tokens, in memory only, one per credentials, fetched once for concurrent callers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable

from lib.eightbyeight.models import Credentials, Target, Token

Clock = Callable[[], float]


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

    def forget(self, credentials: Credentials) -> None:
        """Drop the cached token of these credentials, so the next ``get`` asks 8x8 again."""
        self._tokens.pop(self.fingerprint(credentials), None)

    def invalidate(self, target: Target, token: Token) -> None:
        """Forget ``token`` if it is still the cached one (a newer one is kept)."""
        fp = self.fingerprint(target.credentials)
        if self._tokens.get(fp) is token:
            del self._tokens[fp]

    def skew(self, expires_in: int) -> float:
        return min(60.0, expires_in * 0.1)

    def expiry(self, expires_in: int) -> float:
        return self._clock() + expires_in - self.skew(expires_in)
