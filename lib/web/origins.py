"""Which web origins may talk to the console: its own, exactly (scheme, host and port).

The console's own origin is ``SWITCHBOARD_PUBLIC_URL`` when set (behind a proxy), otherwise
the scheme and Host of the request itself; ``SWITCHBOARD_ALLOWED_ORIGINS`` adds more. A page
on another port of the same host is another origin, although browsers send it our cookies.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Scope

from lib.kernel.config import Settings, origin_of
from lib.kernel.errors import ConfigError

_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def own_origin(scope: Scope, settings: Settings | None) -> str | None:
    if settings is not None and settings.public_origin:
        return settings.public_origin
    host = Headers(scope=scope).get("host")
    if not host:
        return None
    try:
        return origin_of(f"{_HTTP_SCHEME.get(scope.get('scheme', 'http'), 'http')}://{host}", "Host")
    except ConfigError:
        return None


def origin_allowed(scope: Scope, settings: Settings | None) -> bool:
    """Whether the request's Origin header names the console itself (or an allowed origin)."""
    origin = Headers(scope=scope).get("origin")
    if not origin:
        return False
    try:
        origin = origin_of(origin, "Origin")
    except ConfigError:
        return False
    return origin == own_origin(scope, settings) or (settings is not None and origin in settings.allowed_origins)
