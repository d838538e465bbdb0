"""What goes into the 8x8 client and what comes out of it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr

from lib.catalogue.outcomes import Judged
from lib.catalogue.products import PRODUCT_KEYS, products_granted_by


@dataclass(frozen=True)
class Credentials:
    """Decrypted credentials, for the 8x8 client only. The secret stays a SecretStr."""

    connection_id: uuid.UUID | None
    client_id: str = field(repr=False)
    client_secret: SecretStr


@dataclass(frozen=True)
class ProbeResult(Judged):
    """The outcome of one product test (or of the token request, ``product == "token"``)."""

    product: str
    outcome: str
    detail: str
    started_at: datetime
    http_status: int | None = None
    duration_ms: int = 0
    granted: frozenset[str] | None = None  # token results: product keys 8x8 lists for the app
    # rate_limited results: the seconds 8x8's last Retry-After asked for, when it said (the
    # schedule waits at least this long before asking again)
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Target:
    """What one connection check needs: credentials, settings and the products to test."""

    credentials: Credentials
    settings: Mapping[str, str | None]
    products: tuple[str, ...] = PRODUCT_KEYS
    connection_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Token:
    """A token of one check (lib.eightbyeight.client.EightByEight.check), never kept beyond it."""

    access_token: str = field(repr=False)
    api_products: frozenset[str]

    @property
    def granted(self) -> frozenset[str]:
        return products_granted_by(set(self.api_products))
